package thin_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

func countMappings(t *testing.T, p *thin.Pool, id uint64) int {
	t.Helper()
	n := 0
	for _, err := range p.Mappings(id, 0, 1<<62) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// A metadata snapshot held within a transaction (the CLI's
// reserve_metadata_snap in a batch) captures the transaction as it is at
// that point, changes after it do not reach it — even to a device whose
// path was already shadowed — and it becomes durable with the one commit
// of the batch, or not at all. (Before, reserve_metadata_snap committed the
// messages before it: a batch was not atomic.)
func TestReserveMetadataSnapshot(t *testing.T) {
	d := memdev.New(8 << 20)
	md, err := thin.Format(d, d.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 10000})
	if err != nil {
		t.Fatal(err)
	}
	committed := append([]byte(nil), d.Bytes()...)
	if err := md.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	if err := md.MapRange(1, 0, 100); err != nil {
		t.Fatal(err)
	}
	if err := md.ReserveMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Bytes()[:4096], committed[:4096]) {
		t.Fatal("holding a snapshot wrote the superblock")
	}
	if err := md.ReserveMetadataSnapshot(); !errors.Is(err, thin.ErrSnapshotHeld) {
		t.Fatalf("a second snapshot: %v", err)
	}
	// The same device again, and a new one.
	if err := md.MapRange(1, 100, 100); err != nil {
		t.Fatal(err)
	}
	if err := md.CreateSnapshot(2, 1); err != nil {
		t.Fatal(err)
	}
	// Abort discards the snapshot with the rest.
	if err := md.Abort(); err != nil {
		t.Fatal(err)
	}
	if p, _ := thin.NewPool(d, d.Size()); p.HasMetadataSnapshot() {
		t.Fatal("an aborted snapshot is held")
	}
	if err := md.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	if err := md.MapRange(1, 0, 100); err != nil {
		t.Fatal(err)
	}
	if err := md.ReserveMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := md.MapRange(1, 100, 100); err != nil {
		t.Fatal(err)
	}
	if err := md.CreateSnapshot(2, 1); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := thin.NewPool(d, d.Size())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := p.MetadataSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if got := countMappings(t, snap, 1); got != 100 {
		t.Errorf("the snapshot holds %d mappings of thin 1, want the 100 made before it", got)
	}
	if _, err := snap.Device(2); err == nil {
		t.Error("the snapshot holds the thin created after it")
	}
	if got := countMappings(t, p, 1); got != 200 {
		t.Errorf("the live pool holds %d mappings of thin 1", got)
	}
	if sum, _ := check.Pool(context.Background(), p, check.Options{}, func(f check.Finding) { t.Error(f) }); !sum.OK(false) {
		t.Fatalf("%+v", sum)
	}
	img := filepath.Join(t.TempDir(), "meta.img")
	os.WriteFile(img, d.Bytes(), 0o644)
	tptest.CheckClean(t, img)
	tptest.CheckClean(t, img, "-m")
	if got := tptest.MustRunGen(t, tptest.V110, "thin_dump", "-m", img).Stdout; !bytes.Contains(got, []byte(`length="100"`)) {
		t.Errorf("thin_dump -m of the snapshot:\n%s", got)
	}

	// Held and released in one transaction: nothing is left of it.
	md2, err := thin.NewMetadata(d, d.Size(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := md2.ReleaseMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := md2.ReserveMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := md2.Delete(2); err != nil {
		t.Fatal(err)
	}
	if err := md2.ReleaseMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := md2.Commit(); err != nil {
		t.Fatal(err)
	}
	p, _ = thin.NewPool(d, d.Size())
	if p.HasMetadataSnapshot() || superblock.Decode(d.Bytes()[:4096]).HeldRoot != 0 {
		t.Fatal("a released snapshot is held")
	}
	if sum, _ := check.Pool(context.Background(), p, check.Options{}, func(f check.Finding) { t.Error(f) }); !sum.OK(false) {
		t.Fatalf("%+v", sum)
	}
	os.WriteFile(img, d.Bytes(), 0o644)
	tptest.CheckClean(t, img)
}
