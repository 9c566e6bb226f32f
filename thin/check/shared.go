package check

import (
	"math/bits"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/offheap"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// On a sound pool only a block the metadata space map counts twice or
// more is reached by more than one parent (a subtree a snapshot shares
// with its origin, or the metadata snapshot with the live trees), so only
// such a node's keys are needed again: blockTable keeps a leaf's keys only
// then. A leaf counted once but reached again (the space map is wrong,
// which its comparison reports) is read again for its keys, so findings
// are as if every leaf's keys had been kept. In a pool that shares
// nothing (one restored from XML) no leaf's keys are kept: 8 bytes a leaf,
// 3 MiB of the 100M-mapping scale pool's check.

// readShared reads the metadata space map's index and bitmaps before the
// walks and notes the blocks it counts twice or more in c.shared (off the
// Go heap, a page of it resident only once a bit in it is set: nothing
// for a pool that shares nothing). The space-map check reads these blocks
// again (a few hundred at most, against keeping 4 KiB a bitmap for the
// whole walk). A space map that cannot be read whole leaves c.shared nil:
// every leaf's keys are kept; what it is wrong about is reported where
// it is checked.
func (c *checker) readShared(live *superblock.Superblock) {
	root := spacemap.DecodeRoot(live.MetadataSpaceMapRoot[:])
	want := spacemap.NrBitmaps(root.NrBlocks)
	if want > spacemap.MaxMetadataBitmaps || root.BitmapRoot >= c.devBlocks {
		return
	}
	idx := make([]byte, transaction.BlockSize)
	if err := c.r.ReadInto(root.BitmapRoot, idx, spacemap.IndexValidator); err != nil {
		return
	}
	shared := offheap.Make[uint64](int((c.nrMeta + 63) / 64))
	bm := make([]byte, transaction.BlockSize)
	const wordsPerBitmap = spacemap.EntriesPerBitmap / 32
	for i := range want {
		base := i * spacemap.EntriesPerBitmap
		if base >= c.nrMeta {
			break
		}
		ie := spacemap.MetadataIndexEntry(idx, int(i))
		if ie.Blocknr >= c.devBlocks || c.r.ReadInto(ie.Blocknr, bm, spacemap.BitmapValidator) != nil {
			offheap.Free(shared)
			return
		}
		for w := range uint64(wordsPerBitmap) {
			// On disk the lower bit of an entry is its count's high
			// bit: set for counts of 2 and 3 (3: the overflow tree's,
			// at least 3 in a sound map, or a damaged one's, which the
			// check reports).
			for hi := spacemap.BitmapWord(bm, int(w)) & lowBits; hi != 0; hi &= hi - 1 {
				if b := base + 32*w + uint64(bits.TrailingZeros64(hi))/2; b < c.nrMeta {
					shared[b/64] |= 1 << (b % 64)
				}
			}
		}
	}
	c.shared = shared
}

// isShared reports whether the keys of node b are to be kept: the
// metadata space map counts it twice or more, or could not be read.
func (c *checker) isShared(b uint64) bool {
	return c.shared == nil || c.shared[b/64]&(1<<(b%64)) != 0
}

// rereadKeys reads node b again for its keys: a node walked already whose
// keys were not kept (blockTable.node), now reached again. It records them
// for any later arrival.
func (c *checker) rereadKeys(b uint64) (nodeKeys, error) {
	if c.rereadBuf == nil {
		c.rereadBuf = make([]byte, transaction.BlockSize)
	}
	if err := c.r.ReadInto(b, c.rereadBuf, btree.Validator); err != nil {
		return nodeKeys{}, err
	}
	n := btree.Node(c.rereadBuf)
	if !n.IsLeaf() {
		return nodeKeys{}, transaction.Corruptf(b, btree.Kind, ErrReachedAgain, "a leaf when walked, not when reached again")
	}
	c.blocks.node(b, n, true)
	keys, _ := c.blocks.nodeKeys(b)
	return keys, nil
}
