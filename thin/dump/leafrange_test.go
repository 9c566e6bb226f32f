package dump_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/transaction"
)

// The 1.1.0 form lists a tree's leaves from their parents and reads them
// later: each leaf is still held to the range its parent gives it, as the
// 0.9.0 form's walk holds it. Block 18 of the fixture is an internal node;
// its second child gets a first key below the parent's key for it
// (resealed, in order), which both forms must refuse.
func TestDump110ChecksLeafRange(t *testing.T) {
	img := tptest.Unpack(t, filepath.Join(tptest.FixturesDir(t), "tmeta_with_shared_internal_root.pack"))
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	parent := btree.Node(data[18*transaction.BlockSize : 19*transaction.BlockSize])
	if !parent.IsInternal() || parent.NrEntries() < 2 {
		t.Fatalf("block 18 is not an internal node with two children")
	}
	c := parent.Uint64Value(1)
	blk := data[c*transaction.BlockSize : (c+1)*transaction.BlockSize]
	leaf := btree.Node(blk)
	if !leaf.IsLeaf() || leaf.NrEntries() < 2 {
		t.Fatalf("child %d is not a leaf with two entries", c)
	}
	leaf.SetKey(0, parent.Key(1)-1)
	transaction.Seal(blk, c, transaction.SaltNode)
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := thin.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, compat := range []dump.Compat{dump.Compat090, dump.Compat110} {
		err := dump.Dump(context.Background(), io.Discard, p, dump.Options{Compat: compat})
		var ce *transaction.CorruptError
		if !errors.Is(err, btree.ErrKeyRange) || !errors.As(err, &ce) || ce.Block != c {
			t.Errorf("compat %d: %v, want ErrKeyRange at block %d", compat, err, c)
		}
	}
}
