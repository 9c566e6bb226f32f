package thin_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// fullData formats a pool whose data device is nrData blocks, with one
// thin (id 1) mapping all of them, uncommitted.
func fullData(t *testing.T, nrData uint64) *thin.Metadata {
	t.Helper()
	dev := memdev.New(1024 * transaction.BlockSize)
	md, err := thin.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: nrData})
	if err != nil {
		t.Fatal(err)
	}
	if err := md.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	for v := range nrData {
		if _, err := md.Map(1, v); err != nil {
			t.Fatalf("Map(1, %d) of %d data blocks: %v", v, nrData, err)
		}
	}
	return md
}

// A full data device and a full metadata device are told apart: a volume
// manager must know which to grow. Both are still spacemap.ErrNoSpace.
func TestNoSpaceSentinels(t *testing.T) {
	t.Run("data", func(t *testing.T) {
		md := fullData(t, 10)
		_, err := md.Map(1, 10)
		if !errors.Is(err, thin.ErrNoDataSpace) || errors.Is(err, thin.ErrNoMetadataSpace) || !errors.Is(err, spacemap.ErrNoSpace) {
			t.Fatalf("Map on a full data device: %v", err)
		}
		if err := md.MapRange(1, 20, 5); !errors.Is(err, thin.ErrNoDataSpace) {
			t.Fatalf("MapRange on a full data device: %v", err)
		}
	})
	t.Run("metadata", func(t *testing.T) {
		// 16 metadata blocks: the superblock, the space maps and the empty
		// trees leave a handful for mappings, while the data device has
		// room for many more.
		dev := memdev.New(16 * transaction.BlockSize)
		md, err := thin.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: 100000})
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for ; ; n++ {
			if err = md.CreateThin(n); err != nil {
				break
			}
			if _, err = md.Map(n, 0); err != nil {
				break
			}
			if err = md.Commit(); err != nil {
				break
			}
		}
		if !errors.Is(err, thin.ErrNoMetadataSpace) || errors.Is(err, thin.ErrNoDataSpace) || !errors.Is(err, spacemap.ErrNoSpace) {
			t.Fatalf("after %d thins: %v", n, err)
		}
	})
	t.Run("metadata by mappings", func(t *testing.T) {
		dev := memdev.New(24 * transaction.BlockSize)
		md, err := thin.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: 100000})
		if err != nil {
			t.Fatal(err)
		}
		if err := md.CreateThin(7); err != nil {
			t.Fatal(err)
		}
		var v uint64
		for ; ; v += 2 { // every other block: no runs to pack
			if _, err = md.Map(7, v); err != nil {
				break
			}
		}
		if !errors.Is(err, thin.ErrNoMetadataSpace) || errors.Is(err, thin.ErrNoDataSpace) {
			t.Fatalf("after %d mappings: %v", v/2, err)
		}
	})
}

// segmentsRepeat reports whether an error text says a piece of context
// twice ("a: b: a: c"), as wrapping a wrapped error with the same prefix
// does.
func segmentsRepeat(msg string) (string, bool) {
	seen := map[string]bool{}
	for _, s := range strings.Split(msg, ": ") {
		w := strings.Fields(s)
		if len(w) == 0 {
			continue
		}
		// The first word of a piece of context is its kind ("device 5",
		// "restore", "thinmeta").
		if len(w) == 1 && seen[w[0]] {
			return w[0], true
		}
		if len(w) == 1 {
			seen[w[0]] = true
		}
	}
	return "", false
}

// Errors of induced failures across the library say "thinmeta" nowhere
// (the CLI says it once) and no piece of context twice.
func TestErrorTextOfFailures(t *testing.T) {
	var errs []error
	add := func(err error) {
		t.Helper()
		if err == nil {
			t.Fatal("the induced failure did not fail")
		}
		errs = append(errs, err)
	}
	md := fullData(t, 4)
	_, err := md.Map(1, 4)
	add(err)
	add(md.CreateThin(1))
	add(md.CreateSnapshot(3, 2))
	add(md.Delete(9))
	_, err = md.Map(9, 0)
	add(err)
	add(md.ResizeData(2))
	add(md.SetTransactionID(7, 8))
	add(md.ReleaseMetadataSnapshot())

	// A corrupt mapping tree: device 5's root overwritten.
	dev := memdev.New(1024 * transaction.BlockSize)
	md, err = thin.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := md.CreateThin(5); err != nil {
		t.Fatal(err)
	}
	if err := md.MapRange(5, 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := thin.NewPool(dev, dev.Size())
	if err != nil {
		t.Fatal(err)
	}
	root, err := p.Root(5)
	if err != nil {
		t.Fatal(err)
	}
	copy(dev.Bytes()[root*transaction.BlockSize+100:], "garbage")
	p, err = thin.NewPool(dev, dev.Size())
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range p.Mappings(5, 0, 100) {
		if err != nil {
			add(err)
			break
		}
	}
	_, _, err = p.Lookup(5, 3)
	add(err)
	_, err = p.Device(77)
	add(err)
	zero := memdev.New(64 * transaction.BlockSize)
	_, err = thin.NewPool(zero, zero.Size())
	add(err)

	if len(errs) < 10 {
		t.Fatalf("%d errors", len(errs))
	}
	for _, err := range errs {
		msg := err.Error()
		if strings.Contains(msg, "thinmeta") {
			t.Errorf("%q: the library says thinmeta", msg)
		}
		if w, ok := segmentsRepeat(msg); ok {
			t.Errorf("%q: %q twice", msg, w)
		}
	}
}
