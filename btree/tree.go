package btree

import (
	"sync"

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
// size of the values in its leaves. Reading a Tree is as safe for
// concurrent use as its BlockReader: a *transaction.Reader is, a
// *transaction.Manager is not.
type Tree struct {
	R         BlockReader
	Root      uint64
	ValueSize int
}

// walker returns a Walker over t.
func (t Tree) walker() *Walker {
	w := &Walker{R: t.R, ValueSize: t.ValueSize}
	w.Reset(t.Root)
	return w
}

// walkers keeps idle Walkers of finished lookups and walks, with their
// stacks and buffers, so that a lookup allocates nothing.
var walkers = sync.Pool{New: func() any { return new(Walker) }}

// pooled returns an idle Walker over t; put it back with release.
func (t Tree) pooled() *Walker {
	w := walkers.Get().(*Walker)
	stack, bufs := w.stack, w.bufs
	*w = Walker{R: t.R, ValueSize: t.ValueSize, stack: stack, bufs: bufs}
	w.Reset(t.Root)
	return w
}

func release(w *Walker) {
	w.R = nil
	walkers.Put(w)
}

// Lookup returns the value stored under key, or found == false. The returned
// slice is a copy. Nodes are verified as for Walk.
func (t Tree) Lookup(key uint64) (value []byte, found bool, err error) {
	w := t.pooled()
	defer release(w)
	w.Lo, w.Hi, w.Cached = key, key, true
	for {
		_, n, _, ok := w.Next()
		if !ok {
			return nil, false, w.Err()
		}
		if !n.IsLeaf() {
			continue
		}
		// The walk enters only the leaf that may hold key.
		i := n.LowerBound(key)
		if i < 0 || n.Key(i) != key {
			return nil, false, nil
		}
		return append([]byte(nil), n.Value(i)...), true, nil
	}
}

// Walk calls fn for every entry with lo ≤ key < hi, in key order. The value
// slice is only valid during the call. Walk verifies every node it reads by
// Validator and CheckNode (a Walker). It stops at the first error, which is
// either fn's or a *transaction.CorruptError or *transaction.IOError.
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
// call. fn may return ErrStop to end the walk early without error. Nodes are
// verified as for Walk.
func (t Tree) WalkLeaves(lo, hi uint64, fn func(b uint64, n Node) error) error {
	if hi <= lo {
		return nil
	}
	w := t.pooled()
	defer release(w)
	w.Lo, w.Hi = lo, hi-1
	return run(w, fn, false)
}

// WalkNodes calls fn for every node of the tree, internal nodes before their
// children, in key order. Nodes are verified as for Walk.
func (t Tree) WalkNodes(fn func(b uint64, n Node) error) error {
	w := t.pooled()
	defer release(w)
	return run(w, fn, true)
}

// run calls fn for the leaves (and the internal nodes too, if all) that w
// walks; fn's ErrStop ends the walk without error.
func run(w *Walker, fn func(b uint64, n Node) error, all bool) error {
	for {
		b, n, _, ok := w.Next()
		if !ok {
			return w.Err()
		}
		if !all && !n.IsLeaf() {
			continue
		}
		if err := fn(b, n); err != nil {
			if err == ErrStop {
				return nil
			}
			return err
		}
	}
}
