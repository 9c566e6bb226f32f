package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/superblock"
)

// rootsPool generates a pool whose metadata snapshot's trees differ from
// the live ones, and returns it with the live and the snapshot's roots.
func rootsPool(t *testing.T) (img string, live, snap [2]uint64) {
	t.Helper()
	s := gen.DefaultSpec()
	s.Thins, s.Snapshots, s.Shape, s.MetadataSnapshot = 2, 3, gen.Tree, true
	img = filepath.Join(t.TempDir(), "pool.img")
	if _, err := gen.GenerateFile(img, s, 3); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sb := superblock.Decode(data[:4096])
	ss := superblock.Decode(data[sb.HeldRoot*4096 : sb.HeldRoot*4096+4096])
	live = [2]uint64{sb.DataMappingRoot, sb.DeviceDetailsRoot}
	snap = [2]uint64{ss.DataMappingRoot, ss.DeviceDetailsRoot}
	if live == snap {
		t.Fatal("the snapshot's roots are the live ones")
	}
	return img, live, snap
}

// withRoots writes a copy of img whose superblock names other roots.
func withRoots(t *testing.T, img string, mapping, details uint64) string {
	t.Helper()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sb := superblock.Decode(data[:4096])
	sb.DataMappingRoot, sb.DeviceDetailsRoot = mapping, details
	sb.Encode(data[:4096])
	superblock.Validator.Prepare(data[:4096], 0)
	out := filepath.Join(t.TempDir(), "roots.img")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// check --override-mapping-root and --override-details-root: the verdict
// equals thin_check 1.1.0's (and 0.9.0's, which has only the mapping
// root) for the superblock's own roots, the metadata snapshot's (sound
// trees whose blocks the space maps count differently), blocks that are
// no tree root, and on a pool whose superblock names wrong roots, the
// right ones given by hand make the check clean for all three.
func TestCheckOverrideRoots(t *testing.T) {
	img, live, snap := rootsPool(t)
	broken := withRoots(t, img, 3, 3)
	type tc struct {
		img  string
		args []string
		ok   bool
	}
	m := func(b uint64) []string { return []string{"--override-mapping-root", fmt.Sprint(b)} }
	d := func(b uint64) []string { return []string{"--override-details-root", fmt.Sprint(b)} }
	cat := func(as ...[]string) (r []string) {
		for _, a := range as {
			r = append(r, a...)
		}
		return r
	}
	cases := []tc{
		{img, m(live[0]), true},
		{img, d(live[1]), true},
		{img, cat(m(live[0]), d(live[1])), true},
		{img, m(snap[0]), false},
		{img, d(snap[1]), false},
		{img, cat(m(snap[0]), d(snap[1])), false},
		{img, cat(m(snap[0]), []string{"--skip-mappings"}), true},
		{img, cat(m(snap[0]), []string{"--ignore-non-fatal-errors"}), false},
		{img, m(3), false},
		{img, m(1 << 30), false},
		{img, d(live[0]), false},
		{broken, nil, false},
		{broken, cat(m(live[0]), d(live[1])), true},
		{broken, m(live[0]), false},
	}
	for _, c := range cases {
		hasDetails := false
		for _, a := range c.args {
			hasDetails = hasDetails || a == "--override-details-root"
		}
		for _, g := range tptest.Gens {
			if g == tptest.V090 && hasDetails {
				continue // 0.9.0 has no --override-details-root
			}
			r := tptest.RunGen(t, g, "thin_check", append(append([]string(nil), c.args...), c.img)...)
			if (r.Code == 0) != c.ok {
				t.Fatalf("thin_check %s %v: exit %d, expected ok=%v\n%s", g, c.args, r.Code, c.ok, r.Stderr)
			}
		}
		code, _, errs := queryRun(checkCommand, append(append([]string(nil), c.args...), c.img)...)
		if (code == 0) != c.ok || code == exitUsage {
			t.Fatalf("check %v: exit %d, expected ok=%v\n%s", c.args, code, c.ok, errs)
		}
	}
}

// The overrides are refused where they cannot mean anything: with -m
// (thin_check 1.1.0 accepts that and ignores them: its verdict is that of
// -m alone, even for a root that is no tree), with
// --clear-needs-check-flag (1.1.0 refuses too) and for block 0.
func TestCheckOverrideRootsRefused(t *testing.T) {
	img, _, _ := rootsPool(t)
	r := tptest.RunGen(t, tptest.V110, "thin_check", "-m", "--override-mapping-root", "3", img)
	if r.Code != 0 {
		t.Fatalf("thin_check 1.1.0 -m --override-mapping-root 3: exit %d; it no longer ignores the override", r.Code)
	}
	if r := tptest.RunGen(t, tptest.V110, "thin_check", "--clear-needs-check-flag", "--override-mapping-root", "3", img); r.Code == 0 {
		t.Fatal("thin_check 1.1.0 clears needs_check with an overridden root")
	}
	for _, args := range [][]string{
		{"-m", "--override-mapping-root", "3"},
		{"-m", "--override-details-root", "3"},
		{"--clear-needs-check-flag", "--override-details-root", "3"},
		{"--override-mapping-root", "0"},
		{"--override-details-root", "x"},
	} {
		if code, _, errs := queryRun(checkCommand, append(args, img)...); code != exitUsage || errs == "" {
			t.Errorf("check %v: exit %d, stderr %q", args, code, errs)
		}
	}
}
