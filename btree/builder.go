package btree

import (
	"errors"

	"github.com/thinmeta/thinmeta/transaction"
)

// ErrUnsorted means keys were given to a Builder out of order.
var ErrUnsorted = errors.New("keys not strictly increasing")

// Builder builds a new tree bottom-up from entries given in strictly
// increasing key order, writing each node once (FORMAT.md §8.3). Nodes are
// packed full except the last two of each level, which are balanced, so
// every non-root node is at least half full. A Builder is not safe for
// concurrent use.
type Builder struct {
	tm     *transaction.Manager
	vt     *ValueType
	leaf   pending
	levels []pending // internal levels: (first key, child block) entries
	last   uint64
	any    bool
	max    int // MaxEntries of the leaves
}

type pending struct {
	keys []uint64
	vals []byte
}

// NewBuilder starts a tree of value type vt.
func NewBuilder(tm *transaction.Manager, vt *ValueType) *Builder {
	return &Builder{tm: tm, vt: vt, max: MaxEntries(vt.Size)}
}

// Add appends an entry. The reference its value holds is taken over.
func (b *Builder) Add(key uint64, value []byte) error {
	if b.any && key <= b.last {
		return ErrUnsorted
	}
	b.any, b.last = true, key
	b.leaf.keys = append(b.leaf.keys, key)
	b.leaf.vals = append(b.leaf.vals, value...)
	if len(b.leaf.keys) >= 2*b.max {
		return b.emit(&b.leaf, -1, b.max)
	}
	return nil
}

// AddSubtree appends an existing node (typically a leaf shared with other
// trees) as the next child, adding a reference to it. Its keys must all be
// above the entries added before and below those added after; firstKey and
// lastKey are its smallest and largest keys.
func (b *Builder) AddSubtree(block, firstKey, lastKey uint64) error {
	if b.any && firstKey <= b.last {
		return ErrUnsorted
	}
	if err := b.flushLevel(&b.leaf, -1); err != nil {
		return err
	}
	if err := b.tm.SpaceMap().Inc(block); err != nil {
		return err
	}
	b.any, b.last = true, lastKey
	return b.push(0, firstKey, block)
}

// emit writes the first n pending entries of level (-1 for leaves) as one
// node and pushes it to the level above.
func (b *Builder) emit(p *pending, level int, n int) error {
	flags, vs := FlagLeaf, b.vt.Size
	if level >= 0 {
		flags, vs = FlagInternal, InternalValueSize
	}
	blk, node, err := newNode(b.tm, flags, vs)
	if err != nil {
		return err
	}
	for i := range n {
		node.SetKey(i, p.keys[i])
	}
	copy(node[node.valueOffset(0):node.valueOffset(n)], p.vals[:n*vs])
	node.SetNrEntries(n)
	first := p.keys[0]
	p.keys = append(p.keys[:0], p.keys[n:]...)
	p.vals = append(p.vals[:0], p.vals[n*vs:]...)
	if err := b.tm.Checkpoint(); err != nil {
		return err
	}
	return b.push(level+1, first, blk)
}

// maxInternal is MaxEntries of internal nodes.
var maxInternal = MaxEntries(InternalValueSize)

// push adds a (first key, block) entry to internal level l.
func (b *Builder) push(l int, key, blk uint64) error {
	for len(b.levels) <= l {
		b.levels = append(b.levels, pending{})
	}
	p := &b.levels[l]
	p.keys = append(p.keys, key)
	p.vals = append(p.vals, u64(blk)...)
	if len(p.keys) >= 2*maxInternal {
		return b.emit(p, l, maxInternal)
	}
	return nil
}

// flushLevel writes out every pending entry of a level as one node, or two
// balanced nodes if they do not fit in one.
func (b *Builder) flushLevel(p *pending, level int) error {
	vs := b.vt.Size
	if level >= 0 {
		vs = InternalValueSize
	}
	n := len(p.keys)
	switch {
	case n == 0:
		return nil
	case n <= MaxEntries(vs):
		return b.emit(p, level, n)
	default:
		if err := b.emit(p, level, n/2); err != nil {
			return err
		}
		return b.emit(p, level, n-n/2)
	}
}

// Finish writes the remaining nodes and returns the root of the tree (an
// empty leaf if nothing was added).
func (b *Builder) Finish() (uint64, error) {
	if len(b.levels) == 0 && len(b.leaf.keys) == 0 {
		return Empty(b.tm, b.vt)
	}
	if err := b.flushLevel(&b.leaf, -1); err != nil {
		return 0, err
	}
	for l := 0; ; l++ {
		p := &b.levels[l]
		if l == len(b.levels)-1 && len(p.keys) == 1 {
			return decodeU64(p.vals), nil
		}
		if err := b.flushLevel(p, l); err != nil {
			return 0, err
		}
	}
}
