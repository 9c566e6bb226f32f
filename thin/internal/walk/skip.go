package walk

import (
	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// MappingsSkipping is Mappings, except that skip is asked about every node
// block before the node is read: a node for which it returns true is
// neither read nor descended into. Both levels of the mapping tree hold
// 8-byte values, so it walks the top level (device id → root) too.
//
// Nodes are checked as btree.Tree's walks and Mappings check them: the
// block validator, value size, key order, keys within the parent's range,
// and the node checks of this package.
func MappingsSkipping(r btree.BlockReader, root uint64, skip func(b uint64) bool, fn func(b uint64, l Leaf) error) error {
	w := skipper{r: r, skip: skip, fn: fn, limit: r.NrBlocks() + 1}
	err := w.walk(root, 0, 0, ^uint64(0), true)
	if err == btree.ErrStop {
		return nil
	}
	return err
}

type skipper struct {
	r       btree.BlockReader
	skip    func(uint64) bool
	fn      func(uint64, Leaf) error
	bufs    [][]byte
	visited uint64
	limit   uint64
}

// walk visits block b, whose keys must lie in [klo, khi] unless it is the
// root.
func (w *skipper) walk(b uint64, depth int, klo, khi uint64, root bool) error {
	if w.skip(b) {
		return nil
	}
	if depth > btree.MaxDepth {
		return transaction.Corruptf(b, btree.Kind, btree.ErrDepth, "deeper than %d levels", btree.MaxDepth)
	}
	if w.visited++; w.visited > w.limit {
		return transaction.Corruptf(b, btree.Kind, btree.ErrDepth, "more nodes in one tree than blocks on the device")
	}
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, make([]byte, transaction.BlockSize))
	}
	if err := w.r.ReadInto(b, w.bufs[depth], btree.Validator); err != nil {
		return err
	}
	n := btree.Node(w.bufs[depth])
	// Internal nodes hold 8-byte child pointers; leaves of both levels hold
	// 8-byte values.
	if n.ValueSize() != thin.MappingValueSize {
		return transaction.Corruptf(b, btree.Kind, btree.ErrValueSize, "value size %d, expected %d", n.ValueSize(), thin.MappingValueSize)
	}
	if err := btree.CheckKeys(n, b); err != nil {
		return err
	}
	nr := n.NrEntries()
	if nr > 0 && !root {
		if first, last := n.Key(0), n.Key(nr-1); first < klo || last > khi {
			return transaction.Corruptf(b, btree.Kind, btree.ErrKeyRange, "keys %d..%d outside %d..%d", first, last, klo, khi)
		}
	}
	if err := checkNode(n, b, root); err != nil {
		return err
	}
	if n.IsLeaf() {
		return w.fn(b, leafOf(n))
	}
	for i := range nr {
		chi := khi
		if i+1 < nr {
			chi = n.Key(i+1) - 1
		}
		// This level's buffer stays intact: deeper levels use their own.
		if err := w.walk(n.Uint64Value(i), depth+1, n.Key(i), chi, false); err != nil {
			return err
		}
	}
	return nil
}
