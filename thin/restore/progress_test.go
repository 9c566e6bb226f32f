package restore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/progresstest"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/restore"
	"github.com/thinmeta/thinmeta/transaction"
)

// progressXML writes the XML of a pool of 400,000 mappings (about 20 MB)
// and returns its path, its size and a metadata size that holds it.
func progressXML(t *testing.T) (string, int64, uint64) {
	t.Helper()
	model := genpool.Generate(rand.New(rand.NewPCG(3, 9)), genpool.Spec{Devices: 20, MinMappings: 20000, MaxMappings: 20000,
		MeanRun: 1, Sparsity: 2, SnapshotFraction: 0.3, RewriteFraction: 0.2})
	path := filepath.Join(t.TempDir(), "pool.xml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.WriteXML(f); err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	f.Close()
	return path, st.Size(), model.MetadataBlocks()
}

func TestRestoreProgress(t *testing.T) {
	xml, size, blocks := progressXML(t)
	out := filepath.Join(t.TempDir(), "meta")
	sparse(t, out, blocks)
	rec := progresstest.NewRecorder(t)
	if _, err := restore.RestoreFile(context.Background(), xml, out, restore.Options{Progress: rec.Func()}); err != nil {
		t.Fatal(err)
	}
	rec.CheckComplete(t, uint64(size)) // RestoreFile knows the size
	// From a pipe, Total is unknown and stays 0; the last Done is the
	// input's length.
	in, err := os.Open(xml)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dev, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	rec = progresstest.NewRecorder(t)
	if _, err := restore.Restore(context.Background(), struct{ io.Reader }{in}, transaction.FileDevice{File: dev}, int64(blocks)*4096, restore.Options{Progress: rec.Func()}); err != nil {
		t.Fatal(err)
	}
	rs := rec.Reports()
	if last := rs[len(rs)-1]; last.Total != 0 || last.Done != uint64(size) {
		t.Errorf("last report from a pipe %+v, want Done %d Total 0", last, size)
	}
	if len(rs) > int(size>>20)+2 {
		t.Errorf("%d reports for %d MiB of input", len(rs), size>>20)
	}
}

// countingReader counts the reads made after arm is set.
type countingReader struct {
	r     io.Reader
	arm   atomic.Bool
	after atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	if c.arm.Load() {
		c.after.Add(1)
	}
	return c.r.Read(b)
}

// A cancelled restore returns context.Canceled at once and leaves no
// pool: the output has no valid superblock (thin_check 0.9.0 and 1.1.0
// both refuse it). Cancelled before the start, the output is untouched.
func TestRestoreCancel(t *testing.T) {
	xml, size, blocks := progressXML(t)
	out := filepath.Join(t.TempDir(), "meta")
	// Start from a valid pool on the output: the cancelled restore must
	// not leave it looking valid.
	sparse(t, out, blocks)
	if _, err := restore.RestoreFile(context.Background(), xml, out, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := restore.RestoreFile(ctx, xml, out, restore.Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("restore under a cancelled context: %v", err)
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(before, after) {
		t.Error("a restore cancelled before it started changed the output")
	}

	in, err := os.Open(xml)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cr := &countingReader{r: in}
	dev, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := progresstest.NewRecorder(t)
	var cancelled time.Time
	ctx = rec.CancelWhen(t, func(p thin.Progress) bool { return p.Done >= uint64(size)/2 },
		func() { cr.arm.Store(true); cancelled = time.Now() })
	_, err = restore.Restore(ctx, cr, transaction.FileDevice{File: dev}, int64(blocks)*4096, restore.Options{Progress: rec.Func(), InputSize: size})
	took := time.Since(cancelled)
	dev.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("restore returned %v, want context.Canceled", err)
	}
	if n := cr.after.Load(); n > 2 {
		t.Errorf("%d reads of the input after the cancellation, at most 2 expected", n)
	}
	t.Logf("returned %v after the cancellation", took)
	if took > 100*time.Millisecond {
		t.Errorf("returned %v after the cancellation", took)
	}
	if p, err := thin.Open(out, nil); err == nil {
		p.Close()
		t.Error("the output of a cancelled restore opens as a pool")
	}
	for _, g := range []tptest.Gen{tptest.V090, tptest.V110} {
		if r := tptest.RunGen(t, g, "thin_check", out); r.Code == 0 {
			t.Errorf("thin_check %v accepts the output of a cancelled restore", g)
		}
	}
}

// The last phase of a restore, writing the data space map, takes seconds
// for a data device of 2^31 blocks (131,600 bitmaps): a cancellation then
// is noticed at the next bitmap, not after them all.
func TestRestoreCancelWritingSpaceMap(t *testing.T) {
	if testing.Short() {
		t.Skip("a 2 GiB sparse metadata device")
	}
	xml := `<superblock uuid="" time="0" transaction="1" flags="0" version="2" data_block_size="128" nr_data_blocks="2147483648">
  <device dev_id="0" mapped_blocks="1" transaction="0" creation_time="0" snap_time="0">
    <single_mapping origin_block="0" data_block="0" time="0"/>
  </device>
</superblock>
`
	out := filepath.Join(t.TempDir(), "meta")
	sparse(t, out, 1<<19)
	dev, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	rec := progresstest.NewRecorder(t)
	var cancelled time.Time
	ctx := rec.CancelWhen(t, func(p thin.Progress) bool { return p.Phase == "space maps" },
		func() { cancelled = time.Now() })
	_, err = restore.Restore(ctx, bytes.NewReader([]byte(xml)), transaction.FileDevice{File: dev}, 1<<31,
		restore.Options{Progress: rec.Func(), InputSize: int64(len(xml))})
	took := time.Since(cancelled)
	if !errors.Is(err, context.Canceled) || cancelled.IsZero() {
		t.Fatalf("restore returned %v, want context.Canceled", err)
	}
	t.Logf("returned %v after the cancellation", took)
	if took > 100*time.Millisecond {
		t.Errorf("returned %v after the cancellation", took)
	}
	if p, err := thin.Open(out, nil); err == nil {
		p.Close()
		t.Error("the output of a cancelled restore opens as a pool")
	}
}
