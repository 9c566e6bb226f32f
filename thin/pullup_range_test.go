package thin_test

import (
	"errors"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// A mapping tree whose internal root has a single child is pulled up when
// a removal goes through it; a child beyond the metadata space map (on
// the device, never counted) is damage, and Unmap fails with a
// *transaction.CorruptError unwrapping to transaction.ErrBlockRange, as
// every other path that meets one does, rather than the space map's bare
// error.
func TestPullUpChildBeyondSpaceMap(t *testing.T) {
	const counted = 256 // blocks the metadata space map covers
	dev := memdev.New(2 * counted * 4096)
	md, err := thin.Format(dev, counted*4096, &thin.FormatOptions{NrDataBlocks: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if err := md.CreateThin(0); err != nil {
		t.Fatal(err)
	}
	if err := md.MapRange(0, 0, 1200); err != nil {
		t.Fatal(err)
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
	rn := node(root)
	if !rn.IsInternal() || rn.NrEntries() < 2 {
		t.Fatalf("root %d: internal %v, %d entries; want an internal node of 2 or more", root, rn.IsInternal(), rn.NrEntries())
	}
	// The root keeps only its first child, moved beyond the space map.
	const far = counted + 10
	copy(node(far), node(rn.Uint64Value(0)))
	transaction.Seal(node(far), far, transaction.SaltNode)
	rn.SetUint64Value(0, far)
	rn.SetNrEntries(1)
	transaction.Seal(rn, root, transaction.SaltNode)

	md, err = thin.NewMetadata(dev, 2*counted*4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	_, err = md.Unmap(0, 3, 4)
	var ce *transaction.CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, transaction.ErrBlockRange) {
		t.Fatalf("Unmap through a root whose only child is block %d, beyond the %d-block space map: %v (%T); want a CorruptError unwrapping to ErrBlockRange", far, counted, err, err)
	}
	if ce.Kind != btree.Kind {
		t.Errorf("kind %q, want %q", ce.Kind, btree.Kind)
	}
}
