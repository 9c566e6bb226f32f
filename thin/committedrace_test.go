package thin_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/thin"
)

// What a volume manager does: goroutines answer queries from a Committed
// view while another goroutine goes on changing and committing the pool.
// The view must keep reading its commit, whatever the writer does
// meanwhile (run under -race in .ci/run with the other ConcurrentReaders
// tests).
func TestConcurrentReadersOfCommittedWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta")
	md, err := thin.CreateMetadata(path, &thin.FormatOptions{NrDataBlocks: 1 << 14, Size: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	for id := range uint64(4) {
		if err := md.CreateThin(id); err != nil {
			t.Fatal(err)
		}
		if err := md.MapRange(id, 0, 300); err != nil {
			t.Fatal(err)
		}
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	v, err := md.Committed()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	read := func() (string, error) {
		n := 0
		var sum uint64
		for d, err := range v.Devices() {
			if err != nil {
				return "", err
			}
			for m, err := range v.Mappings(d.ID, 0, 1<<20) {
				if err != nil {
					return "", err
				}
				n++
				sum += m.Block ^ m.VBlock
			}
		}
		return fmt.Sprint(n, sum), nil
	}
	want, err := read()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := read()
				if err == nil && got != want {
					err = fmt.Errorf("the view read %s, then %s", want, got)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for c := range uint64(30) {
		id := 4 + c
		if err := md.CreateThin(id); err != nil {
			t.Fatal(err)
		}
		if err := md.MapRange(id, 0, 50); err != nil {
			t.Fatal(err)
		}
		if _, err := md.Unmap(c%4, 0, 300); err != nil {
			t.Fatal(err)
		}
		if err := md.MapRange(c%4, 0, 300); err != nil {
			t.Fatal(err)
		}
		if c > 0 {
			if err := md.Delete(id - 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := md.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
