package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/crashtest"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/repair"
)

// repairInput generates the second pool (discards, a deletion,
// many commits) with one leaf damaged, and a clean copy.
func repairInput(t *testing.T) (damaged, clean string) {
	t.Helper()
	dir := t.TempDir()
	damaged, clean = filepath.Join(dir, "damaged.img"), filepath.Join(dir, "clean.img")
	spec := []string{"--thins", "4", "--mappings", "400-2500", "--snapshots", "4", "--shape", "tree",
		"--rewrite", "0.3", "--discard", "0.2", "--deletions", "1", "--commit-every", "300", "--seed", "9301", "-q"}
	cliRun(t, 0, generateCommand, append(spec, clean)...)
	cliRun(t, 0, generateCommand, append(spec, "--damage", "node-checksum", damaged)...)
	return damaged, clean
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// thinmeta repair writes a new file that both thin_check generations and
// thinmeta check accept, prints the report and writes it as JSON; dump
// --repair prints what dump prints of that file, with the same report;
// the input is not written.
func TestRepairCommand(t *testing.T) {
	damaged, _ := repairInput(t)
	before := readFile(t, damaged)
	dir := t.TempDir()
	out, js := filepath.Join(dir, "out.img"), filepath.Join(dir, "report.json")
	stdout, stderr := cliRun(t, 0, repairCommand, "-i", damaged, "-o", out, "--report", js)
	if stderr != "" || !strings.Contains(stdout, "from older copies") || !strings.Contains(stdout, "dropped") {
		t.Fatalf("report:\n%s\nstderr:\n%s", stdout, stderr)
	}
	if !bytes.Equal(readFile(t, damaged), before) {
		t.Fatal("repair wrote its input")
	}
	var rep repair.Report
	if err := json.Unmarshal(readFile(t, js), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Older == 0 || rep.Totals.Dropped == 0 || rep.Totals.Devices != 7 {
		t.Fatalf("JSON report: %+v", rep.Totals)
	}
	cliRun(t, 0, checkCommand, "-q", out)
	tptest.CheckClean(t, out)
	if st, err := os.Stat(out); err != nil || st.Size() != int64(len(before)) {
		t.Fatalf("output: %v, %v", st, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}

	want, _ := cliRun(t, 0, dumpCommand, out)
	js2 := filepath.Join(dir, "report2.json")
	got, stderr := cliRun(t, 0, dumpCommand, "--repair", damaged, "--report", js2)
	if got != want {
		t.Fatal("dump --repair differs from the dump of the repaired pool")
	}
	if !bytes.Equal(readFile(t, js), readFile(t, js2)) || !strings.Contains(stderr, "from older copies") {
		t.Fatalf("dump --repair's report differs from repair's:\n%s", stderr)
	}
	// The dump of the repaired pool equals thin_dump 0.9.0's.
	if td := tptest.MustRun(t, "thin_dump", out).Stdout; string(td) != want {
		t.Fatal("thin_dump of the repaired pool differs from thinmeta dump's")
	}
	// -q prints nothing.
	out2 := filepath.Join(dir, "out2.img")
	if stdout, stderr := cliRun(t, 0, repairCommand, "-q", "-i", damaged, "-o", out2); stdout+stderr != "" {
		t.Fatalf("-q printed %q %q", stdout, stderr)
	}
	if !bytes.Equal(readFile(t, out), readFile(t, out2)) {
		t.Fatal("two repairs of one input differ")
	}
}

// An output that is the input (also through a symbolic link or a hard
// link), or that holds a valid pool, is refused and left as it was; -f
// overwrites a pool, never the input. An input with no metadata leaves no
// output.
func TestRepairRefusesOutput(t *testing.T) {
	damaged, clean := repairInput(t)
	dir := t.TempDir()
	sym, hard := filepath.Join(dir, "sym.img"), filepath.Join(dir, "hard.img")
	if err := os.Symlink(damaged, sym); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(damaged, hard); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, damaged)
	for _, o := range []string{damaged, sym, hard} {
		for _, f := range [][]string{nil, {"-f"}} {
			_, stderr := cliRun(t, 1, repairCommand, append(f, "-i", damaged, "-o", o)...)
			if !strings.Contains(stderr, "the output is the input") {
				t.Errorf("-o %s %v: %s", o, f, stderr)
			}
		}
	}
	if !bytes.Equal(readFile(t, damaged), before) {
		t.Fatal("the input was written")
	}
	cleanBytes := readFile(t, clean)
	_, stderr := cliRun(t, 1, repairCommand, "-i", damaged, "-o", clean)
	if !strings.Contains(stderr, "already holds a dm-thin pool") || !strings.Contains(stderr, "-f") {
		t.Errorf("pool output: %s", stderr)
	}
	if !bytes.Equal(readFile(t, clean), cleanBytes) {
		t.Fatal("a refused output was written")
	}
	cliRun(t, 0, repairCommand, "-q", "-f", "-i", damaged, "-o", clean)
	cliRun(t, 0, checkCommand, "-q", clean)

	// No metadata: zeros, random bytes.
	zero, rnd := filepath.Join(dir, "zero.img"), filepath.Join(dir, "random.img")
	if err := os.WriteFile(zero, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 4<<20)
	for i := range noise {
		noise[i] = byte(i*7919 + i>>9*31)
	}
	if err := os.WriteFile(rnd, noise, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{zero, rnd} {
		out := filepath.Join(dir, "new.img")
		_, stderr := cliRun(t, 1, repairCommand, "-i", in, "-o", out)
		if !strings.Contains(stderr, "no dm-thin metadata found") || !strings.Contains(stderr, in) {
			t.Errorf("%s: %s", in, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: an output was written", in)
		}
		cliRun(t, 1, dumpCommand, "--repair", in)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

// Usage errors exit 2 and write nothing.
func TestRepairUsage(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.img")
	for _, args := range [][]string{
		{"-o", out},
		{"-i", "x"},
		{"-i", "x", "-o", out, "extra"},
		{"-i", "x", "-o", out, "--data-block-size", "100"},
		{"-i", "x", "-o", out, "--nr-data-blocks", "-1"},
	} {
		cliRun(t, 2, repairCommand, args...)
	}
	cliRun(t, 2, dumpCommand, "--repair", "-m", "x")
	cliRun(t, 2, dumpCommand, "--report", "r.json", "x")
	if _, err := os.Stat(out); err == nil {
		t.Fatal("output written")
	}
	if stdout, _ := cliRun(t, 0, repairCommand, "-h"); !strings.Contains(stdout, "Exit status") {
		t.Fatal("no help")
	}
}

// check --auto-repair fixes count damage in place (thin_check of both
// generations then accepts the pool, and it dumps as the clean pool),
// refuses other damage without writing, and does nothing to a clean pool.
func TestCheckAutoRepair(t *testing.T) {
	dir := t.TempDir()
	spec := []string{"--thins", "2", "--mappings", "600", "--snapshots", "4", "--shape", "fan", "--rewrite", "0.05", "--metadata-snap", "--seed", "5", "-q"}
	clean := filepath.Join(dir, "clean.img")
	cliRun(t, 0, generateCommand, append(spec, clean)...)
	cleanDump, _ := cliRun(t, 0, dumpCommand, clean)
	for _, kind := range []string{"leak-data", "leak-metadata", "data-refcount", "metadata-refcount", "mapped-blocks", "node-checksum", "key-order", "missing-details"} {
		img := filepath.Join(dir, kind+".img")
		cliRun(t, 0, generateCommand, append(spec, "--damage", kind, img)...)
		before := readFile(t, img)
		switch kind {
		case "node-checksum", "key-order", "missing-details":
			_, stderr := cliRun(t, 1, checkCommand, "--auto-repair", img)
			if !strings.Contains(stderr, "auto-repair refused by:") || !strings.Contains(stderr, "nothing written") {
				t.Errorf("%s: %s", kind, stderr)
			}
			if !bytes.Equal(readFile(t, img), before) {
				t.Errorf("%s: a refused auto-repair wrote", kind)
			}
			continue
		}
		stdout, stderr := cliRun(t, 0, checkCommand, "--auto-repair", img)
		if !strings.Contains(stderr, "auto-repair: ") || !strings.Contains(stdout, "TRANSACTION_ID=") {
			t.Errorf("%s: %s%s", kind, stdout, stderr)
		}
		cliRun(t, 0, checkCommand, img)
		tptest.CheckClean(t, img)
		if got, _ := cliRun(t, 0, dumpCommand, img); got != cleanDump {
			t.Errorf("%s: the repaired pool dumps differently from the clean one", kind)
		}
		if _, stderr := cliRun(t, 0, checkCommand, "--auto-repair", img); !strings.Contains(stderr, "nothing to repair") {
			t.Errorf("%s: second run: %s", kind, stderr)
		}
	}
	for _, o := range []string{"-m", "--super-block-only", "--skip-mappings", "--ignore-non-fatal-errors", "--clear-needs-check-flag"} {
		cliRun(t, 2, checkCommand, "--auto-repair", o, clean)
	}
}

// thinmeta repair and check --auto-repair killed (SIGKILL) at each write
// and fdatasync in turn: repair over a pool (-f) leaves the old pool, no
// pool, or the repaired one; repair to a new file leaves no file or the
// whole repaired pool (never a partial one under the name); auto-repair
// leaves the damaged pool as it was or the repaired one. Each distinct
// repaired survivor is judged by both thin_check generations.
func TestRepairKilledAtEveryWrite(t *testing.T) {
	bin := faultBinary(t)
	damaged, _ := repairInput(t)
	dir := t.TempDir()
	spec := []string{"--thins", "2", "--mappings", "600", "--snapshots", "4", "--shape", "fan", "--rewrite", "0.05", "--metadata-snap", "--seed", "5", "-q"}
	leaky := filepath.Join(dir, "leaky.img")
	cliRun(t, 0, generateCommand, append(spec, "--damage", "metadata-refcount", leaky)...)
	other := filepath.Join(dir, "other.img")
	cliRun(t, 0, generateCommand, "--thins", "2", "--mappings", "300", "--seed", "3", "-q", other)
	run := func(env []string, args ...string) (killed bool, stderr string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		var eb bytes.Buffer
		cmd.Stderr = &eb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			if ee.ExitCode() != -1 {
				t.Fatalf("%v: exit %d\n%s", args, ee.ExitCode(), eb.String())
			}
			return true, eb.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return false, eb.String()
	}
	findings := func(path string) string {
		in, err := thin.OpenImage(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		var fs []string
		check.Device(context.Background(), in, in.Size(), check.Options{}, func(f check.Finding) { fs = append(fs, f.String()) })
		return strings.Join(fs, "\n")
	}
	workloads := []struct {
		name     string
		template string // what the output holds first ("": it does not exist)
		args     func(out string) []string
	}{
		{"repair over a pool", other, func(out string) []string { return []string{"repair", "-q", "-f", "-i", damaged, "-o", out} }},
		{"repair to a new file", "", func(out string) []string { return []string{"repair", "-q", "-i", damaged, "-o", out} }},
		{"auto-repair", leaky, func(out string) []string { return []string{"check", "-q", "--auto-repair", out} }},
	}
	oracle := crashtest.NewOracle(t)
	kills := 0
	for _, w := range workloads {
		wdir := filepath.Join(dir, strings.ReplaceAll(w.name, " ", "-"))
		if err := os.Mkdir(wdir, 0o755); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(wdir, "out.img")
		reset := func() {
			os.Remove(out)
			if w.template != "" {
				copyFile(t, w.template, out)
			}
		}
		reset()
		oldState := ""
		if w.template != "" {
			oldState = findings(out) + poolDumpOrDamaged(t, out)
		}
		if killed, stderr := run(nil, w.args(out)...); killed {
			t.Fatalf("%s: killed without a fault (%s)", w.name, stderr)
		}
		newDump := poolDump(t, out)
		judged := false
		for n := 1; ; n++ {
			reset()
			killed, stderr := run([]string{"THINMETA_FAULT_AT=" + fmt.Sprint(n)}, w.args(out)...)
			if !killed {
				if got := poolDump(t, out); got != newDump {
					t.Fatalf("%s: not killed at I/O %d, and the result differs from the uncrashed run's (%s)", w.name, n, stderr)
				}
				t.Logf("%s: killed at each of %d writes and flushes", w.name, n-1)
				break
			}
			kills++
			if _, err := os.Stat(out); errors.Is(err, os.ErrNotExist) {
				if w.template != "" {
					t.Fatalf("%s: killed at I/O %d: the output is gone", w.name, n)
				}
				continue // the new file was not linked into place
			}
			if w.template != "" && findings(out)+poolDumpOrDamaged(t, out) == oldState {
				continue
			}
			got := poolDump(t, out)
			switch {
			case got == newDump:
				if !judged {
					judged = true
					oracle.Check(readFile(t, out), fmt.Sprintf("%s, killed at I/O %d", w.name, n))
				}
			case got == "" && w.name == "repair over a pool":
			default:
				t.Fatalf("%s: killed at I/O %d: the output holds neither the old nor the repaired pool", w.name, n)
			}
		}
		os.RemoveAll(wdir)
	}
	oracle.Wait()
	t.Logf("%d kills", kills)
}

// poolDumpOrDamaged is the dump of the pool at path, damaged or not, or
// the reason it cannot be dumped.
func poolDumpOrDamaged(t *testing.T, path string) string {
	t.Helper()
	p, err := thin.Open(path, nil)
	if err != nil {
		return err.Error()
	}
	defer p.Close()
	var b bytes.Buffer
	if err := dump.Dump(context.Background(), &b, p, dump.Options{}); err != nil {
		return b.String() + err.Error()
	}
	return b.String()
}
