package gen_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/transaction"
)

// extendedSpecs are the extended pools every extended test covers: each
// way of choosing ids and filling blobs, blob sizes from 1 byte to the
// largest (three details per leaf), with and without an index, shared
// keys, the bulk path, enough devices to split details and index leaves.
var extendedSpecs = []struct {
	name, spec string
	seed       uint64
}{
	{"mixed-named", "thins=3 mappings=500-2500 snapshots=6 shape=tree discard=0.1 deletions=2 metadata-snap=true", 21},
	{"allocate-chain", "ids=allocate thins=2 mappings=1000 snapshots=3 shape=chain", 22},
	{"wide-duplicates", "ids=wide duplicate-keys=0.5 thins=10 mappings=0-300 snapshots=30 shape=tree deletions=10 metadata-snap=true", 23},
	{"largest-blobs", "blob-size=1322 index-bytes=40 thins=20 mappings=50 snapshots=40 shape=fan deletions=15 duplicate-keys=0.2", 24},
	// One-byte keys: every named thin has the key "t".
	{"one-byte-blobs", "blob-size=1 index-bytes=1 ids=wide thins=8 mappings=100 snapshots=8 deletions=3", 25},
	{"no-index", "blob-size=32 index-bytes=0 thins=3 mappings=300 snapshots=3 duplicate-keys=0.5 metadata-snap=true", 26},
	{"random-blobs", "blob-fill=random blob-size=200 index-bytes=16 thins=4 mappings=400 snapshots=6 shape=tree deletions=3 duplicate-keys=0.3 metadata-snap=true", 27},
	{"zero-blobs", "blob-fill=zero thins=2 mappings=300 snapshots=2 deletions=1", 28},
	{"bulk", "thins=3 mappings=20000 snapshots=4 shape=tree rewrite=0.002 bulk=true metadata-snap=true duplicate-keys=0.3", 29},
	{"bulk-allocate", "ids=allocate thins=5 mappings=3000 snapshots=2 bulk=true blob-size=500 index-bytes=500 deletions=2", 30},
	{"many-devices", "thins=40 mappings=0-900 run-length=3 snapshots=140 shape=tree rewrite=0.001 deletions=30 metadata-snap=true duplicate-keys=0.1 blob-size=256", 31},
}

func extSpec(t testing.TB, text string) gen.Spec {
	t.Helper()
	return spec(t, "metadata-format=extended "+text)
}

// ourDump returns what "thinmeta dump" (package thin/dump) prints for an
// image, or for its metadata snapshot.
func ourDump(t testing.TB, img string, snap bool) []byte {
	t.Helper()
	p, err := thin.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if snap {
		if p, err = p.MetadataSnapshot(); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := dump.Dump(context.Background(), &b, p, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Every generated extended pool: thinmeta's check finds nothing; its dump
// (live and metadata snapshot) is exactly the record's XML in the extended
// form; blob.Pool reports the record's counters and finds every thin by
// its key (named thins by their names); thin_check and thin_dump 0.9.0
// refuse it; and its downgrade (renumbered) passes thin_check and dumps,
// with thin_dump, as the record with the new ids.
func TestExtendedPools(t *testing.T) {
	tptest.Need(t, "thin_check")
	for _, c := range extendedSpecs {
		t.Run(c.name, func(t *testing.T) {
			s := extSpec(t, c.spec)
			img, rec := generate(t, s, c.seed)
			st := checkImage(t, img, nil)
			want, err := rec.Final()
			if err != nil {
				t.Fatal(err)
			}
			if !want.Extended || want.BlobSize != rec.Spec.BlobSize {
				t.Fatalf("the record's state is not extended: %+v", want)
			}
			if got, w := ourDump(t, img, false), xmlOf(t, want); !bytes.Equal(got, w) {
				t.Fatalf("dump differs from the record: %s", firstDiff(got, w))
			}
			snap, err := rec.MetadataSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			if (snap != nil) != rec.Spec.MetadataSnapshot {
				t.Fatalf("metadata snapshot in the record: %v", snap != nil)
			}
			if snap != nil {
				if got, w := ourDump(t, img, true), xmlOf(t, snap); !bytes.Equal(got, w) {
					t.Fatalf("dump -m differs from the record: %s", firstDiff(got, w))
				}
			}
			checkFind(t, img, rec, want)
			for _, g := range tptest.Gens {
				for _, tool := range []string{"thin_check", "thin_dump"} {
					if r := tptest.RunGen(t, g, tool, img); r.Code == 0 {
						t.Errorf("%s %s accepted an extended pool:\n%s", tool, g, r.Stdout)
					}
				}
			}
			checkDowngrade(t, img, want)
			t.Logf("%d devices, %d mappings, %d events, %d commits, %d/%d metadata blocks; next id %d",
				st.Devices, st.Mappings, len(rec.Events), rec.Commits, rec.MetadataBlocks-st.MetadataFreeBlocks, rec.MetadataBlocks, want.NextThinID)
		})
	}
}

// checkFind compares blob.Pool's view of img with the record: the
// counters, and Find of every key the record's thins have, which must
// yield exactly the thins with that key.
func checkFind(t *testing.T, img string, rec *gen.Record, want *gen.State) {
	t.Helper()
	bp, err := blob.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bp.Close()
	s := rec.Spec
	if bp.BlobSize() != s.BlobSize || bp.IndexBytes() != s.IndexBytes || bp.NextID() != want.NextThinID ||
		bp.Count() != uint64(len(want.Devices)) {
		t.Fatalf("blob pool: size %d, index %d, next id %d, count %d; the record: %d, %d, %d, %d",
			bp.BlobSize(), bp.IndexBytes(), bp.NextID(), bp.Count(), s.BlobSize, s.IndexBytes, want.NextThinID, len(want.Devices))
	}
	w := s.IndexBytes
	if w == 0 {
		w = s.BlobSize
	}
	byKey := make(map[string][]uint64)
	for _, d := range want.Devices {
		k := string(d.Blob[:w])
		byKey[k] = append(byKey[k], d.ID)
	}
	find := func(key []byte) []uint64 {
		var ids []uint64
		for th, err := range bp.Find(key) {
			if err != nil {
				t.Fatalf("find %x: %v", key, err)
			}
			ids = append(ids, th.ID)
		}
		slices.Sort(ids)
		return ids
	}
	shared := 0
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		ids := byKey[k]
		if got := find(bytes.TrimRight([]byte(k), "\x00")); !slices.Equal(got, ids) {
			t.Errorf("find %x: thins %v, the record has %v", k, got, ids)
		}
		if len(ids) > 1 {
			shared++
		}
	}
	named := 0
	if s.BlobFill == gen.Named {
		for _, d := range want.Devices {
			name := []byte(gen.Name(d.ID))
			name = name[:min(len(name), w)]
			if key := make([]byte, w); copy(key, name) > 0 && !bytes.Equal(d.Blob[:w], key) {
				continue // it took another thin's name
			}
			named++
			if !slices.Contains(find(name), d.ID) {
				t.Errorf("find %q does not yield thin %d", name, d.ID)
			}
		}
		if named == 0 && len(want.Devices) > 0 {
			t.Error("no thin has its own name")
		}
	}
	t.Logf("%d keys (%d shared by several thins), %d thins found by their names", len(byKey), shared, named)
}

// checkDowngrade downgrades a copy of img, renumbering ids beyond 24 bits
// (releasing the metadata snapshot first): thin_check 0.9.0 must pass it
// and thin_dump must print the record's pool with the new ids and no
// blobs.
func checkDowngrade(t *testing.T, img string, want *gen.State) {
	t.Helper()
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	down := filepath.Join(t.TempDir(), "down.img")
	if err := os.WriteFile(down, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(down, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	md, err := thin.NewMetadata(transaction.FileDevice{File: f}, int64(len(raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if md.Superblock().HeldRoot != 0 {
		if err := md.ReleaseMetadataSnapshot(); err != nil {
			t.Fatal(err)
		}
	}
	changes, err := blob.Downgrade(md, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := md.Close(); err != nil {
		t.Fatal(err)
	}
	renum := make(map[uint64]uint64)
	for _, c := range changes {
		renum[c.Old] = c.New
	}
	st := &gen.State{Time: want.Time, TransactionID: want.TransactionID, DataBlockSize: want.DataBlockSize, NrDataBlocks: want.NrDataBlocks}
	for _, d := range want.Devices {
		if n, ok := renum[d.ID]; ok {
			d.ID = n
		} else if d.ID > thin.MaxStockDeviceID {
			t.Fatalf("thin %d kept its id", d.ID)
		}
		d.Blob = nil
		st.Devices = append(st.Devices, d)
	}
	slices.SortFunc(st.Devices, func(a, b gen.Device) int { return cmpID(a.ID, b.ID) })
	tptest.CheckClean(t, down)
	if got, w := tptest.MustRun(t, "thin_dump", down).Stdout, xmlOf(t, st); !bytes.Equal(got, w) {
		t.Fatalf("thin_dump of the downgrade differs from the renumbered record: %s", firstDiff(got, w))
	}
}

func cmpID(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Extended pools are deterministic too, one by one and in bulk: the same
// spec and seed give the same bytes; another seed other bytes.
func TestExtendedDeterminism(t *testing.T) {
	for _, text := range []string{
		"thins=4 mappings=500-4000 snapshots=8 shape=tree discard=0.1 deletions=2 metadata-snap=true commit-every=500 duplicate-keys=0.3",
		"thins=4 mappings=5000 snapshots=3 bulk=true ids=wide blob-fill=random",
	} {
		s := extSpec(t, text)
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
			t.Fatalf("%s: two runs with the same seed differ", text)
		}
		img, _ := generate(t, s, 42)
		if c, err := os.ReadFile(img); err != nil || !bytes.Equal(a, c) {
			t.Fatalf("%s: the file differs from the in-memory image (%v)", text, err)
		}
		if bytes.Equal(a, build(43)) {
			t.Fatalf("%s: another seed gave the same image", text)
		}
	}
}

// The extended pool of a spec and seed has the shape of the stock pool of
// the same spec and seed: the same events but for ids and blobs.
func TestExtendedShapeIsStock(t *testing.T) {
	text := "thins=3 mappings=300-1500 snapshots=6 shape=tree discard=0.1 deletions=2 metadata-snap=true"
	for _, ids := range []string{"allocate", "wide", "mixed"} {
		stock, err := gen.NewPlan(spec(t, text), 9)
		if err != nil {
			t.Fatal(err)
		}
		ext, err := gen.NewPlan(extSpec(t, text+" ids="+ids), 9)
		if err != nil {
			t.Fatal(err)
		}
		r1, err := stock.Build(memdev.New(stock.MetadataBytes()), stock.MetadataBytes())
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ext.Build(memdev.New(ext.MetadataBytes()), ext.MetadataBytes())
		if err != nil {
			t.Fatal(err)
		}
		if len(r1.Events) != len(r2.Events) {
			t.Fatalf("ids=%s: %d events, stock %d", ids, len(r2.Events), len(r1.Events))
		}
		// The stock ids are 1, 2, ... in creation order.
		idOf := map[uint64]uint64{}
		next := uint64(1)
		prev := uint64(0)
		for i, e := range r2.Events {
			if e.Kind == gen.Create || e.Kind == gen.Snap {
				if i > 0 && e.Dev < prev || (ids == "wide" || ids == "mixed" && next == 1) && e.Dev < 1<<32 {
					t.Fatalf("ids=%s: device %d (after %d)", ids, e.Dev, prev)
				}
				if ids == "allocate" && e.Dev != next-1 {
					t.Fatalf("ids=allocate: device %d, expected %d", e.Dev, next-1)
				}
				if len(e.Blob) != gen.DefaultBlobSize {
					t.Fatalf("ids=%s: %v has a blob of %d bytes", ids, e, len(e.Blob))
				}
				idOf[e.Dev], prev = next, e.Dev
				next++
			}
			e.Blob = ""
			switch e.Kind {
			case gen.Create, gen.Map, gen.Unmap, gen.Delete:
				e.Dev = idOf[e.Dev]
			case gen.Snap:
				e.Dev, e.Origin = idOf[e.Dev], idOf[e.Origin]
			}
			if e.Kind == gen.ReserveSnapshot {
				e.Block = r1.Events[i].Block // the extended pool has more metadata
			}
			if e != r1.Events[i] {
				t.Fatalf("ids=%s: event %d: %v, stock %v", ids, i, e, r1.Events[i])
			}
		}
	}
}

// The bulk path gives the extended pool of the one-by-one path: the same
// record once a bulk thin's create and set-blob are taken together, the
// same dump.
func TestExtendedBulkMatchesOneByOne(t *testing.T) {
	text := "thins=3 mappings=3000-9000 snapshots=5 shape=tree discard=0.05 metadata-snap=true duplicate-keys=0.4"
	one, r1 := generate(t, extSpec(t, text), 3)
	bulk, r2 := generate(t, extSpec(t, text+" bulk=true"), 3)
	logical := func(es []gen.Event) []gen.Event {
		var out []gen.Event
		for _, e := range es {
			switch e.Kind {
			case gen.ReserveSnapshot:
				e.Block = 0
			case gen.SetBlob:
				if n := len(out) - 1; n >= 0 && out[n].Kind == gen.Create && out[n].Dev == e.Dev && out[n].Blob == "" {
					out[n].Blob = e.Blob
					continue
				}
			}
			out = append(out, e)
		}
		return out
	}
	sets := 0
	for _, e := range r2.Events {
		if e.Kind == gen.SetBlob {
			sets++
		}
	}
	if sets != 3 {
		t.Fatalf("the bulk path set %d blobs, want 3", sets)
	}
	if !slices.Equal(logical(r1.Events), logical(r2.Events)) {
		t.Fatal("the records differ")
	}
	if d1, d2 := ourDump(t, one, false), ourDump(t, bulk, false); !bytes.Equal(d1, d2) {
		t.Fatalf("dump differs: %s", firstDiff(d2, d1))
	}
	a, _ := os.ReadFile(one)
	b, _ := os.ReadFile(bulk)
	if bytes.Equal(a, b) {
		t.Fatal("bulk and one-by-one images are identical: the bulk path was not used")
	}
}

// The text form carries the extended settings; bad ones are refused, and
// a stock spec ignores them.
func TestExtendedSpecText(t *testing.T) {
	s := extSpec(t, "blob-size=300 index-bytes=20 ids=wide blob-fill=random duplicate-keys=0.25 thins=3")
	back, err := gen.ParseSpec(s.String())
	if err != nil || back != s {
		t.Fatalf("round trip: %v, %+v != %+v", err, back, s)
	}
	if !strings.Contains(s.String(), "metadata-format=extended") {
		t.Fatalf("String: %s", s)
	}
	for _, bad := range []string{"blob-size=1323", "blob-size=8 index-bytes=9", "ids=random", "blob-fill=names",
		"duplicate-keys=1.5", "index-bytes=-1", "metadata-format=v3"} {
		s, err := gen.ParseSpec("metadata-format=extended " + bad)
		if err == nil {
			err = s.Validate()
		}
		if !errors.Is(err, gen.ErrSpec) {
			t.Errorf("%q: %v, want ErrSpec", bad, err)
		}
	}
	if err := spec(t, "blob-size=5000").Validate(); err != nil {
		t.Errorf("a stock spec refused a blob setting it ignores: %v", err)
	}
	// A zero blob size means the default.
	z := gen.Spec{Variant: thin.Extended, Thins: 1, Mappings: gen.Range{Min: 10, Max: 10}}
	p, err := gen.NewPlan(z, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec().BlobSize != gen.DefaultBlobSize {
		t.Fatalf("blob size %d", p.Spec().BlobSize)
	}
}

// Random extended specs, sized by the generator's own estimates (many
// devices with large blobs included): every one fits its devices and
// checks clean; a sample is also compared with the record.
func TestRandomExtendedSpecs(t *testing.T) {
	n := 24
	if testing.Short() {
		n = 8
	}
	rng := rand.New(rand.NewPCG(11, 11))
	for i := range n {
		s := gen.DefaultSpec()
		s.Variant = thin.Extended
		s.BlobSize = []int{1, 16, 64, 256, 700, thin.MaxBlobSize}[rng.IntN(6)]
		s.IndexBytes = []int{0, 1, min(8, s.BlobSize), min(32, s.BlobSize), s.BlobSize}[rng.IntN(5)]
		s.IDs = gen.IDs(rng.IntN(3))
		s.BlobFill = gen.BlobFill(rng.IntN(3))
		s.DuplicateKeys = float64(rng.IntN(3)) * 0.3
		s.Thins = 1 + rng.IntN(300)
		s.Mappings = gen.Range{Min: 0, Max: uint64(rng.IntN(400))}
		s.Snapshots = rng.IntN(300)
		s.Shape = gen.Shape(rng.IntN(3))
		s.Rewrite = rng.Float64() * 0.2
		s.Deletions = rng.IntN(s.Thins + s.Snapshots + 1)
		s.MetadataSnapshot = rng.IntN(2) == 0
		s.Bulk = rng.IntN(3) == 0
		s.CommitEvery = []int{0, 50}[rng.IntN(2)]
		seed := rng.Uint64()
		t.Run(strconv.Itoa(i), func(t *testing.T) {
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
			if i%4 == 0 {
				want, err := rec.Final()
				if err != nil {
					t.Fatal(err)
				}
				if got, w := ourDump(t, img, false), xmlOf(t, want); !bytes.Equal(got, w) {
					t.Fatalf("%v seed %d: dump differs from the record: %s", s, seed, firstDiff(got, w))
				}
				checkFind(t, img, rec, want)
			}
		})
	}
}
