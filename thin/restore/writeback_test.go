package restore_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin/restore"
	"github.com/thinmeta/thinmeta/transaction"
)

// hintDev is a memdev.Dev that also takes writeback hints, and records
// them, failing the test for a hint over bytes not written yet.
type hintDev struct {
	*memdev.Dev
	t       *testing.T
	written map[int64]bool // 4 KiB blocks written so far
	hinted  int64          // bytes hinted
}

func (d *hintDev) WriteAt(p []byte, off int64) (int, error) {
	n, err := d.Dev.WriteAt(p, off)
	for b := off / transaction.BlockSize; b*transaction.BlockSize < off+int64(n); b++ {
		d.written[b] = true
	}
	return n, err
}

func (d *hintDev) StartWriteback(off, n int64) {
	if off%transaction.BlockSize != 0 || n <= 0 || n%transaction.BlockSize != 0 {
		d.t.Errorf("writeback hint [%d, +%d) is not a run of whole blocks", off, n)
	}
	for b := off / transaction.BlockSize; b*transaction.BlockSize < off+n; b++ {
		if !d.written[b] {
			d.t.Errorf("writeback hint [%d, +%d) covers block %d, not written yet", off, n, b)
			return
		}
	}
	d.hinted += n
}

// A restore onto a device that takes writeback hints hints only at
// blocks it has written, hints at most of what it writes (the leaves), and
// writes the same image as onto one that does not.
func TestRestoreStartsWriteback(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	p := genpool.Generate(rng, genpool.Spec{Devices: 4, MinMappings: 20000, MaxMappings: 30000,
		MeanRun: 6, Sparsity: 3, SnapshotFraction: 0.4, RewriteFraction: 0.2})
	var xml bytes.Buffer
	if err := p.WriteXML(&xml); err != nil {
		t.Fatal(err)
	}
	size := int64(p.MetadataBlocks()) * transaction.BlockSize
	plain := memdev.New(size)
	if _, err := restore.Restore(context.Background(), bytes.NewReader(xml.Bytes()), plain, size, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	hd := &hintDev{Dev: memdev.New(size), t: t, written: map[int64]bool{}}
	st, err := restore.Restore(context.Background(), bytes.NewReader(xml.Bytes()), hd, size, restore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hd.Bytes(), plain.Bytes()) {
		t.Fatal("the image written with writeback hints differs from the one without")
	}
	if leaves := int64(st.Leaves) * transaction.BlockSize; hd.hinted < leaves*9/10 {
		t.Errorf("writeback hinted for %d bytes; the %d leaves are %d", hd.hinted, st.Leaves, leaves)
	}
}
