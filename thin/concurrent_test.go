package thin_test

import (
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// A Pool opened on its own is safe for concurrent use (its documentation
// says so): goroutines reading devices, mappings, runs, lookups, the
// space maps and the metadata snapshot all at once, through a cache small
// enough to evict all the time, each read exactly what was written. Run
// with -race (.ci/run does) to hold the claim to the race detector.
func TestPoolConcurrentReaders(t *testing.T) {
	dev := memdev.New(2048 * transaction.BlockSize)
	md, err := thin.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: 50000})
	if err != nil {
		t.Fatal(err)
	}
	// The model: what each device maps, as Map handed it out.
	want := map[uint64]map[uint64]uint64{}
	for id := range uint64(8) {
		if err := md.CreateThin(id); err != nil {
			t.Fatal(err)
		}
		want[id] = map[uint64]uint64{}
		for v := uint64(0); v < 600; v += 1 + id%3 {
			b, err := md.Map(id, v*7)
			if err != nil {
				t.Fatal(err)
			}
			want[id][v*7] = b
		}
	}
	if err := md.ReserveMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := thin.NewPool(dev, dev.Size())
	if err != nil {
		t.Fatal(err)
	}
	p.Reader().SetCacheBlocks(8)

	read := func(p *thin.Pool) error {
		n := 0
		for d, err := range p.Devices() {
			if err != nil {
				return err
			}
			if d.MappedBlocks != uint64(len(want[d.ID])) {
				return fmt.Errorf("device %d: %d mapped, want %d", d.ID, d.MappedBlocks, len(want[d.ID]))
			}
			n++
		}
		if n != len(want) {
			return fmt.Errorf("%d devices", n)
		}
		for id, ms := range want {
			got := map[uint64]uint64{}
			for m, err := range p.Mappings(id, 0, 1<<40) {
				if err != nil {
					return err
				}
				got[m.VBlock] = m.Block
			}
			if !maps.Equal(got, ms) {
				return fmt.Errorf("device %d: mappings differ", id)
			}
			runBlocks := uint64(0)
			for r, err := range p.Runs(id, 0, 1<<40) {
				if err != nil {
					return err
				}
				runBlocks += r.Len
			}
			if runBlocks != uint64(len(ms)) {
				return fmt.Errorf("device %d: runs cover %d blocks", id, runBlocks)
			}
			for v, b := range ms {
				m, ok, err := p.Lookup(id, v)
				if err != nil || !ok || m.Block != b {
					return fmt.Errorf("lookup %d/%d: %v %v %v", id, v, m, ok, err)
				}
				break
			}
		}
		if p.IsSnapshot() {
			return nil // a metadata snapshot has no space maps of its own
		}
		dsm, err := p.DataSpaceMap()
		if err != nil {
			return err
		}
		// The snapshot shares the mapping trees, not the data blocks: one
		// reference each (and none to the rest).
		used := map[uint64]bool{}
		for _, ms := range want {
			for _, b := range ms {
				used[b] = true
			}
		}
		for b := range uint64(6000) {
			c, err := dsm.Count(b)
			if err != nil || (c == 1) != used[b] || c > 1 {
				return fmt.Errorf("data block %d: count %d, %v", b, c, err)
			}
		}
		return nil
	}
	snap, err := p.MetadataSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			for range 3 {
				v := p
				if i%2 == 1 {
					v = snap
				}
				if err := read(v); err != nil {
					errs <- fmt.Errorf("reader %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
