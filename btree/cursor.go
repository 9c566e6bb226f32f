package btree

import (
	"math"

	"github.com/thinmeta/thinmeta/transaction"
)

// Cursor steps through a tree's entries in key order without callbacks or
// goroutines, reading one leaf at a time; it suits merging a tree with
// another ordered sequence. Nodes are verified as for Walk.
type Cursor struct {
	t     Tree
	stack []cursorLevel
	leaf  Node
	i     int
	err   error
	done  bool
	limit uint64
	seen  uint64
}

type cursorLevel struct {
	n      Node
	next   int    // next child to visit
	lo, hi uint64 // key range this node must respect
}

// NewCursor returns a cursor before the first entry of t.
func NewCursor(t Tree) *Cursor {
	c := &Cursor{t: t, limit: t.R.NrBlocks() + 1}
	c.push(t.Root, 0, math.MaxUint64, true)
	return c
}

// push reads node b and descends to its first leaf.
func (c *Cursor) push(b uint64, lo, hi uint64, root bool) {
	for {
		if len(c.stack) > MaxDepth {
			c.fail(transaction.Corruptf(b, Kind, ErrDepth, "deeper than %d levels", MaxDepth))
			return
		}
		c.seen++
		if c.seen > c.limit {
			c.fail(transaction.Corruptf(b, Kind, ErrDepth, "more nodes in one tree than blocks on the device"))
			return
		}
		buf := make([]byte, transaction.BlockSize)
		if err := c.t.R.ReadInto(b, buf, Validator); err != nil {
			c.fail(err)
			return
		}
		n := Node(buf)
		if err := c.t.checkNode(n, b); err != nil {
			c.fail(err)
			return
		}
		nr := n.NrEntries()
		if nr > 0 && !root && (n.Key(0) < lo || n.Key(nr-1) > hi) {
			c.fail(transaction.Corruptf(b, Kind, ErrKeyRange, "keys %d..%d outside %d..%d", n.Key(0), n.Key(nr-1), lo, hi))
			return
		}
		if n.IsLeaf() {
			c.leaf, c.i = n, 0
			return
		}
		if nr == 0 {
			c.leaf, c.i = nil, 0
			return
		}
		c.stack = append(c.stack, cursorLevel{n: n, next: 1, lo: lo, hi: hi})
		clo, chi := n.Key(0), hi
		if nr > 1 {
			chi = n.Key(1) - 1
		}
		b, lo, hi, root = n.Uint64Value(0), clo, chi, false
	}
}

func (c *Cursor) fail(err error) {
	c.err, c.done, c.leaf = err, true, nil
}

// Next returns the next entry; ok is false at the end or on an error (see
// Err). The value is valid until the following call.
func (c *Cursor) Next() (key uint64, value []byte, ok bool) {
	for !c.done {
		if c.leaf != nil && c.i < c.leaf.NrEntries() {
			k, v := c.leaf.Key(c.i), c.leaf.Value(c.i)
			c.i++
			return k, v, true
		}
		// Move to the next leaf.
		c.leaf = nil
		for len(c.stack) > 0 {
			top := &c.stack[len(c.stack)-1]
			nr := top.n.NrEntries()
			if top.next < nr {
				i := top.next
				top.next++
				clo, chi := top.n.Key(i), top.hi
				if i+1 < nr {
					chi = top.n.Key(i+1) - 1
				}
				c.push(top.n.Uint64Value(i), clo, chi, false)
				break
			}
			c.stack = c.stack[:len(c.stack)-1]
		}
		if c.leaf == nil && len(c.stack) == 0 {
			c.done = true
		}
	}
	return 0, nil, false
}

// Err returns the error that ended the iteration, if any.
func (c *Cursor) Err() error { return c.err }
