package thin_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// saveImage writes a device's bytes to a file for the tools.
func saveImage(t *testing.T, dev *memdev.Dev) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "meta.img")
	if err := os.WriteFile(p, dev.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A call refused for what it was asked changes nothing: the transaction
// goes on and commits what the successful calls did, which thin_check of
// both generations accepts and thin_dump shows exactly.
func TestTransactionUsableAfterRefusals(t *testing.T) {
	dev := memdev.New(1024 * transaction.BlockSize)
	md, err := thin.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := md.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	if err := md.MapRange(1, 0, 3); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := md.CreateThin(2); err != nil {
		t.Fatal(err)
	}
	if _, err := md.Map(2, 0); err != nil { // the last data block
		t.Fatal(err)
	}
	_, mapErr := md.Map(1, 10)
	_, unmapErr := md.Unmap(1, 5, 2)
	for _, tc := range []struct {
		err  error
		want error
	}{
		{mapErr, thin.ErrNoDataSpace},
		{md.MapRange(2, 1, 5), thin.ErrNoDataSpace},
		{md.CreateThin(1), thin.ErrExists},
		{md.CreateSnapshot(3, 9), thin.ErrNoDevice},
		{md.Delete(9), thin.ErrNoDevice},
		{unmapErr, thin.ErrRange},
		{md.SetTransactionID(5, 6), thin.ErrTransactionID},
		{md.ResizeData(1), thin.ErrShrink},
		{md.ReleaseMetadataSnapshot(), superblock.ErrNoMetadataSnapshot},
		{md.CreateThin(1 << 24), thin.ErrIDRange},
		{md.SetBlob(1, []byte("x")), thin.ErrNotExtended},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%v, want %v", tc.err, tc.want)
		}
		if errors.Is(tc.err, transaction.ErrFailed) {
			t.Errorf("%v ended the transaction", tc.err)
		}
	}
	if err := md.SetTransactionID(0, 7); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatalf("commit after refusals: %v", err)
	}
	img := saveImage(t, dev)
	tptest.CheckClean(t, img)
	want := `<superblock uuid="" time="0" transaction="7" flags="0" version="2" data_block_size="128" nr_data_blocks="4">
  <device dev_id="1" mapped_blocks="3" transaction="0" creation_time="0" snap_time="0">
    <range_mapping origin_begin="0" data_begin="0" length="3" time="0"/>
  </device>
  <device dev_id="2" mapped_blocks="1" transaction="0" creation_time="0" snap_time="0">
    <single_mapping origin_block="0" data_block="3" time="0"/>
  </device>
</superblock>
`
	if got := string(tptest.MustRun(t, "thin_dump", img).Stdout); got != want {
		t.Fatalf("thin_dump:\n%s\nwant:\n%s", got, want)
	}
}

// A full metadata device ends the transaction: the change that hit it may
// be half made, so every later change and Commit fail (ErrFailed, with
// the first failure) until Abort, which returns to the last commit, from
// which the pool goes on. FreeMetadataBlocks tells a caller how near the
// end a batch is.
func TestTransactionFailedUntilAbort(t *testing.T) {
	dev := memdev.New(40 * transaction.BlockSize)
	md, err := thin.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: 100000})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := superblock.Read(transaction.NewReader(dev, dev.Size()), superblock.Location, 0)
	if err != nil {
		t.Fatal(err)
	}
	root := spacemap.DecodeRoot(sb.MetadataSpaceMapRoot[:])
	free, err := md.FreeMetadataBlocks()
	if err != nil || free != root.NrBlocks-root.NrAllocated || free == 0 {
		t.Fatalf("FreeMetadataBlocks %d, %v; the superblock's space map root has %d of %d in use", free, err, root.NrAllocated, root.NrBlocks)
	}
	if n, err := md.FreeDataBlocks(); err != nil || n != 100000 {
		t.Fatalf("FreeDataBlocks %d, %v", n, err)
	}
	// Commit a thin per transaction until the metadata is nearly full,
	// then fill it within one transaction.
	var committed uint64
	for ; ; committed++ {
		if f, _ := md.FreeMetadataBlocks(); f < 12 {
			break
		}
		if err := md.CreateThin(committed); err != nil {
			t.Fatalf("thin %d with %d blocks free: %v", committed, free, err)
		}
		if _, err := md.Map(committed, 0); err != nil {
			t.Fatal(err)
		}
		if err := md.Commit(); err != nil {
			t.Fatalf("commit of thin %d: %v", committed, err)
		}
	}
	if committed == 0 {
		t.Fatal("no room for a thin")
	}
	var failure error
	last, _ := md.FreeMetadataBlocks()
	for v := uint64(0); failure == nil; v += 2 {
		_, failure = md.Map(0, v+1000)
		f, err := md.FreeMetadataBlocks()
		if err != nil || f > last {
			t.Fatalf("free metadata blocks %d after %d: %v", f, last, err)
		}
		last = f
	}
	if !errors.Is(failure, thin.ErrNoMetadataSpace) || errors.Is(failure, transaction.ErrFailed) {
		t.Fatalf("filling the metadata: %v", failure)
	}
	if last > 3 {
		t.Errorf("ran out with %d metadata blocks free", last)
	}
	_, err1 := md.Map(1, 50)
	for i, err := range []error{md.CreateThin(1000), err1, md.Delete(0), md.Commit()} {
		if !errors.Is(err, transaction.ErrFailed) || !errors.Is(err, thin.ErrNoMetadataSpace) {
			t.Errorf("call %d after the failure: %v", i, err)
		}
	}
	if err := md.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := md.Delete(0); err != nil {
		t.Fatalf("after Abort: %v", err)
	}
	if err := md.Commit(); err != nil {
		t.Fatalf("commit after Abort: %v", err)
	}
	img := saveImage(t, dev)
	tptest.CheckClean(t, img)
	out := string(tptest.MustRun(t, "thin_dump", img).Stdout)
	if n := strings.Count(out, "<device "); uint64(n) != committed-1 || strings.Contains(out, `dev_id="0"`) {
		t.Fatalf("%d thins committed, one deleted; thin_dump shows:\n%s", committed, out)
	}
}
