package gen_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/transaction"
)

// damageBase is a pool with a candidate for every kind of damage: free and
// shared blocks in both space maps, counts of 2 and of 4 or more (three
// snapshots of each thin rewritten on the snapshot side leave the
// origin's nodes referenced four times), leaves and internal nodes, a
// metadata snapshot that diverged.
const damageBase = "thins=2 mappings=4000-8000 snapshots=6 shape=fan rewrite=0.01 target=snapshot metadata-snap=true"

var injections = []string{
	"leak-data", "leak-metadata",
	"data-refcount", "data-refcount:overflow", "data-refcount:delta=1", "data-refcount:delta=1,overflow",
	"metadata-refcount", "metadata-refcount:overflow", "metadata-refcount:delta=1", "metadata-refcount:delta=1,overflow",
	"node-checksum", "node-checksum:internal", "key-order",
	"missing-details", "mapped-blocks", "mapped-blocks:delta=-3",
	"metadata-snap", "torn-superblock",
}

// Every damaged pool: thinmeta's check reports exactly the findings of
// the report, thin_check 0.9.0 gives the reported verdict, and the blocks
// that changed are those the report lists.
func TestDamageReports(t *testing.T) {
	tptest.Need(t, "thin_check")
	img, rec := generate(t, spec(t, damageBase), 77)
	tptest.CheckClean(t, img)
	damageReports(t, img, rec, injections, 3)
	for _, k := range gen.DamageKinds() {
		if !slices.ContainsFunc(injections, func(text string) bool { in, _ := gen.ParseDamage(text); return in.Kind == k }) {
			t.Errorf("%v is not among the injections", k)
		}
	}
}

// Every kind of damage applies to extended pools as well: the findings are
// exactly the report's (a missing details entry also leaves the thin count
// and, for an indexed thin, its index entry wrong), and thin_check 0.9.0,
// which refuses every extended pool, gives the report's verdict: fatal.
func TestDamageReportsExtended(t *testing.T) {
	tptest.Need(t, "thin_check")
	img, rec := generate(t, extSpec(t, damageBase+" duplicate-keys=0.3"), 77)
	checkImage(t, img, nil)
	damageReports(t, img, rec, injections, 2)
	// Unindexed (zero) blobs: no index entry to be wrong.
	img, rec = generate(t, extSpec(t, damageBase+" blob-fill=zero"), 78)
	damageReports(t, img, rec, []string{"missing-details", "mapped-blocks", "metadata-refcount"}, 2)
}

// damageReports injects each damage of injections (seeds 1 to seeds) into
// copies of the clean pool img and compares the damaged pools with the
// reports.
func damageReports(t *testing.T, img string, rec *gen.Record, injections []string, seeds uint64) {
	clean, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seen := map[gen.DamageKind]bool{}
	for _, text := range injections {
		for seed := uint64(1); seed <= seeds; seed++ {
			in, err := gen.ParseDamage(text)
			if err != nil {
				t.Fatal(err)
			}
			in.Seed = seed
			t.Run(in.String(), func(t *testing.T) {
				path := filepath.Join(dir, "damaged.img")
				if err := os.WriteFile(path, clean, 0o644); err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := gen.Damage(f, int64(len(clean)), rec, in)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				seen[in.Kind] = true
				t.Log(rep)
				var fs []check.Finding
				checkImage(t, path, &fs)
				if err := rep.Match(fs); err != nil {
					t.Error(err)
				}
				code := tptest.Run(t, "thin_check", path).Code
				lenient := tptest.Run(t, "thin_check", "--ignore-non-fatal-errors", path).Code
				want := map[gen.Verdict][2]int{gen.Clean: {0, 0}, gen.NonFatal: {1, 0}, gen.Fatal: {1, 1}}[rep.ThinCheck]
				if code != want[0] || lenient != want[1] {
					t.Errorf("thin_check exits %d, %d with --ignore-non-fatal-errors; the report says %v", code, lenient, rep.ThinCheck)
				}
				damaged, _ := os.ReadFile(path)
				changed := changedBlocks(clean, damaged)
				if len(changed) == 0 {
					t.Fatal("nothing changed")
				}
				for _, b := range changed {
					if !slices.Contains(rep.Written, b) {
						t.Errorf("block %d changed but the report lists %v", b, rep.Written)
					}
				}
			})
		}
	}
	for _, text := range injections {
		if in, _ := gen.ParseDamage(text); !seen[in.Kind] {
			t.Errorf("%v was not injected", in.Kind)
		}
	}
}

func changedBlocks(a, b []byte) []uint64 {
	var out []uint64
	for off := 0; off < len(a); off += transaction.BlockSize {
		if !bytes.Equal(a[off:off+transaction.BlockSize], b[off:off+transaction.BlockSize]) {
			out = append(out, uint64(off/transaction.BlockSize))
		}
	}
	return out
}

// Damage refuses what the pool cannot provide, and leaves it untouched.
func TestDamageNoCandidate(t *testing.T) {
	img, rec := generate(t, spec(t, "thins=1 mappings=100 snapshots=0"), 1)
	before, _ := os.ReadFile(img)
	for _, in := range []gen.Injection{
		{Kind: gen.SnapshotChecksum},                 // no metadata snapshot
		{Kind: gen.DataRefCount},                     // nothing shared
		{Kind: gen.MetadataRefCount, Overflow: true}, // no count of 3+
		{Kind: gen.TornSuperblock},                   // no record given below
	} {
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		r := rec
		if in.Kind == gen.TornSuperblock {
			r = nil
		}
		_, err = gen.Damage(f, int64(len(before)), r, in)
		f.Close()
		if !errors.Is(err, gen.ErrNoCandidate) {
			t.Errorf("%v: %v, want ErrNoCandidate", in, err)
		}
	}
	after, _ := os.ReadFile(img)
	if !bytes.Equal(before, after) {
		t.Fatal("a refused damage changed the image")
	}
}

// The text form of an injection reads back.
func TestDamageText(t *testing.T) {
	for _, text := range append(injections, "node-checksum:seed=9,internal", "mapped-blocks:seed=2,delta=5") {
		in, err := gen.ParseDamage(text)
		if err != nil {
			t.Fatal(err)
		}
		back, err := gen.ParseDamage(in.String())
		if err != nil || back != in {
			t.Errorf("%q: %+v -> %q -> %+v, %v", text, in, in.String(), back, err)
		}
	}
	for _, bad := range []string{"", "nope", "leak-data:seed=x", "key-order:frob"} {
		if _, err := gen.ParseDamage(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
