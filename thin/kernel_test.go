package thin_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/internal/oracle"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// fillData writes a distinct pattern into every mapped data block of the
// pool in meta, so the kernel reading a wrong block is noticed.
func fillData(t *testing.T, meta, data string, blockSize uint32, nrData uint64) {
	t.Helper()
	p, err := thin.Open(meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	f, err := os.Create(data)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bs := int64(blockSize) * 512
	if err := f.Truncate(int64(nrData) * bs); err != nil {
		t.Fatal(err)
	}
	done := map[uint64]bool{}
	for dr, err := range p.DeviceRoots() {
		if err != nil {
			t.Fatal(err)
		}
		for m, err := range p.Mappings(dr.ID, 0, 1<<62) {
			if err != nil {
				t.Fatal(err)
			}
			if done[m.Block] {
				continue
			}
			done[m.Block] = true
			pat := bytes.Repeat([]byte(fmt.Sprintf("thinmeta data block %d\n", m.Block)), 64)
			if _, err := f.WriteAt(pat, int64(m.Block)*bs); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A pool written by thinmeta — multi-level trees, a snapshot sharing them,
// writes that broke the sharing, a deleted thin, an unmapped range and a
// held metadata snapshot — is activated by the real kernel, which reads
// exactly the data the metadata maps, writes through it, and leaves
// metadata that thin_check and our check accept.
func TestKernelAcceptsOurPool(t *testing.T) {
	oracle.Dir(t)
	dir := t.TempDir()
	meta, data := filepath.Join(dir, "meta.img"), filepath.Join(dir, "data.img")
	f, err := os.Create(meta)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(8 << 20)
	f.Close()
	const nrData = 8192
	md, err := thin.CreateMetadata(meta, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: nrData})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mapRange := func(id, lo, hi, step uint64) {
		for v := lo; v < hi; v += step {
			_, err := md.Map(id, v)
			must(err)
		}
	}
	must(md.CreateThin(1))
	mapRange(1, 0, 600, 1) // three leaves under an internal root
	must(md.CreateThin(2))
	mapRange(2, 0, 400, 3)
	must(md.SetTransactionID(0, 1))
	must(md.Commit())
	must(md.CreateSnapshot(3, 1)) // shares device 1's whole tree
	mapRange(1, 0, 40, 7)         // copy-on-write in the origin
	mapRange(3, 590, 640, 1)      // and in the snapshot
	must(md.Commit())
	must(md.Delete(2))
	must(md.CreateSnapshot(4, 3))
	_, err = md.Unmap(4, 100, 300)
	must(err)
	must(md.Commit())
	must(md.ReserveMetadataSnapshot())
	must(md.Commit())
	mapRange(1, 700, 760, 1)
	must(md.Commit())
	must(md.Close())

	tptest.CheckClean(t, meta)
	fillData(t, meta, data, 128, nrData)
	res := oracle.Run(t, "verify", "--meta", meta, "--data", data, "--read-mapped", "48",
		"--write-dev", "3", "--write-block", "5 620", "--quiet", "--no-xml", "--timeout", "400")
	if !res.OK() {
		t.Fatalf("kernel oracle: exit %d\n%s", res.Code, res.Output)
	}

	// What the kernel left is clean for both thin_check generations and
	// for us, and our dump of it equals thin_dump's.
	tptest.CheckClean(t, meta)
	tptest.CheckClean(t, meta, "-m")
	img, err := os.Open(meta)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	st, _ := img.Stat()
	var fs []check.Finding
	if sum, _ := check.Device(context.Background(), img, st.Size(), check.Options{}, func(f check.Finding) { fs = append(fs, f) }); !sum.OK(false) {
		t.Fatalf("our check after the kernel: %v", fs)
	}
	p, err := thin.NewPool(img, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	var ours bytes.Buffer
	must(dump.Dump(context.Background(), &ours, p, dump.Options{}))
	if want := tptest.MustRun(t, "thin_dump", meta).Stdout; !bytes.Equal(ours.Bytes(), want) {
		t.Fatalf("dump after the kernel differs from thin_dump")
	}
}
