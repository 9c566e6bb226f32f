package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
)

// dumpPools returns images to run dump's options on: a kernel-written
// fixture with a metadata snapshot, a generated pool of snapshots with one
// held too, and the same with needs_check set (so the flags attribute
// shows). held is each image's metadata snapshot block.
func dumpPools(t *testing.T) (imgs []string, held []uint64) {
	t.Helper()
	for _, f := range tptest.Fixtures(t) {
		if tptest.Name(f) == "tmeta_with_metadata_snap" {
			imgs = append(imgs, tptest.Unpack(t, f))
		}
	}
	s := gen.DefaultSpec()
	s.Thins, s.Snapshots, s.Shape, s.Mappings, s.MetadataSnapshot = 2, 4, gen.Tree, gen.Range{Min: 2000, Max: 5000}, true
	img := filepath.Join(t.TempDir(), "gen.img")
	if _, err := gen.GenerateFile(img, s, 5); err != nil {
		t.Fatal(err)
	}
	nc := filepath.Join(t.TempDir(), "needs-check.img")
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nc, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := queryRun(messageCommand, "-q", nc, "set_needs_check"); code != 0 {
		t.Fatal(errs)
	}
	imgs = append(imgs, img, nc)
	for _, img := range imgs {
		p, err := thin.Open(img, nil)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, p.LiveSuperblock().HeldRoot)
		p.Close()
	}
	return imgs, held
}

// Every option of dump that thin_dump has, alone and combined, gives
// thin_dump 0.9.0's output by default and thin_dump 1.1.0's with --compat
// 1.1, byte for byte (also when written with -o), with the same verdict.
func TestDumpOptionsBothGenerations(t *testing.T) {
	imgs, held := dumpPools(t)
	for i, img := range imgs {
		m := fmt.Sprintf("--metadata-snap=%d", held[i])
		cases := [][]string{
			nil,
			{"--transaction-id", "1"},
			{"--transaction-id", "100000"},
			{"--data-block-size", "256"},
			{"--nr-data-blocks", "5"},
			{"--nr-data-blocks", "99999999"},
			{"--transaction-id", "100000", "--data-block-size", "1024", "--nr-data-blocks", "3"},
			{"-f", "human_readable", "--transaction-id", "100000", "--nr-data-blocks", "99999999"},
			{"--skip-mappings", "--data-block-size", "384"},
			{"--dev-id", "2", "--transaction-id", "3"},
			{"-m"},
			{m},
			{m, "-f", "human_readable"},
			{"-m", "--skip-mappings"},
		}
		for _, g := range tptest.Gens {
			for _, args := range cases {
				ours := append([]string(nil), args...)
				if g == tptest.V110 {
					ours = append(ours, "--compat", "1.1")
				}
				want := tptest.RunGen(t, g, "thin_dump", append(append([]string(nil), args...), img)...)
				code, out, errs := queryRun(dumpCommand, append(ours, img)...)
				if (code == 0) != (want.Code == 0) || out != string(want.Stdout) {
					t.Fatalf("%s: thin_dump %s %v: exit %d, thinmeta exit %d (%s)\n%s", filepath.Base(img), g, args, want.Code, code, errs, lineDiff(string(want.Stdout), out))
				}
				file := filepath.Join(t.TempDir(), "out.xml")
				if code, _, errs := queryRun(dumpCommand, append(ours, "-o", file, img)...); code != 0 {
					t.Fatalf("%v -o: exit %d (%s)", ours, code, errs)
				}
				if got, err := os.ReadFile(file); err != nil || string(got) != out {
					t.Fatalf("%v -o: the file differs from standard output (%v)", ours, err)
				}
			}
		}
	}
}

func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n tool:     %q\n thinmeta: %q", i+1, w, g)
		}
	}
	return "(same lines)"
}

// Where thin_dump 1.1.0 is wrong, thinmeta follows 0.9.0 in both forms,
// and the test names the difference:
//   - -m=BLOCK: 1.1.0 ignores the number (dumps the held snapshot
//     whatever it says); 0.9.0 and thinmeta refuse a block that is not
//     the held root.
//   - -m with --transaction-id or --nr-data-blocks: 1.1.0 ignores the
//     overrides for a metadata snapshot; thinmeta applies them (with
//     1.1.0's larger-of rule under --compat 1.1), as 0.9.0 applies them.
func TestDumpWhere110IsWrong(t *testing.T) {
	imgs, held := dumpPools(t)
	img := imgs[len(imgs)-1]
	wrong := fmt.Sprintf("--metadata-snap=%d", held[len(held)-1]+1)
	snap110 := tptest.MustRunGen(t, tptest.V110, "thin_dump", "-m", img).Stdout

	r := tptest.RunGen(t, tptest.V110, "thin_dump", wrong, img)
	if r.Code != 0 || !bytes.Equal(r.Stdout, snap110) {
		t.Fatalf("thin_dump 1.1.0 %s: exit %d; it no longer ignores the block number", wrong, r.Code)
	}
	if r := tptest.Run(t, "thin_dump", wrong, img); r.Code == 0 {
		t.Fatalf("thin_dump 0.9.0 %s succeeds", wrong)
	}
	for _, compat := range []string{"0.9", "1.1"} {
		if code, out, errs := queryRun(dumpCommand, "--compat", compat, wrong, img); code != exitFail || out != "" || !strings.Contains(errs, "metadata snapshot is at block") {
			t.Fatalf("--compat %s %s: exit %d, stderr %q", compat, wrong, code, errs)
		}
	}

	r = tptest.RunGen(t, tptest.V110, "thin_dump", "-m", "--transaction-id", "100000", "--nr-data-blocks", "99999999", img)
	if r.Code != 0 || !bytes.Equal(r.Stdout, snap110) {
		t.Fatalf("thin_dump 1.1.0 -m with overrides: exit %d; it no longer ignores them", r.Code)
	}
	code, out, errs := queryRun(dumpCommand, "--compat", "1.1", "-m", "--transaction-id", "100000", "--nr-data-blocks", "99999999", img)
	if code != 0 {
		t.Fatal(errs)
	}
	first, rest, _ := strings.Cut(out, "\n")
	wantFirst, wantRest, _ := strings.Cut(string(snap110), "\n")
	wantFirst = strings.Replace(wantFirst, `nr_data_blocks="0"`, `nr_data_blocks="99999999"`, 1)
	if tx := `transaction="100000"`; !strings.Contains(first, tx) || rest != wantRest ||
		first != strings.Replace(wantFirst, wantFirst[strings.Index(wantFirst, ` transaction="`):strings.Index(wantFirst, ` version=`)], " "+tx, 1) {
		t.Fatalf("--compat 1.1 -m with overrides:\n%s\nwant the overrides applied to\n%s", first, wantFirst)
	}
}

// -q prints nothing on standard error, whatever happens, as thin_dump
// 1.1.0 -q does (0.9.0 has no -q); the exit status still tells.
func TestDumpQuiet(t *testing.T) {
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero.img")
	if err := os.WriteFile(zero, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	imgs, _ := dumpPools(t)
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{zero}, false},
		{[]string{"-m", zero}, false},
		{[]string{filepath.Join(dir, "missing.img")}, false},
		{[]string{imgs[0]}, true},
		{[]string{"-m", imgs[1]}, true},
	} {
		r := tptest.RunGen(t, tptest.V110, "thin_dump", append([]string{"-q"}, tc.args...)...)
		if (r.Code == 0) != tc.ok || len(r.Stderr) != 0 {
			t.Fatalf("thin_dump 1.1.0 -q %v: exit %d, stderr %q", tc.args, r.Code, r.Stderr)
		}
		for _, compat := range []string{"0.9", "1.1"} {
			code, out, errs := queryRun(dumpCommand, append([]string{"-q", "--compat", compat}, tc.args...)...)
			if (code == 0) != tc.ok || errs != "" {
				t.Fatalf("dump -q %v: exit %d, stderr %q", tc.args, code, errs)
			}
			_, loud, _ := queryRun(dumpCommand, append([]string{"--compat", compat}, tc.args...)...)
			if out != loud {
				t.Fatalf("dump -q %v: output differs from dump without -q", tc.args)
			}
			if compat == "1.1" && out != string(r.Stdout) {
				t.Fatalf("dump -q --compat 1.1 %v: output differs from thin_dump 1.1.0's", tc.args)
			}
		}
	}
}

// Bad values of the new options are usage errors.
func TestDumpUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--compat", "2", "x.img"},
		{"--transaction-id", "-1", "x.img"},
		{"--data-block-size", "4294967296", "x.img"},
		{"--nr-data-blocks", "many", "x.img"},
		{"-mx", "x.img"},
	} {
		if code, out, errs := queryRun(dumpCommand, args...); code != exitUsage || out != "" || errs == "" {
			t.Errorf("dump %v: exit %d, stderr %q", args, code, errs)
		}
	}
}
