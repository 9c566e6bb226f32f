package btree

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/thinmeta/thinmeta/transaction"
)

// This file is thinmeta's one definition of a sound B-tree node. Every
// reader (Tree, Cursor, the query tools' walks, dump), every writer
// (shadowing before a change) and thin/check judge nodes by it, so that a
// node one of them accepts none of the others refuses (FORMAT.md §3).
//
// A node is sound when
//
//  1. its header passes Validator, which runs when the block is read: the
//     block claims its own location, its checksum (salted for nodes) is
//     right, its flags word is exactly FlagInternal or exactly FlagLeaf,
//     max_entries entries of its value size fit the block, and nr_entries
//     is at most max_entries;
//  2. and CheckNode finds none of these defects, which depend on the tree
//     and the parent: a value size other than 8 for an internal node or
//     the tree's value size for a leaf (ErrValueSize); keys not strictly
//     increasing (ErrKeyOrder); an internal node, or a node that is not the
//     root, without entries (ErrNodeHeader); keys below the parent's key
//     for the node (ErrKeyRange) or at or above the parent's next key
//     (ErrNextKey).
//
// Conventions adds what thin-provisioning-tools demands beyond what a
// reader needs: a capacity divisible by three (ErrMaxEntries) and non-root
// nodes at least a third full (ErrUnderfull); and, for writers, room for
// the three entries a split needs.

// Place is where a traversal reached a node: what the tree and the parent
// expect of it.
type Place struct {
	// ValueSize is the size of the values in the tree's leaves.
	ValueSize int
	// Root is set for the root of the tree; a root may be an empty leaf
	// and is not bounded by a parent.
	Root bool
	// Lo and Hi bound the keys of a node that is not the root (both
	// inclusive): Lo is the parent's key for it, Hi one less than the
	// parent's next key (or the parent's own bound).
	Lo, Hi uint64
	// Depth counts the parents above the node.
	Depth int
}

// RootPlace returns the place of the root of a tree whose leaves hold
// valueSize-byte values.
func RootPlace(valueSize int) Place {
	return Place{ValueSize: valueSize, Root: true, Hi: math.MaxUint64}
}

// Child returns the place of child i of the internal node n found at p.
func (p Place) Child(n Node, i int) Place {
	hi := p.Hi
	if i+1 < n.NrEntries() {
		hi = n.Key(i+1) - 1
	}
	return Place{ValueSize: p.ValueSize, Lo: n.Key(i), Hi: hi, Depth: p.Depth + 1}
}

// Conventions selects checks of CheckNode beyond what reading a tree
// needs.
type Conventions uint8

const (
	// CheckCapacity rejects a max_entries that is not a multiple of three
	// (ErrMaxEntries). Every writer of the format (the kernel and both
	// generations of thin-provisioning-tools) rounds the capacity so, and
	// both generations of thin_check reject other values.
	CheckCapacity Conventions = 1 << iota
	// CheckFill rejects a node other than the root with fewer than
	// max_entries/3 entries (ErrUnderfull). The kernel keeps nodes that
	// full and can read emptier ones; thin_check reports them.
	CheckFill
	// CheckRoom rejects a node with room for fewer than three entries
	// (ErrNodeHeader), which cannot be split: what a writer needs.
	CheckRoom
)

// ToolConventions are the checks of thin-provisioning-tools' B-tree walks.
const ToolConventions = CheckCapacity | CheckFill

// CheckNode verifies node n, read from block b through Validator, as a node
// found at place p, with the extra checks c. It returns the first defect,
// a *transaction.CorruptError naming b and unwrapping to one of this
// package's sentinels, or nil if the node is sound.
func CheckNode(n Node, b uint64, p Place, c Conventions) error {
	if err := nodeDefects(n, b, p, c, nil); err != nil {
		return err
	}
	return nil
}

// NodeDefects is CheckNode for a checker that reports every problem: it
// calls report with each defect of n in a fixed order (value size,
// capacity, key order, entries, keys against the parent's range, fill)
// until report returns false, and returns how many it reported.
func NodeDefects(n Node, b uint64, p Place, c Conventions, report func(*transaction.CorruptError) bool) int {
	count := 0
	nodeDefects(n, b, p, c, func(e *transaction.CorruptError) bool {
		count++
		return report(e)
	})
	return count
}

// nodeDefects finds the defects of n; with report nil it stops at the
// first and returns it.
func nodeDefects(n Node, b uint64, p Place, c Conventions, report func(*transaction.CorruptError) bool) *transaction.CorruptError {
	var first *transaction.CorruptError
	// found records a defect and reports whether to look for more.
	found := func(e *transaction.CorruptError) bool {
		if first == nil {
			first = e
		}
		return report != nil && report(e)
	}
	internal := n.IsInternal()
	want := p.ValueSize
	if internal {
		want = InternalValueSize
	}
	if vs := n.ValueSize(); vs != want {
		if !found(transaction.Corruptf(b, Kind, ErrValueSize, "value size %d, expected %d", vs, want)) {
			return first
		}
	}
	me, nr := n.MaxEntries(), n.NrEntries()
	if c&CheckCapacity != 0 && me%3 != 0 {
		if !found(transaction.Corruptf(b, Kind, ErrMaxEntries, "max_entries %d", me)) {
			return first
		}
	}
	if c&CheckRoom != 0 && me < 3 {
		if !found(transaction.Corruptf(b, Kind, ErrNodeHeader, "max_entries %d leaves no room to split", me)) {
			return first
		}
	}
	if nr > 1 {
		if i := firstUnordered(n, nr); i > 0 {
			if !found(transaction.Corruptf(b, Kind, ErrKeyOrder, "key %d (%d) follows %d", i, n.Key(i), n.Key(i-1))) {
				return first
			}
		}
	}
	if nr == 0 && (internal || !p.Root) {
		// Only a root leaf may be empty: an internal node routes lookups
		// by its keys, and a node without entries is merged away before
		// it could be left below a parent.
		what := "internal node"
		if !p.Root {
			what = "non-root node"
		}
		if !found(transaction.Corruptf(b, Kind, ErrNodeHeader, "%s with no entries", what)) {
			return first
		}
	}
	if !p.Root && nr > 0 {
		lo, hi := n.Key(0), n.Key(nr-1)
		if lo < p.Lo {
			if !found(transaction.Corruptf(b, Kind, ErrKeyRange, "keys %d..%d, parent allows %d..%d", lo, hi, p.Lo, p.Hi)) {
				return first
			}
		}
		if hi > p.Hi {
			if !found(transaction.Corruptf(b, Kind, ErrNextKey, "keys %d..%d, parent allows %d..%d", lo, hi, p.Lo, p.Hi)) {
				return first
			}
		}
	}
	if c&CheckFill != 0 && !p.Root && nr < me/3 {
		found(transaction.Corruptf(b, Kind, ErrUnderfull, "%d entries, at least %d expected (max_entries %d)", nr, me/3, me))
	}
	return first
}

// firstUnordered returns the index of the first of n's nr keys that is
// not above the key before it, or 0 if they strictly increase. It reads
// the key bytes directly, four keys a step with one branch: whether
// a < b is the borrow of a-b, and the step goes on while every borrow is
// set. A step that finds a key out of order is walked again one key at a
// time to name it. Keys beyond the block are not looked at (the
// Validator bounds nr_entries by the block).
func firstUnordered(n Node, nr int) int {
	end := min(HeaderSize+8*nr, len(n))
	if end < HeaderSize+16 {
		return 0
	}
	keys := n[HeaderSize:end]
	prev := binary.LittleEndian.Uint64(keys)
	off := 8
	for ; off+32 <= len(keys); off += 32 {
		k := keys[off : off+32 : off+32]
		k0 := binary.LittleEndian.Uint64(k[0:])
		k1 := binary.LittleEndian.Uint64(k[8:])
		k2 := binary.LittleEndian.Uint64(k[16:])
		k3 := binary.LittleEndian.Uint64(k[24:])
		_, b0 := bits.Sub64(prev, k0, 0)
		_, b1 := bits.Sub64(k0, k1, 0)
		_, b2 := bits.Sub64(k1, k2, 0)
		_, b3 := bits.Sub64(k2, k3, 0)
		if b0&b1&b2&b3 == 0 {
			break
		}
		prev = k3
	}
	for ; off+8 <= len(keys); off += 8 {
		k := binary.LittleEndian.Uint64(keys[off:])
		if k <= prev {
			return off / 8
		}
		prev = k
	}
	return 0
}
