package btree

import (
	"math"

	"github.com/thinmeta/thinmeta/transaction"
)

// MaxDepth bounds the height of any tree thinmeta will walk; the kernel's
// own limit for its deletion stack is 64 (FORMAT.md §9).
const MaxDepth = 64

// BlockReader is what reading a tree needs: validated blocks by number.
// *transaction.Reader implements it for committed metadata, and
// *transaction.Manager for a transaction in progress.
type BlockReader interface {
	// Read returns block b validated by v; the slice must not be modified.
	Read(b uint64, v *transaction.Validator) ([]byte, error)
	// ReadInto reads block b into buf and validates it by v.
	ReadInto(b uint64, buf []byte, v *transaction.Validator) error
	// NrBlocks returns the number of blocks on the device.
	NrBlocks() uint64
}

// Tree is a read-only view of one level of a B-tree: a root block and the
// size of the values in its leaves.
type Tree struct {
	R         BlockReader
	Root      uint64
	ValueSize int
}

// checkNodeFor verifies what a reader of this tree relies on beyond the
// validator: the value size, and strictly increasing keys.
func (t Tree) checkNode(n Node, b uint64) error {
	want := t.ValueSize
	if n.IsInternal() {
		want = InternalValueSize
	}
	if n.ValueSize() != want {
		return transaction.Corruptf(b, Kind, ErrValueSize, "value size %d, expected %d", n.ValueSize(), want)
	}
	return CheckKeys(n, b)
}

// Lookup returns the value stored under key, or found == false. The returned
// slice is a copy.
func (t Tree) Lookup(key uint64) (value []byte, found bool, err error) {
	b := t.Root
	for depth := 0; ; depth++ {
		if depth > MaxDepth {
			return nil, false, transaction.Corruptf(b, Kind, ErrDepth, "lookup deeper than %d levels", MaxDepth)
		}
		blk, err := t.R.Read(b, Validator)
		if err != nil {
			return nil, false, err
		}
		n := Node(blk)
		if err := t.checkNode(n, b); err != nil {
			return nil, false, err
		}
		i := n.LowerBound(key)
		if i < 0 {
			return nil, false, nil
		}
		if n.IsLeaf() {
			if n.Key(i) != key {
				return nil, false, nil
			}
			return append([]byte(nil), n.Value(i)...), true, nil
		}
		b = n.Uint64Value(i)
	}
}

// Walk calls fn for every entry with lo ≤ key < hi, in key order. The value
// slice is only valid during the call. Walk verifies every node it reads:
// the validator, the value size, key order, and that each node's keys lie in
// the range its parent gives it. It stops at the first error, which is
// either fn's or a *transaction.CorruptError.
func (t Tree) Walk(lo, hi uint64, fn func(key uint64, value []byte) error) error {
	return t.WalkLeaves(lo, hi, func(_ uint64, n Node) error {
		nr := n.NrEntries()
		i := 0
		if lo > 0 {
			i = n.UpperBound(lo)
		}
		for ; i < nr; i++ {
			k := n.Key(i)
			if k >= hi {
				return ErrStop
			}
			if err := fn(k, n.Value(i)); err != nil {
				return err
			}
		}
		return nil
	})
}

// WalkLeaves calls fn, in key order, for every leaf that may hold keys in
// [lo, hi), with the leaf's block number. The node is only valid during the
// call. fn may return ErrStop to end the walk early without error. Nodes are verified as for Walk.
func (t Tree) WalkLeaves(lo, hi uint64, fn func(b uint64, n Node) error) error {
	w := walker{t: t, fn: fn, limit: t.R.NrBlocks() + 1}
	err := w.walk(t.Root, 0, 0, math.MaxUint64, true, lo, hi)
	if err == ErrStop {
		return nil
	}
	return err
}

// WalkNodes calls fn for every node of the tree, internal nodes before their
// children, in key order. Nodes are verified as for Walk.
func (t Tree) WalkNodes(fn func(b uint64, n Node) error) error {
	w := walker{t: t, fn: fn, nodeFn: fn, limit: t.R.NrBlocks() + 1}
	err := w.walk(t.Root, 0, 0, math.MaxUint64, true, 0, math.MaxUint64)
	if err == ErrStop {
		return nil
	}
	return err
}

type walker struct {
	t       Tree
	fn      func(uint64, Node) error // called for leaves
	nodeFn  func(uint64, Node) error // if set, called for internal nodes too
	bufs    [][]byte
	visited uint64
	limit   uint64
}

// walk visits block b, whose keys must lie in [klo, khi] (khi inclusive,
// so that the whole key space is expressible), looking for keys in [lo, hi).
func (w *walker) walk(b uint64, depth int, klo, khi uint64, root bool, lo, hi uint64) error {
	if depth > MaxDepth {
		return transaction.Corruptf(b, Kind, ErrDepth, "deeper than %d levels", MaxDepth)
	}
	w.visited++
	if w.visited > w.limit {
		return transaction.Corruptf(b, Kind, ErrDepth, "more nodes in one tree than blocks on the device")
	}
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, make([]byte, transaction.BlockSize))
	}
	buf := w.bufs[depth]
	if err := w.t.R.ReadInto(b, buf, Validator); err != nil {
		return err
	}
	n := Node(buf)
	if err := w.t.checkNode(n, b); err != nil {
		return err
	}
	nr := n.NrEntries()
	if nr > 0 && !root {
		if first, last := n.Key(0), n.Key(nr-1); first < klo || last > khi {
			return transaction.Corruptf(b, Kind, ErrKeyRange, "keys %d..%d outside %d..%d", first, last, klo, khi)
		}
	}
	if n.IsLeaf() {
		return w.fn(b, n)
	}
	if w.nodeFn != nil {
		if err := w.nodeFn(b, n); err != nil {
			return err
		}
	}
	start := 0
	if lo > 0 {
		start = max(n.LowerBound(lo), 0)
	}
	for i := start; i < nr; i++ {
		k := n.Key(i)
		if k >= hi {
			break
		}
		clo, chi := k, khi
		if i+1 < nr {
			chi = n.Key(i+1) - 1
		}
		if err := w.walk(n.Uint64Value(i), depth+1, clo, chi, false, lo, hi); err != nil {
			return err
		}
		// The buffer of this level is intact: deeper levels use their own.
	}
	return nil
}
