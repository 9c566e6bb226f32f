package thin_test

import (
	"errors"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// A leaf that maps a virtual block to a data block beyond the data space
// map is damaged metadata: every write that has to count that reference
// (freeing it, unmapping it, sharing the leaf when it is shadowed) fails
// with a *transaction.CorruptError naming the leaf, which unwraps to
// spacemap.ErrBlockRange — not with the bare space-map error, which names
// neither the block nor what is wrong with it.
func TestMappingBeyondDataSpaceMap(t *testing.T) {
	const nrData = 5000
	const bad = 700 // the virtual block whose mapping is damaged
	// damaged returns a pool of thin 0 mapping 0..1199 (a multi-level
	// tree), thin 1 a snapshot of it if snap, with bad's data block set
	// beyond the data device, and the leaf that holds it.
	damaged := func(t *testing.T, snap bool) (*memdev.Dev, int64, uint64) {
		t.Helper()
		size := int64(256 * 4096)
		dev := memdev.New(size)
		md, err := thin.Format(dev, size, &thin.FormatOptions{NrDataBlocks: nrData})
		if err != nil {
			t.Fatal(err)
		}
		if err := md.CreateThin(0); err != nil {
			t.Fatal(err)
		}
		if err := md.MapRange(0, 0, 1200); err != nil {
			t.Fatal(err)
		}
		if snap {
			if err := md.CreateSnapshot(1, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := md.Commit(); err != nil {
			t.Fatal(err)
		}
		p, err := md.Committed()
		if err != nil {
			t.Fatal(err)
		}
		root, err := p.Root(0)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		md.Close()
		img := dev.Bytes()
		node := func(b uint64) btree.Node { return btree.Node(img[b*4096 : (b+1)*4096]) }
		b := root
		for n := node(b); n.IsInternal(); n = node(b) {
			b = n.Uint64Value(n.LowerBound(bad))
		}
		leaf := node(b)
		i := leaf.LowerBound(bad)
		if leaf.Key(i) != bad {
			t.Fatalf("leaf %d has no key %d", b, bad)
		}
		leaf.SetUint64Value(i, thin.PackBlockTime(nrData+17, 0))
		transaction.Seal(leaf, b, transaction.SaltNode)
		return dev, size, b
	}
	wantCorrupt := func(t *testing.T, what string, err error, block uint64, named bool) {
		t.Helper()
		var ce *transaction.CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, spacemap.ErrBlockRange) {
			t.Fatalf("%s: %v (%T), want a CorruptError unwrapping to spacemap.ErrBlockRange", what, err, err)
		}
		if ce.Kind != btree.Kind {
			t.Errorf("%s: kind %q, want %q", what, ce.Kind, btree.Kind)
		}
		if named && ce.Block != block {
			t.Errorf("%s: names block %d, want the damaged leaf %d", what, ce.Block, block)
		}
	}
	open := func(t *testing.T, dev *memdev.Dev, size int64) *thin.Metadata {
		t.Helper()
		md, err := thin.NewMetadata(dev, size, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { md.Close() })
		return md
	}

	t.Run("delete", func(t *testing.T) {
		dev, size, leaf := damaged(t, false)
		md := open(t, dev, size)
		wantCorrupt(t, "Delete", md.Delete(0), leaf, true)
	})
	t.Run("unmap", func(t *testing.T) {
		dev, size, leaf := damaged(t, false)
		md := open(t, dev, size)
		_, err := md.Unmap(0, bad, bad+1)
		// The leaf is shadowed before its value is dropped: the error
		// names the copy, so only the kind and sentinel are checked.
		wantCorrupt(t, "Unmap", err, leaf, false)
	})
	t.Run("map-over", func(t *testing.T) {
		dev, size, leaf := damaged(t, false)
		md := open(t, dev, size)
		wantCorrupt(t, "MapTo", md.MapTo(0, bad, 3), leaf, false)
	})
	t.Run("shadow-shared", func(t *testing.T) {
		dev, size, leaf := damaged(t, true)
		md := open(t, dev, size)
		// Any change in the shared leaf shadows it and gives each of its
		// values one more reference: the damaged one fails there.
		_, err := md.Unmap(0, bad+1, bad+2)
		wantCorrupt(t, "Unmap in a shared leaf", err, leaf, true)
	})
}
