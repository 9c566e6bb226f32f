package blob_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin"
)

// A Pool is safe for concurrent use, as it says: goroutines listing,
// finding by the index and by a scan, and getting thins at once each see
// every thin with the blob it was given. Run with -race (.ci/run does).
func TestPoolConcurrentReaders(t *testing.T) {
	dev := memdev.New(8 << 20)
	w, err := blob.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: 1000, BlobSize: 24, IndexBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	names := map[uint64]string{}
	for i := range 300 {
		name := fmt.Sprintf("vm-%04d", i)
		id, err := w.NewThin([]byte(name))
		if err != nil {
			t.Fatal(err)
		}
		names[id] = name
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := blob.NewPool(dev, dev.Size())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 6 {
		wg.Go(func() {
			n := 0
			for th, err := range p.Thins() {
				if err != nil || string(th.Blob[:7]) != names[th.ID] {
					errs <- fmt.Errorf("reader %d: thin %d %q: %v", g, th.ID, th.Blob, err)
					return
				}
				n++
			}
			if n != len(names) {
				errs <- fmt.Errorf("reader %d: %d thins", g, n)
			}
			for id, name := range names {
				if (int(id)+g)%7 != 0 {
					continue
				}
				found := 0
				for th, err := range p.Find([]byte(name)) {
					if err != nil || th.ID != id {
						errs <- fmt.Errorf("reader %d: find %q: %d, %v", g, name, th.ID, err)
						return
					}
					found++
				}
				th, err := p.Thin(id)
				if found != 1 || err != nil || string(th.Blob[:7]) != name {
					errs <- fmt.Errorf("reader %d: thin %d: found %d, %q, %v", g, id, found, th.Blob, err)
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
