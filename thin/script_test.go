package thin_test

import (
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/thinmeta/thinmeta/internal/opscript"
	"github.com/thinmeta/thinmeta/internal/opscript/oprun"
	"pgregory.net/rapid"
)

// The scripts in testdata/*.txt, in the operation language of package
// opscript: each directive is one operation, or "run" with a script as
// its input. Their expected outputs are thin_dump's (the thin_dump
// directive runs thin_dump 0.9.0 and requires 1.1.0 to agree), or written
// by hand from what the operations mean; every dump of a view in them is
// the thin_dump of the same state elsewhere in the script.
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if !strings.HasSuffix(path, ".txt") {
			t.Skip() // rapid's failure files
		}
		RunScript(t, path)
	})
}

// RunScript runs one datadriven script file.
func RunScript(t *testing.T, path string) {
	r := oprun.New(t)
	datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd == "run" {
			return r.Run(d.Input)
		}
		op := opscript.Op{Name: d.Cmd}
		for _, a := range d.CmdArgs {
			op.Args = append(op.Args, a.String())
		}
		out, err := r.Exec(op)
		if err != nil {
			return oprun.ErrorText(err) + "\n"
		}
		if out == "" {
			return "ok\n"
		}
		return out
	})
}

// A random case of the model test, as the script it logs, replays to the
// same pool: the runner's dump of the replayed device equals the model's
// rendering of the case's last commit (so a failing case pasted into a
// script of testdata/ reproduces it).
func TestModelScriptReplays(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		h := newHarness(t, 4096, rapid.Uint64Range(1000, 40000).Draw(rt, "data"))
		h.t = scripted{rt, &h.script}
		h.oracleAt = 1 << 30
		for range rapid.IntRange(1, 60).Draw(rt, "steps") {
			h.step(rt)
		}
		h.commit()
		r := oprun.New(t)
		if out := r.Run(h.script.String()); strings.Contains(out, "error:") && !onlyExpectedErrors(out) {
			rt.Fatalf("replaying the script:\n%s\nscript:\n%s", out, h.script)
		}
		got, err := r.Exec(opscript.Op{Name: "dump"})
		if err != nil {
			rt.Fatalf("dump of the replay: %v", err)
		}
		if want := string(h.com.xml(h.md.DataSpaceMap().NrBlocks())); got != want {
			rt.Fatalf("the replayed script dumps\n%s\nthe model\n%s\nscript:\n%s", got, want, h.script)
		}
	})
}

// onlyExpectedErrors reports whether every error of a replay is one the
// harness provokes on purpose (creating a device twice, a wrong current
// transaction id).
func onlyExpectedErrors(out string) bool {
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(line, "error:") {
			continue // what the views print
		}
		if !strings.HasSuffix(line, "error: ErrExists") && !strings.HasSuffix(line, "error: ErrTransactionID") {
			return false
		}
	}
	return true
}
