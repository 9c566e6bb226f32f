package blob_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/oracle"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
)

// fillData writes a distinct pattern into every data block the pool maps,
// so that the kernel reading a wrong block is noticed.
func fillData(t *testing.T, data string, blockSize uint32, nrData uint64, blocks map[uint64]bool) {
	t.Helper()
	f, err := os.Create(data)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bs := int64(blockSize) * 512
	if err := f.Truncate(int64(nrData) * bs); err != nil {
		t.Fatal(err)
	}
	for b := range blocks {
		pat := bytes.Repeat([]byte(fmt.Sprintf("thinmeta data block %d\n", b)), 64)
		if _, err := f.WriteAt(pat, int64(b)*bs); err != nil {
			t.Fatal(err)
		}
	}
}

// The kernel refuses an extended pool ("unsupported optional features",
// EINVAL) and leaves it byte-identical; once downgraded, with ids beyond
// 24 bits renumbered, the kernel activates it, and it maps exactly what
// the extended pool mapped: the kernel reads what thin_dump and the data
// image say, and our reading of the downgraded pool equals the mappings
// made in the extended one.
func TestKernelRefusesExtendedAcceptsDowngrade(t *testing.T) {
	oracle.Dir(t)
	dir := t.TempDir()
	meta, data := filepath.Join(dir, "meta.img"), filepath.Join(dir, "data.img")
	if err := os.WriteFile(meta, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(meta, 8<<20); err != nil {
		t.Fatal(err)
	}
	const nrData = 4096
	w, err := blob.Create(meta, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: nrData, BlobSize: 256, IndexBytes: 32})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	md := w.Metadata()
	// want[id][vblock] = data block, as the extended pool maps them.
	want := map[uint64]map[uint64]uint64{}
	mapRange := func(id, lo, hi, step uint64) {
		for v := lo; v < hi; v += step {
			b, err := md.Map(id, v)
			must(err)
			want[id][v] = b
		}
	}
	snap := func(id, origin uint64) {
		want[id] = map[uint64]uint64{}
		for v, b := range want[origin] {
			want[id][v] = b
		}
	}
	a, err := w.NewThin([]byte("vm-a"))
	must(err)
	want[a] = map[uint64]uint64{}
	mapRange(a, 0, 600, 1) // several leaves
	big := uint64(1) << 40
	must(w.CreateThin(big, []byte("vm-big")))
	want[big] = map[uint64]uint64{}
	mapRange(big, 0, 300, 3)
	must(w.Commit())
	s, err := w.NewSnapshot(a, []byte("vm-a@1"))
	must(err)
	snap(s, a)
	mapRange(a, 0, 40, 7)    // copy-on-write in the origin
	mapRange(s, 590, 640, 1) // and in the snapshot
	s2, err := w.NewSnapshot(big, []byte("vm-big@1"))
	must(err)
	snap(s2, big)
	mapRange(s2, 1, 20, 2)
	must(w.Commit())
	must(w.Close())
	if s <= thin.MaxStockDeviceID || s2 <= thin.MaxStockDeviceID {
		t.Fatalf("snapshots %d, %d should have ids beyond 24 bits", s, s2)
	}

	used := map[uint64]bool{}
	for _, m := range want {
		for _, b := range m {
			used[b] = true
		}
	}
	fillData(t, data, 128, nrData, used)
	before, err := os.ReadFile(meta)
	must(err)
	res := oracle.Run(t, "verify", "--meta", meta, "--data", data, "--no-precheck", "--block-size", "128",
		"--nr-data-blocks", fmt.Sprint(nrData), "--thin", fmt.Sprint(a), "--quiet", "--no-xml", "--timeout", "300")
	if res.OK() || !bytes.Contains(res.Output, []byte("unsupported optional features")) || !bytes.Contains(res.Output, []byte("-EINVAL")) {
		t.Fatalf("the kernel did not refuse the extended pool: exit %d\n%s", res.Code, res.Output)
	}
	after, err := os.ReadFile(meta)
	must(err)
	if !bytes.Equal(before, after) {
		t.Fatal("the kernel changed the extended pool it refused")
	}

	md, err = thin.OpenMetadata(meta, nil)
	must(err)
	changes, err := blob.Downgrade(md, true)
	must(err)
	must(md.Close())
	newID := map[uint64]uint64{}
	for _, c := range changes {
		newID[c.Old] = c.New
	}
	// The ids that fit stay; the others take the lowest free ids in order.
	if len(changes) != 3 || newID[big] != 1 || newID[s] != 2 || newID[s2] != 3 {
		t.Fatalf("renumbered %v (thins %d, %d, %d, %d)", changes, a, big, s, s2)
	}
	p, err := thin.Open(meta, nil)
	must(err)
	for old, m := range want {
		id := old
		if n, ok := newID[old]; ok {
			id = n
		}
		got := map[uint64]uint64{}
		for mp, err := range p.Mappings(id, 0, 1<<62) {
			must(err)
			got[mp.VBlock] = mp.Block
		}
		if len(got) != len(m) {
			t.Fatalf("thin %d (was %d) has %d mappings, the extended pool had %d", id, old, len(got), len(m))
		}
		for v, b := range m {
			if got[v] != b {
				t.Fatalf("thin %d (was %d) maps %d to %d, the extended pool to %d", id, old, v, got[v], b)
			}
		}
	}
	p.Close()
	tptest.CheckClean(t, meta)
	res = oracle.Run(t, "verify", "--meta", meta, "--data", data, "--read-mapped", "40",
		"--write-dev", "2", "--write-block", "5 615", "--quiet", "--no-xml", "--timeout", "400")
	if !res.OK() {
		t.Fatalf("kernel oracle on the downgraded pool: exit %d\n%s", res.Code, res.Output)
	}
	tptest.CheckClean(t, meta) // what the kernel left
}
