package ls

import (
	"encoding/binary"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/transaction"
)

// readAheadBlocks bounds a planned read: 64 blocks (256 KiB) stay in L2,
// as thin/dump measured.
const readAheadBlocks = 64

// walkReader walks device trees for one goroutine. Its walks plan their
// reads (btree.Walker.Plan): each internal node tells the ReadAhead which
// children come next, so the runs of leaves thin_restore and the kernel
// write are read in one read each and lent without a copy, and blocks of
// other trees are not read along. The checks are those of the tools'
// B-tree walks (btree.ToolConventions), as thin/internal/walk's.
type walkReader struct {
	w *btree.Walker
	m *meter.Meter
}

func newWalkReader(p *thin.Pool, m *meter.Meter) *walkReader {
	ra := transaction.NewReadAhead(p.Reader(), readAheadBlocks)
	w := &btree.Walker{R: ra, ValueSize: thin.MappingValueSize, Conventions: btree.ToolConventions, Plan: true}
	return &walkReader{w: w, m: m}
}

// runs calls fn for every run of mappings of the tree at root whose data
// blocks are consecutive (b, b+1, ... b+n-1) within a leaf, in key order.
// Damage ends the walk with a *transaction.CorruptError.
func (wr *walkReader) runs(root uint64, fn func(b, n uint64)) error {
	w := wr.w
	w.Reset(root)
	for {
		_, n, _, ok := w.Next()
		if !ok {
			return w.Err()
		}
		if !n.IsLeaf() {
			continue
		}
		// The walk checked the header: nr_entries values of 8 bytes fit
		// in the block after max_entries keys.
		nr := n.NrEntries()
		off := btree.HeaderSize + 8*n.MaxEntries()
		vals := n[off : off+8*nr]
		if err := wr.m.Add(uint64(nr)); err != nil {
			return err
		}
		if nr == 0 {
			continue
		}
		start := binary.LittleEndian.Uint64(vals) >> 24
		next := start + 1
		for i := 8; i < len(vals); i += 8 {
			b := binary.LittleEndian.Uint64(vals[i:]) >> 24
			if b != next {
				fn(start, next-start)
				start = b
			}
			next = b + 1
		}
		fn(start, next-start)
	}
}

// inc counts every mapping of the tree at root into k.
func (wr *walkReader) inc(root uint64, k *cursor) error {
	return wr.runs(root, k.inc)
}

// exclusive counts the mappings of the tree at root whose block k's set
// counts exactly once.
func (wr *walkReader) exclusive(root uint64, k *cursor) (uint64, error) {
	var n uint64
	err := wr.runs(root, func(b, l uint64) { n += k.once(b, l) })
	return n, err
}
