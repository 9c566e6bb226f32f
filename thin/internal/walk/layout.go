package walk

import (
	"encoding/binary"

	"github.com/thinmeta/thinmeta/btree"
)

// Leaf is a view of the entries of one mapping-tree leaf (FORMAT.md §7.2):
// keys are virtual blocks, values pack a data block (high 40 bits) and a
// time (low 24 bits). It is only valid during the callback that received
// it.
type Leaf struct {
	keys []byte // 8 bytes per entry
	vals []byte // 8 bytes per entry
}

// leafOf returns the entries of n, whose header the B-tree validator has
// checked (nr_entries within a capacity that fits the block) and whose
// value size is 8.
func leafOf(n btree.Node) Leaf {
	nr := n.NrEntries()
	off := btree.HeaderSize + 8*n.MaxEntries()
	return Leaf{keys: n[btree.HeaderSize : btree.HeaderSize+8*nr], vals: n[off : off+8*nr]}
}

// Len returns the number of mappings in the leaf.
func (l Leaf) Len() int { return len(l.vals) / 8 }

// VBlock returns the virtual block of mapping i.
func (l Leaf) VBlock(i int) uint64 { return binary.LittleEndian.Uint64(l.keys[8*i:]) }

// Block returns the data block of mapping i.
func (l Leaf) Block(i int) uint64 { return binary.LittleEndian.Uint64(l.vals[8*i:]) >> 24 }

// Value returns the raw packed value of mapping i.
func (l Leaf) Value(i int) uint64 { return binary.LittleEndian.Uint64(l.vals[8*i:]) }
