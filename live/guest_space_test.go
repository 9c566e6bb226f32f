package live

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/thin"
)

// A pool whose metadata is full: thinmeta fills a small metadata device
// with thins offline, the kernel runs it, and a snapshot of an active
// origin fails — the origin is resumed all the same.
func TestGuestSnapshotOutOfMetadataSpace(t *testing.T) {
	const metaBytes, dataBytes = 256 << 10, 8 << 20 // 64 metadata blocks
	s := newScenario(t, regionOutOfMetadata, metaBytes, dataBytes)
	// Format, then create thins until the metadata space map has almost
	// nothing left.
	var id, free uint64
	func() {
		d, err := OpenDevice(s.meta, DeviceOptions{Write: true, Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		md, err := thin.Format(d, d.Size(), &thin.FormatOptions{DataBlockSize: blockSize, NrDataBlocks: dataBytes / blockBytes})
		if err != nil {
			t.Fatal(err)
		}
		defer md.Close()
		if err := md.Commit(); err != nil {
			t.Fatal(err)
		}
		// Leave the kernel room for a few commits (a commit shadows the
		// space maps' blocks: with 4 free blocks the kernel finds itself
		// out of metadata space at its first status), not for 100 snapshots.
		for id = 1; md.MetadataSpaceMap().NrFree() > 14; id++ {
			if err := md.CreateThin(id); err != nil {
				t.Fatal(err)
			}
			if err := md.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		free = md.MetadataSpaceMap().NrFree()
	}()
	t.Logf("%d thins, %d metadata blocks free", id-1, free)

	p, err := Create(s.ctl, "r3-pool", CreateOptions{MetadataDevice: s.meta, DataDevice: s.data})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Deactivate()
	origin, err := p.ActivateThin("r3-origin", 1, 8*blockSize)
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Deactivate()
	ps, _ := p.Status()
	t.Logf("status before: %+v", ps)
	// Snapshots share all their blocks, so they use metadata slowly; each
	// create_thin takes a block for its empty tree. Alternate the two
	// until the metadata is full, then snapshot twice more: whatever
	// fails — the kernel running out inside create_snap or create_thin,
	// or the pool refusing messages once it is out of metadata space —
	// the origin must be resumed every time.
	var errs []error
	next := uint64(5000)
	for snapID := uint64(1000); snapID < 1100 && len(errs) < 3; snapID++ {
		err := p.Snapshot(snapID, 1, nil)
		if suspended(t, s.ctl, origin.Name) {
			t.Fatalf("snapshot %d: origin left suspended (%v)", snapID, err)
		}
		if err != nil {
			errs = append(errs, err)
			t.Logf("snapshot %d: %v", snapID, err)
			continue
		}
		for range 2 {
			if err := p.CreateThin(next); err != nil {
				t.Logf("create_thin %d: %v", next, err)
			}
			next++
		}
	}
	ps, _ = p.Status()
	t.Logf("status after: %+v", ps)
	if len(errs) < 3 {
		t.Fatal("snapshots never ran out of metadata space")
	}
	if !errors.Is(errs[2], ErrReadOnly) || ps.Mode != ReadOnly {
		t.Fatalf("a pool out of metadata space: %v, mode %v", errs[2], ps.Mode)
	}
	node, _ := origin.Path()
	dio := openDirect(t, node)
	within(t, 20*time.Second, "read of the origin", func() error { _, err := dio.read(0); return err })
	dio.f.Close()
}

// Growth on the low water event while a writer writes past the pool's
// original size: a manager waits for the event, grows the data device (a
// linear device reloaded larger) and the pool; no write fails. Then the
// metadata device grows and the status reflects both.
func TestGuestGrowth(t *testing.T) {
	const metaBytes, dataBytes, grownData, grownMeta = 1 << 20, 2 << 20, 4 << 20, 2 << 20
	const lowWater, writes = 8, 56 // the pool starts with 32 blocks
	s := newScenario(t, regionGrowth, metaBytes, dataBytes)
	p := s.pool(CreateOptions{LowWater: lowWater})
	if err := p.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	th, err := p.ActivateThin("r6-thin", 1, 64*blockSize)
	if err != nil {
		t.Fatal(err)
	}
	node, _ := th.Path()
	d := openDirect(t, node)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var grew PoolStatus
	var growErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s0, err := p.WaitLowWater(ctx)
		if err != nil {
			growErr = err
			return
		}
		grew = s0
		s.grow(s.dataName, grownData)
		growErr = p.GrowData(grownData / blockBytes)
	}()
	var writeErr error
	for b := range writes {
		if writeErr = d.write(b, b+1); writeErr != nil {
			break
		}
	}
	wg.Wait()
	if writeErr != nil {
		t.Fatalf("write: %v (growth: %v)", writeErr, growErr)
	}
	if growErr != nil {
		t.Fatal(growErr)
	}
	if grew.FreeDataBlocks() > lowWater {
		t.Fatalf("woken with %d free blocks, low water %d", grew.FreeDataBlocks(), lowWater)
	}
	for b := range writes {
		if got, err := d.read(b); err != nil || got != b+1 {
			t.Fatalf("block %d: generation %d %v", b, got, err)
		}
	}
	ps, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if ps.TotalDataBlocks != grownData/blockBytes || ps.UsedDataBlocks != writes || ps.Mode != ReadWrite {
		t.Fatalf("status after data growth %+v", ps)
	}
	// Metadata: the linear device grows, then the pool takes it.
	if err := p.GrowMetadata(); err == nil {
		t.Fatal("metadata growth without a larger device accepted")
	}
	s.grow(s.metaName, grownMeta)
	if err := p.GrowMetadata(); err != nil {
		t.Fatal(err)
	}
	ps, err = p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if ps.TotalMetadataBlocks != grownMeta/MetadataBlockSize {
		t.Fatalf("status after metadata growth %+v", ps)
	}
	if err := p.GrowData(1); err == nil {
		t.Fatal("shrinking accepted")
	}
	if err := p.GrowData(1 << 20); !errors.Is(err, ErrTooSmall) {
		t.Fatalf("growth beyond the data device: %v", err)
	}
	d.f.Close()
	if err := th.Deactivate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Deactivate(); err != nil {
		t.Fatal(err)
	}
	s.announce(grownMeta, "")
}
