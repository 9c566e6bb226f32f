package blob_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// bigPool builds, bottom-up, an extended pool of n thins with blobs of
// blobSize bytes (each starting with its id) in a file, and returns its
// path. The thins are empty and share one empty mapping tree, as
// snapshots of an empty thin do, so the pool stays small: its size is the
// device-details tree.
func bigPool(tb testing.TB, n uint64, blobSize int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "meta.img")
	leaves := n/uint64(btree.MaxEntries(thin.DetailsSize+blobSize)/2) + 1
	size := int64(leaves+n/100+4096) * transaction.BlockSize
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		tb.Fatal(err)
	}
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	b, err := thin.NewBuild(transaction.FileDevice{File: f}, size, 0)
	must(err)
	tm := b.Manager()
	empty, err := btree.Empty(tm, &btree.ValueType{Size: thin.MappingValueSize})
	must(err)
	details := btree.NewBuilder(tm, &btree.ValueType{Size: thin.DetailsSize + blobSize})
	mapping := btree.NewBuilder(tm, &btree.ValueType{Size: thin.MappingValueSize})
	v := make([]byte, thin.DetailsSize+blobSize)
	root := binary.LittleEndian.AppendUint64(nil, empty)
	for id := range n {
		thin.Details{CreationTime: uint32(id)}.Encode(v)
		copy(v[thin.DetailsSize:], strconv.AppendUint(nil, id, 10))
		must(details.Add(id, v))
		must(mapping.Add(id, root))
	}
	// The empty tree has one reference per thin; it was made with one.
	for range n - 1 {
		must(b.MetadataSpaceMap().Inc(empty))
	}
	dr, err := details.Finish()
	must(err)
	mr, err := mapping.Finish()
	must(err)
	dsm, err := spacemap.CreateData(tm, 1000)
	must(err)
	must(dsm.Commit())
	must(b.Commit(thin.BuildRoots{DataBlockSize: 128, MappingRoot: mr, DetailsRoot: dr, DataSpaceMap: dsm.Root(),
		Extension: &thin.Extension{BlobSize: uint32(blobSize), NextThinID: n, NrThins: n}}))
	return path
}

// enumerate walks every thin and returns how many there were and the peak
// heap in use while walking, sampled every 50,000 thins.
func enumerate(tb testing.TB, p *blob.Pool) (count uint64, peak uint64) {
	var ms runtime.MemStats
	for t, err := range p.Thins() {
		if err != nil {
			tb.Fatal(err)
		}
		if t.ID != count || t.CreationTime != uint32(count) {
			tb.Fatalf("thin %d where %d was expected", t.ID, count)
		}
		count++
		if count%50000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	return count, peak
}

// Enumerating 1,000,000 thins with 256-byte blobs (from the page cache).
// Reported: thins/s, B/thin allocated, and the peak heap while walking.
// The pool is built once; THINMETA_BENCH_THINS changes the count.
func BenchmarkThins(b *testing.B) {
	n := uint64(1_000_000)
	if v, err := strconv.ParseUint(os.Getenv("THINMETA_BENCH_THINS"), 10, 64); err == nil && v > 0 {
		n = v
	}
	path := bigPool(b, n, 256)
	p, err := blob.Open(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if p.Count() != n {
		b.Fatalf("count %d", p.Count())
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak uint64
	var elapsed time.Duration
	runs := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		c, pk := enumerate(b, p)
		elapsed += time.Since(start)
		runs++
		if c != n {
			b.Fatalf("%d thins enumerated, %d in the pool", c, n)
		}
		peak = max(peak, pk)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(n)*float64(runs)/elapsed.Seconds(), "thins/s")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(runs)/float64(n), "B/thin")
	b.ReportMetric(float64(peak-min(peak, before.HeapAlloc)), "peak-heap-growth-B")
}

// Thins streams: enumerating 200,000 thins allocates a bounded amount,
// independent of the number of thins, and the heap does not grow with
// them.
func TestThinsStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 200,000-thin pool")
	}
	const n = 200_000
	p, err := blob.Open(bigPool(t, n, 256), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	enumerate(t, p) // warm up
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c, peak := enumerate(t, p)
	runtime.ReadMemStats(&after)
	if c != n {
		t.Fatalf("%d thins", c)
	}
	// The samples themselves allocate nothing; a walk keeps one node
	// buffer per tree level.
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 256<<10 {
		t.Fatalf("enumerating %d thins allocated %d bytes", n, allocated)
	}
	if peak > before.HeapAlloc+256<<10 {
		t.Fatalf("the heap grew from %d to %d bytes", before.HeapAlloc, peak)
	}
}

// The pool the benchmark enumerates is sound: downgraded, thin_check
// accepts it; upgraded again with an index, every thin is found by its
// name. (Conversions of tens of thousands of thins.)
func TestBigPool(t *testing.T) {
	if testing.Short() {
		t.Skip("converts a 30,000-thin pool")
	}
	const n = 30_000
	path := bigPool(t, n, 256)
	md, err := thin.OpenMetadata(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	if _, err := blob.Downgrade(md, false); err != nil {
		t.Fatal(err)
	}
	tptest.CheckClean(t, path)
	if got := bytes.Count(tptest.MustRun(t, "thin_dump", path).Stdout, []byte("<device ")); got != n {
		t.Fatalf("thin_dump shows %d devices", got)
	}
	if err := blob.Upgrade(md, 64, 16); err != nil {
		t.Fatal(err)
	}
	for id := range uint64(n) {
		if err := md.SetBlob(id, padTo(strconv.AppendUint([]byte("thin-"), id, 10), 64)); err != nil {
			t.Fatal(err)
		}
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := blob.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, id := range []uint64{0, 1, 4097, n - 1} {
		var found []uint64
		for th, err := range p.Find(strconv.AppendUint([]byte("thin-"), id, 10)) {
			if err != nil {
				t.Fatal(err)
			}
			found = append(found, th.ID)
		}
		if len(found) != 1 || found[0] != id {
			t.Fatalf("Find(thin-%d) = %v", id, found)
		}
	}
	if c, _ := enumerate(t, p); c != n || p.Count() != n || p.NextID() != n {
		t.Fatalf("%d thins enumerated, count %d, next id %d", c, p.Count(), p.NextID())
	}
}
