package thin_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/transaction"
)

// stalePool formats a pool on dev with thins thin devices of mappings
// blocks each, in scattered runs so the trees have many leaves.
func stalePool(t *testing.T, dev transaction.Device, size int64, thins, mappings uint64) {
	t.Helper()
	md, err := thin.Format(dev, size, &thin.FormatOptions{NrDataBlocks: thins*mappings*2 + 20000})
	if err != nil {
		t.Fatal(err)
	}
	for id := range thins {
		if err := md.CreateThin(id); err != nil {
			t.Fatal(err)
		}
		for v := uint64(0); v < mappings; v += 2 {
			if err := md.MapRange(id, v*3, 2); err != nil {
				t.Fatal(err)
			}
		}
		if err := md.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// rogueWrite commits changes to the pool on dev through a second writer
// that takes no lock: every thin deleted and new ones written, over three
// commits, so blocks of the old state are reused.
func rogueWrite(t *testing.T, dev transaction.Device, size int64) {
	md, err := thin.NewMetadata(dev, size, nil)
	if err != nil {
		t.Error(err)
		return
	}
	for i := range uint64(3) {
		md.Delete(i)
		if err := md.CreateThin(100 + i); err != nil {
			t.Error(err)
			return
		}
		if err := md.MapRange(100+i, 0, 3000); err != nil {
			t.Error(err)
			return
		}
		if err := md.Commit(); err != nil {
			t.Error(err)
			return
		}
	}
}

// changingReader runs change once, at its n-th read: a writer that
// ignores the locks, at a known moment of a read.
type changingReader struct {
	io.ReaderAt
	mu     sync.Mutex
	n      int
	change func()
}

func (c *changingReader) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	if c.n--; c.n == 0 {
		c.change()
	}
	c.mu.Unlock()
	return c.ReaderAt.ReadAt(p, off)
}

// A writer that ignores the locks commits while dump reads the pool: the
// dump fails with ErrStale, during the walk when it is long (the reads
// check the superblock every few MiB), and otherwise Stale says so at the
// end; without a change nothing is stale.
func TestStaleDuringRead(t *testing.T) {
	for _, c := range []struct {
		name     string
		mappings uint64
		during   bool // the walk itself must stop
	}{
		{"short", 200, false},
		{"long", 150000, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			const size = 64 << 20
			dev := memdev.New(size)
			stalePool(t, dev, size, 3, c.mappings)

			p, err := thin.NewPool(dev, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := dump.Dump(context.Background(), io.Discard, p, dump.Options{}); err != nil || p.Stale() != nil {
				t.Fatalf("unchanged pool: dump %v, stale %v", err, p.Stale())
			}

			cr := &changingReader{ReaderAt: dev, n: 5, change: func() { rogueWrite(t, dev, size) }}
			p, err = thin.NewPool(cr, size)
			if err != nil {
				t.Fatal(err)
			}
			err = dump.Dump(context.Background(), io.Discard, p, dump.Options{})
			if c.during && !errors.Is(err, thin.ErrStale) {
				t.Fatalf("a long dump over a changed pool: %v, want ErrStale", err)
			}
			if !errors.Is(p.Stale(), thin.ErrStale) {
				t.Fatalf("Stale after the pool changed: %v", p.Stale())
			}
		})
	}
}

// A metadata-snapshot view does not go stale when the live pool commits
// (the kernel commits all the time; the snapshot's blocks are held), only
// when the snapshot is released.
func TestStaleSnapshotView(t *testing.T) {
	const size = 16 << 20
	dev := memdev.New(size)
	stalePool(t, dev, size, 2, 100)
	md, err := thin.NewMetadata(dev, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := md.ReserveMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := thin.NewPool(dev, size)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := p.MetadataSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := md.CreateThin(50); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(p.Stale(), thin.ErrStale) {
		t.Fatalf("live view after a commit: %v, want ErrStale", p.Stale())
	}
	if err := snap.Stale(); err != nil {
		t.Fatalf("snapshot view after a live commit: %v", err)
	}
	if err := dump.Dump(context.Background(), io.Discard, snap, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := md.ReleaseMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(snap.Stale(), thin.ErrStale) {
		t.Fatalf("snapshot view after the snapshot was released: %v, want ErrStale", snap.Stale())
	}
}

// An image opened from a file watches it too: check.Device over an Image
// whose file a writer changes without the lock stops reading, and
// Image.Stale reports it.
func TestStaleImage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.img")
	const size = 64 << 20
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	dev := transaction.FileDevice{File: f}
	stalePool(t, dev, size, 3, 40000)
	im, err := thin.OpenImage(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if err := im.Stale(); err != nil {
		t.Fatal(err)
	}
	rogueWrite(t, dev, size)
	var findings int
	check.Device(context.Background(), im, im.Size(), check.Options{}, func(check.Finding) { findings++ })
	if !errors.Is(im.Stale(), thin.ErrStale) {
		t.Fatalf("Image.Stale after a writer changed the file: %v", im.Stale())
	}
	if _, err := im.ReadAt(make([]byte, 4096), 0); !errors.Is(err, thin.ErrStale) {
		t.Fatalf("a read of a stale image: %v, want ErrStale", err)
	}
}
