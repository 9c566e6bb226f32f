package dump_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// compareGen dumps img with thinmeta (opts) and with thin_dump of
// generation g (args), and requires the same verdict and, byte for byte,
// the same standard output (also when both fail part-way).
func compareGen(t *testing.T, g tptest.Gen, img string, snap bool, opts dump.Options, args ...string) {
	t.Helper()
	if snap {
		args = append(args, "-m")
	}
	want := tptest.RunGen(t, g, "thin_dump", append(args, img)...)
	got, ok := ourDump(t, img, snap, opts)
	if ok != (want.Code == 0) {
		t.Fatalf("thin_dump %s %v: exit %d (%s); thinmeta ok=%v", g, args, want.Code, want.Stderr, ok)
	}
	if !bytes.Equal(got, want.Stdout) {
		t.Fatalf("thin_dump %s %v differs:\n%s", g, args, firstDiff(want.Stdout, got))
	}
}

var c110 = dump.Options{Compat: dump.Compat110}

func with(o dump.Options, f func(*dump.Options)) dump.Options {
	f(&o)
	return o
}

// Every kernel-written fixture, live and metadata-snapshot views: with
// Compat110 our dump equals thin_dump 1.1.0's byte for byte, in both
// formats, with --skip-mappings and with --dev-id; where it fails, we
// fail.
func TestDump110Fixtures(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		t.Run(tptest.Name(f), func(t *testing.T) {
			img := tptest.Unpack(t, f)
			for _, snap := range []bool{false, true} {
				compareGen(t, tptest.V110, img, snap, c110)
				compareGen(t, tptest.V110, img, snap, with(c110, func(o *dump.Options) { o.Format = dump.HumanReadable }), "-f", "human_readable")
				compareGen(t, tptest.V110, img, snap, with(c110, func(o *dump.Options) { o.SkipMappings = true }), "--skip-mappings")
				compareGen(t, tptest.V110, img, snap, with(c110, func(o *dump.Options) { o.DevIDs = []uint64{1} }), "--dev-id", "1")
				compareGen(t, tptest.V110, img, snap, with(c110, func(o *dump.Options) { o.DevIDs = []uint64{2, 1} }), "--dev-id", "2", "--dev-id", "1")
			}
		})
	}
}

// genSpecs are generated pools whose devices share subtrees in many ways:
// snapshot chains, fans and trees, rewrites on either side, discards,
// deletions, metadata snapshots, and single-leaf and deep trees.
func genSpecs() map[string]gen.Spec {
	s := func(f func(*gen.Spec)) gen.Spec {
		sp := gen.DefaultSpec()
		f(&sp)
		return sp
	}
	return map[string]gen.Spec{
		"empty": s(func(sp *gen.Spec) { sp.Mappings = gen.Range{Min: 0, Max: 0}; sp.Snapshots = 2 }),
		"one-leaf-snapshots": s(func(sp *gen.Spec) {
			sp.Thins, sp.Mappings, sp.Snapshots, sp.Shape = 2, gen.Range{Min: 10, Max: 40}, 3, gen.Fan
		}),
		"chain": s(func(sp *gen.Spec) {
			sp.Thins, sp.Mappings, sp.Snapshots, sp.Shape, sp.Rewrite = 1, gen.Range{Min: 20000, Max: 20000}, 6, gen.Chain, 0.02
		}),
		"fan-origin": s(func(sp *gen.Spec) {
			sp.Thins, sp.Mappings, sp.Snapshots, sp.Shape, sp.Target, sp.Rewrite = 3, gen.Range{Min: 3000, Max: 9000}, 8, gen.Fan, gen.Origin, 0.05
		}),
		"tree-both": s(func(sp *gen.Spec) {
			sp.Thins, sp.Mappings, sp.Snapshots, sp.Shape, sp.Rewrite, sp.MeanRun = 4, gen.Range{Min: 1000, Max: 6000}, 12, gen.Tree, 0.2, 3
		}),
		"discard-delete-msnap": s(func(sp *gen.Spec) {
			sp.Thins, sp.Mappings, sp.Snapshots, sp.Shape, sp.Discard, sp.Deletions, sp.MetadataSnapshot = 3, gen.Range{Min: 2000, Max: 8000}, 6, gen.Tree, 0.1, 2, true
		}),
		"dense-bulk": s(func(sp *gen.Spec) {
			sp.Thins, sp.Mappings, sp.Snapshots, sp.Sparsity, sp.MeanRun, sp.Bulk, sp.Rewrite = 2, gen.Range{Min: 60000, Max: 60000}, 3, 0, 1000, true, 0.01
		}),
		"single-blocks": s(func(sp *gen.Spec) {
			sp.Thins, sp.Mappings, sp.Snapshots, sp.MeanRun, sp.Sparsity, sp.Shape, sp.Rewrite = 2, gen.Range{Min: 5000, Max: 5000}, 5, 1, 0.7, gen.Tree, 0.3
		}),
	}
}

// Generated pools with shared subtrees, live and (where held) snapshot
// views, several seeds: with Compat110 our dump equals thin_dump
// 1.1.0's byte for byte, and without it still equals 0.9.0's.
func TestDump110Generated(t *testing.T) {
	for name, spec := range genSpecs() {
		for seed := uint64(1); seed <= 2; seed++ {
			t.Run(fmt.Sprintf("%s/%d", name, seed), func(t *testing.T) {
				img := filepath.Join(t.TempDir(), "pool.img")
				if _, err := gen.GenerateFile(img, spec, seed); err != nil {
					t.Fatal(err)
				}
				snaps := []bool{false}
				if spec.MetadataSnapshot {
					snaps = append(snaps, true)
				}
				for _, snap := range snaps {
					compareGen(t, tptest.V110, img, snap, c110)
					compareGen(t, tptest.V110, img, snap, with(c110, func(o *dump.Options) { o.Format = dump.HumanReadable }), "-f", "human_readable")
					compareGen(t, tptest.V110, img, snap, with(c110, func(o *dump.Options) { o.DevIDs = []uint64{1, 3} }), "--dev-id", "1", "--dev-id", "3")
					compareGen(t, tptest.V090, img, snap, dump.Options{})
				}
			})
		}
	}
}

// The 1.1.0 form of a pool with shared leaves does use definitions (so
// the comparisons above test them), and the two forms hold the same
// mappings: restoring either gives the same 0.9.0 dump.
func TestDump110UsesDefs(t *testing.T) {
	spec := genSpecs()["fan-origin"]
	img := filepath.Join(t.TempDir(), "pool.img")
	if _, err := gen.GenerateFile(img, spec, 1); err != nil {
		t.Fatal(err)
	}
	out, ok := ourDump(t, img, false, c110)
	if !ok {
		t.Fatal("dump failed")
	}
	if n := strings.Count(string(out), "<def "); n < 2 {
		t.Fatalf("%d definitions in the 1.1.0 form of a pool of snapshots", n)
	}
	if !strings.Contains(string(out), "<ref ") || bytes.HasSuffix(out, []byte("\n")) {
		t.Fatalf("no references, or a final newline")
	}
}
