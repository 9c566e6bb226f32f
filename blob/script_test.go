package blob_test

import (
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/thinmeta/thinmeta/internal/opscript"
	"github.com/thinmeta/thinmeta/internal/opscript/oprun"
	"pgregory.net/rapid"
)

// The scripts in testdata/*.txt (extended pools), in the operation
// language of package opscript, as thin's TestScripts runs its own; their
// expected outputs are written by hand from what the operations mean
// (thin_dump reads no extended pool).
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if !strings.HasSuffix(path, ".txt") {
			t.Skip()
		}
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
	})
}

// A random case of the model test, as the script it logs, replays to the
// same pool: the runner's dump of the replayed device equals the model's
// rendering of the case's last commit, so a failing case pasted into a
// script of testdata/ reproduces it. The errors of the replay are only
// those the harness provokes on purpose.
func TestModelScriptReplays(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 16, 256}).Draw(rt, "blobSize")
		ib := rapid.SampledFrom([]int{0, 1, min(bs, 8)}).Draw(rt, "indexBytes")
		h := newXHarness(t, rt, rapid.Uint64Range(500, 20000).Draw(rt, "data"), bs, ib)
		h.oracleAt = 1 << 30
		for range rapid.IntRange(1, 60).Draw(rt, "steps") {
			h.step(rt)
		}
		h.commit()
		r := oprun.New(t)
		for _, line := range strings.Split(strings.TrimSpace(r.Run(h.script.String())), "\n") {
			if line == "" || strings.HasPrefix(line, "id ") {
				continue
			}
			ok := false
			for _, e := range []string{"ErrIDReused", "ErrIDRange", "ErrBlobSize", "ErrNoDevice", "ErrNoSpace"} {
				ok = ok || strings.HasSuffix(line, "error: "+e)
			}
			if !ok {
				rt.Fatalf("replaying the script: %s\nscript:\n%s", line, h.script)
			}
		}
		got, err := r.Exec(opscript.Op{Name: "dump"})
		if err != nil {
			rt.Fatalf("dump of the replay: %v", err)
		}
		if want := string(h.com.xml(h.com.nrData, false, nil)); got != want {
			rt.Fatalf("the replayed script dumps\n%s\nthe model\n%s\nscript:\n%s", got, want, h.script)
		}
	})
}
