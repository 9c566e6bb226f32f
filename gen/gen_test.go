package gen_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/memtest"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

// spec parses the text form of a spec or fails the test.
func spec(t testing.TB, text string) gen.Spec {
	t.Helper()
	s, err := gen.ParseSpec(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cleanSpecs are the shapes every clean-pool test covers.
var cleanSpecs = []struct {
	name, spec string
	seed       uint64
	// overflow: the pool must hold metadata and data counts of 3 or more.
	overflow bool
}{
	{"single", "thins=1 mappings=300 snapshots=0", 1, false},
	{"empty-thins", "thins=3 mappings=0 snapshots=2 shape=fan", 2, false},
	{"chain", "thins=2 mappings=3000-9000 snapshots=6 shape=chain rewrite=0.002", 3, true},
	{"fan", "thins=1 mappings=4000 snapshots=5 shape=fan rewrite=0.02 target=snapshot", 4, true},
	{"tree-discard-delete-msnap", "thins=3 mappings=500-2500 snapshots=6 shape=tree discard=0.15 deletions=3 metadata-snap=true", 5, false},
	{"dense-singles", "thins=2 mappings=2000 run-length=1 sparsity=0 snapshots=2 rewrite=0.3 target=origin", 6, false},
	{"sparse-long-runs", "thins=2 mappings=5000 run-length=200 sparsity=0.9 snapshots=3 shape=tree", 7, false},
	{"bulk", "thins=3 mappings=20000 snapshots=4 shape=tree rewrite=0.002 bulk=true metadata-snap=true data-block-size=1024", 8, true},
	{"small-commits", "thins=2 mappings=1500 snapshots=3 commit-every=97 discard=0.3", 9, false},
	{"full-data", "thins=2 mappings=9000 snapshots=2 data-slack=0 deletions=1", 10, false},
	// Two data bitmaps, internal nodes in the details and top-level trees.
	{"many-devices", "thins=40 mappings=0-900 run-length=3 snapshots=140 shape=tree rewrite=0.001 deletions=30 metadata-snap=true", 11, true},
}

// generate writes a spec's pool to a file in the test's directory.
func generate(t testing.TB, s gen.Spec, seed uint64) (string, *gen.Record) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "meta.img")
	rec, err := gen.GenerateFile(img, s, seed)
	if err != nil {
		t.Fatalf("generate %v seed %d: %v", s, seed, err)
	}
	return img, rec
}

// xmlOf renders a state as thin_dump would print it.
func xmlOf(t testing.TB, s *gen.State) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.WriteXML(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// firstDiff returns the first differing line of two texts.
func firstDiff(a, b []byte) string {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range max(len(la), len(lb)) {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n got: " + x + "\nwant: " + y
		}
	}
	return ""
}

// Every generated clean pool passes thin_check 0.9.0 and thinmeta's check,
// and thin_dump prints exactly what the generator's record says it built,
// for the live metadata and the metadata snapshot.
func TestCleanPoolsMatchTools(t *testing.T) {
	tptest.Need(t, "thin_check")
	for _, c := range cleanSpecs {
		t.Run(c.name, func(t *testing.T) {
			img, rec := generate(t, spec(t, c.spec), c.seed)
			tptest.CheckClean(t, img)
			want, err := rec.Final()
			if err != nil {
				t.Fatal(err)
			}
			got := tptest.MustRun(t, "thin_dump", img).Stdout
			if w := xmlOf(t, want); !bytes.Equal(got, w) {
				t.Fatalf("thin_dump differs from the record: %s", firstDiff(got, w))
			}
			snap, err := rec.MetadataSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			if (snap != nil) != strings.Contains(c.spec, "metadata-snap=true") {
				t.Fatalf("metadata snapshot in the record: %v", snap != nil)
			}
			if snap != nil {
				got := tptest.MustRun(t, "thin_dump", "-m", img).Stdout
				if w := xmlOf(t, snap); !bytes.Equal(got, w) {
					t.Fatalf("thin_dump -m differs from the record: %s", firstDiff(got, w))
				}
				if bytes.Equal(xmlOf(t, snap), xmlOf(t, want)) {
					t.Fatal("the metadata snapshot did not diverge from the live metadata")
				}
			}
			st := checkImage(t, img, nil)
			if c.overflow {
				assertOverflow(t, img)
			}
			t.Logf("%d devices, %d mappings, %d events, %d commits, %d/%d metadata blocks, %d data blocks",
				st.Devices, st.Mappings, len(rec.Events), rec.Commits, rec.MetadataBlocks-st.MetadataFreeBlocks, rec.MetadataBlocks, rec.NrDataBlocks)
		})
	}
}

// checkImage runs thinmeta's check on an image and returns its summary;
// with want nil every finding fails the test.
func checkImage(t testing.TB, img string, fs *[]check.Finding) check.Summary {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	sum, _ := check.Device(context.Background(), f, st.Size(), check.Options{}, func(x check.Finding) {
		if fs == nil {
			t.Errorf("check: %v", x)
			return
		}
		*fs = append(*fs, x)
	})
	return sum
}

// assertOverflow fails unless both space maps hold counts of three or
// more (kept in their overflow trees): nodes and data blocks shared by at
// least three trees.
func assertOverflow(t testing.TB, img string) {
	t.Helper()
	p, err := thin.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msm, err := p.MetadataSpaceMap()
	if err != nil {
		t.Fatal(err)
	}
	dsm, err := p.DataSpaceMap()
	if err != nil {
		t.Fatal(err)
	}
	maxCount := func(m *spacemap.Map) uint32 {
		var mx uint32
		for bc, err := range m.Counts() {
			if err != nil {
				t.Fatal(err)
			}
			mx = max(mx, bc.Count)
		}
		return mx
	}
	if mm, dm := maxCount(msm), maxCount(dsm); mm < 3 || dm < 3 {
		t.Fatalf("largest counts: metadata %d, data %d; want overflow counts (3+) in both", mm, dm)
	}
}

// The same spec and seed give the same bytes, through a file or in
// memory; another seed gives other bytes.
func TestDeterminism(t *testing.T) {
	s := spec(t, "thins=4 mappings=500-4000 snapshots=8 shape=tree discard=0.1 deletions=2 metadata-snap=true commit-every=500")
	build := func(seed uint64) []byte {
		p, err := gen.NewPlan(s, seed)
		if err != nil {
			t.Fatal(err)
		}
		dev := memdev.New(p.MetadataBytes())
		if _, err := p.Build(dev, dev.Size()); err != nil {
			t.Fatal(err)
		}
		return dev.Bytes()
	}
	a, b := build(42), build(42)
	if !bytes.Equal(a, b) {
		t.Fatal("two runs with the same seed differ")
	}
	img, _ := generate(t, s, 42)
	c, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, c) {
		t.Fatal("the file differs from the in-memory image")
	}
	if bytes.Equal(a, build(43)) {
		t.Fatal("another seed gave the same image")
	}
}

// The bulk path builds other trees but the same pool: the same record, the
// same thin_dump.
func TestBulkMatchesOneByOne(t *testing.T) {
	tptest.Need(t, "thin_dump")
	text := "thins=3 mappings=3000-9000 snapshots=5 shape=tree discard=0.05 metadata-snap=true"
	one, r1 := generate(t, spec(t, text), 3)
	bulk, r2 := generate(t, spec(t, text+" bulk=true"), 3)
	// Equal but for where the metadata snapshot is held.
	logical := func(es []gen.Event) []gen.Event {
		es = slices.Clone(es)
		for i := range es {
			if es[i].Kind == gen.ReserveSnapshot {
				es[i].Block = 0
			}
		}
		return es
	}
	if !slices.Equal(logical(r1.Events), logical(r2.Events)) {
		t.Fatal("the records differ")
	}
	d1 := tptest.MustRun(t, "thin_dump", one).Stdout
	d2 := tptest.MustRun(t, "thin_dump", bulk).Stdout
	if !bytes.Equal(d1, d2) {
		t.Fatalf("thin_dump differs: %s", firstDiff(d2, d1))
	}
	tptest.CheckClean(t, bulk)
	a, _ := os.ReadFile(one)
	b, _ := os.ReadFile(bulk)
	if bytes.Equal(a, b) {
		t.Fatal("bulk and one-by-one images are identical: the bulk path was not used")
	}
}

// The text form reads back what it writes, and refuses nonsense.
func TestSpecText(t *testing.T) {
	s := spec(t, "thins=7 mappings=10-20 run-length=2.5 sparsity=0.25 snapshots=3 shape=fan rewrite=0.5 target=origin discard=0.1 deletions=2 metadata-snap=true data-block-size=256 nr-data-blocks=99999 data-slack=0 metadata-blocks=4096 commit-every=10 bulk=true")
	back, err := gen.ParseSpec(s.String())
	if err != nil || back != s {
		t.Fatalf("round trip: %v, %+v != %+v", err, back, s)
	}
	if d := spec(t, ""); d != gen.DefaultSpec() {
		t.Fatalf("empty text: %+v", d)
	}
	for _, bad := range []string{"thins", "thins=x", "nope=1", "shape=star", "sparsity=1", "mappings=5-2",
		"data-block-size=100", "thins=0 snapshots=1", "deletions=5", "rewrite=2", "thins=-1",
		// More mappings than a pool can hold: the plan, made in memory
		// first, used to run out of it.
		"mappings=1000000000000", "thins=1000 mappings=2000000", "thins=16777215 mappings=1099511627776"} {
		s, err := gen.ParseSpec(bad)
		if err == nil {
			err = s.Validate()
		}
		if !errors.Is(err, gen.ErrSpec) {
			t.Errorf("%q: %v, want ErrSpec", bad, err)
		}
	}
}

// A pool that does not fit its metadata device fails cleanly.
func TestMetadataTooSmall(t *testing.T) {
	s := spec(t, "thins=2 mappings=200000 metadata-blocks=64")
	_, err := gen.Generate(memdev.New(64*4096), 64*4096, s, 1)
	if err == nil {
		t.Fatal("a 64-block metadata device held 400000 mappings")
	}
}

// Random specs, sized by the generator's own estimates: every one fits
// its devices and is consistent (thinmeta's check on all, thin_check on a
// sample).
func TestRandomSpecs(t *testing.T) {
	n := 40
	if testing.Short() {
		n = 10
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range n {
		s := gen.DefaultSpec()
		s.Thins = 1 + rng.IntN(6)
		lo := uint64(rng.IntN(3000))
		s.Mappings = gen.Range{Min: lo, Max: lo + uint64(rng.IntN(5000))}
		s.MeanRun = 1 + rng.Float64()*float64(rng.IntN(40))
		s.Sparsity = rng.Float64() * 0.95
		s.Snapshots = rng.IntN(12)
		s.Shape = gen.Shape(rng.IntN(3))
		s.Rewrite = rng.Float64() * rng.Float64()
		s.Target = gen.Target(rng.IntN(3))
		if rng.IntN(2) == 0 {
			s.Discard = rng.Float64() * 0.5
		}
		s.Deletions = rng.IntN(s.Thins + s.Snapshots + 1)
		s.MetadataSnapshot = rng.IntN(2) == 0
		s.DataSlack = float64(rng.IntN(3)) * 0.2
		s.CommitEvery = []int{0, 0, 20, 500}[rng.IntN(4)]
		s.Bulk = rng.IntN(3) == 0
		seed := rng.Uint64()
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			// In memory: a commit is then not an fdatasync.
			p, err := gen.NewPlan(s, seed)
			if err != nil {
				t.Fatal(err)
			}
			dev := memdev.New(p.MetadataBytes())
			rec, err := p.Build(dev, dev.Size())
			if err != nil {
				t.Fatalf("%v seed %d: %v", s, seed, err)
			}
			img := filepath.Join(t.TempDir(), "meta.img")
			if err := os.WriteFile(img, dev.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			checkImage(t, img, nil)
			if i%5 == 0 {
				tptest.CheckClean(t, img)
				want, err := rec.Final()
				if err != nil {
					t.Fatal(err)
				}
				got := tptest.MustRun(t, "thin_dump", img).Stdout
				if w := xmlOf(t, want); !bytes.Equal(got, w) {
					t.Fatalf("%v seed %d: thin_dump differs from the record: %s", s, seed, firstDiff(got, w))
				}
			}
		})
	}
}

// A spec of more mappings than any pool can hold is refused before the
// plan is made (it is made in memory: mappings=1000000000000 used to run
// out of it), with almost nothing allocated.
func TestSpecTooLargeRefusedAtOnce(t *testing.T) {
	for _, text := range []string{"mappings=1000000000000", "thins=100000 mappings=100000"} {
		s := spec(t, text)
		memtest.Bound(t, 1<<20, text, func() {
			if _, err := gen.NewPlan(s, 1); !errors.Is(err, gen.ErrSpec) {
				t.Errorf("%s: %v, want ErrSpec", text, err)
			}
		})
	}
}
