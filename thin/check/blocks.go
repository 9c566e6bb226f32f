package check

import (
	"unsafe"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/offheap"
)

// blockInfo is what the check keeps of every metadata block it reaches, in
// a byte: the structure using it (the low four bits, a treeKind; kindNone:
// not reached yet) and the blockXxx bits above them. What a second arrival
// at a sound tree node checks it by, its nodeKeys, blockTable keeps apart.
type blockInfo uint8

const (
	blockSeen     blockInfo = 1 << (4 + iota) // read already
	blockOnPath                               // a node being walked (an ancestor of the current one)
	blockKeyed                                // a sound node: blockTable.nodeKeys has its keys
	blockThinRoot                             // a root too sparse for a non-root node, not yet reported as one

	kindMask blockInfo = 1<<4 - 1
)

// Every treeKind fits below the flags.
var _ [kindMask - blockInfo(kindBlobIndex)]struct{}

func (i blockInfo) kind() treeKind       { return treeKind(i & kindMask) }
func (i *blockInfo) setKind(k treeKind)  { *i = *i&^kindMask | blockInfo(k) }
func (i blockInfo) has(f blockInfo) bool { return i&f != 0 }

// nodeKeys is what a second arrival at a sound node checks it by: its
// first and last key (1, 0 if it is empty) and, for a node of a device's
// mapping tree, memo, 1 + the mappings below it (0: unknown).
type nodeKeys struct {
	first, last uint64
	memo        uint32
}

// blockPageShift sets the page size of blockTable: 4096 blocks, in 4 KiB
// of blockInfo and, once a shared leaf among them is read, 32 KiB of leaf
// keys.
const blockPageShift = 12

// blockTable holds a blockInfo for each metadata block below a bound, and
// the nodeKeys of each sound node that may be reached again: a node may be
// shared by several parents (a kernel's snapshots share subtrees; a pool
// restored from XML shares none), which the metadata space map's count
// says (shared.go). Leaves, nearly all the nodes, have their keys and
// entry count packed in a word (packLeaf); internal nodes, and leaves
// whose keys do not pack, are in a map. Both are kept in pages allocated
// when one of their blocks is first reached: memory follows the blocks
// the trees and space maps reach, not the size of the device or what a
// space map root claims. A block costs a byte, a shared leaf 8 more (the
// 24 bytes of a record with both keys and the memo, for every leaf, made
// the table a third of a check's memory).
type blockTable struct {
	pages  [][]blockInfo
	leaves [][]uint64 // packed leaf keys (0: in keys)
	keys   map[uint64]nodeKeys
	// infos and words hand out the pages, outside the Go heap: they
	// live for the whole check, and in the heap as much garbage would
	// pile up beside them before a collection.
	infos, words *offheap.Slab
}

// newBlockTable returns a table for blocks [0, n); the caller bounds n by
// the metadata space map's size (at most spacemap.MaxMetadataBlocks), so
// the page index itself stays small.
func newBlockTable(n uint64) blockTable {
	np := (n + 1<<blockPageShift - 1) >> blockPageShift
	return blockTable{
		pages:  make([][]blockInfo, np),
		leaves: make([][]uint64, np),
		keys:   make(map[uint64]nodeKeys),
		infos:  offheap.NewSlab(1<<blockPageShift, 64),
		words:  offheap.NewSlab(8<<blockPageShift, 8),
	}
}

// release frees the pages; the table must not be used after it.
func (t *blockTable) release() {
	if t.infos != nil {
		t.infos.Release()
		t.words.Release()
	}
	*t = blockTable{}
}

// at returns the entry of block b (below the table's bound).
func (t *blockTable) at(b uint64) *blockInfo {
	p := t.pages[b>>blockPageShift]
	if p == nil {
		p = unsafe.Slice((*blockInfo)(unsafe.Pointer(unsafe.SliceData(t.infos.Get()))), 1<<blockPageShift)
		t.pages[b>>blockPageShift] = p
	}
	return &p[b&(1<<blockPageShift-1)]
}

// seen reports whether block b has been read already; it allocates
// nothing, and any b may be asked about.
func (t *blockTable) seen(b uint64) bool {
	if b>>blockPageShift >= uint64(len(t.pages)) {
		return false
	}
	p := t.pages[b>>blockPageShift]
	return p != nil && p[b&(1<<blockPageShift-1)].has(blockSeen)
}

// keysOf returns the first and last key of node n (1, 0 if it is empty).
func keysOf(n btree.Node) (first, last uint64) {
	if nr := n.NrEntries(); nr > 0 {
		return n.Key(0), n.Key(nr - 1)
	}
	return 1, 0
}

// A packed leaf holds its first key in the high 32 bits, last-first in the
// next 24 and its entry count (1 to 255) in the low 8; a word of 0 packs
// nothing.
const (
	packSpanBits = 24
	packNrBits   = 8
)

// packLeaf packs the keys of a leaf of nr entries, or returns 0 if they do
// not fit.
func packLeaf(first, last uint64, nr int) uint64 {
	if nr < 1 || nr >= 1<<packNrBits || first > last || first >= 1<<32 || last-first >= 1<<packSpanBits {
		return 0
	}
	return first<<(packSpanBits+packNrBits) | (last-first)<<packNrBits | uint64(nr)
}

// unpackLeaf is the inverse of packLeaf (for a word that is not 0).
func unpackLeaf(w uint64) (first, last uint64, nr int) {
	first = w >> (packSpanBits + packNrBits)
	last = first + (w>>packNrBits)&(1<<packSpanBits-1)
	return first, last, int(w & (1<<packNrBits - 1))
}

// node records the keys of b, a node walked: n, at its first arrival. A
// leaf's are recorded only if keep is set (shared.go); an internal node's
// always (there are few, and their memo is set when they are left).
func (t *blockTable) node(b uint64, n btree.Node, keep bool) {
	first, last := keysOf(n)
	if n.IsLeaf() {
		if !keep {
			return
		}
		if w := packLeaf(first, last, n.NrEntries()); w != 0 {
			p := t.leaves[b>>blockPageShift]
			if p == nil {
				p = unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(t.words.Get()))), 1<<blockPageShift)
				t.leaves[b>>blockPageShift] = p
			}
			p[b&(1<<blockPageShift-1)] = w
			return
		}
		// A leaf is all its subtree: its memo is known at once.
		t.keys[b] = nodeKeys{first: first, last: last, memo: uint32(n.NrEntries() + 1)}
		return
	}
	t.keys[b] = nodeKeys{first: first, last: last}
}

// setMemo records that n mappings are below b, a sound internal node of a
// device's mapping tree (more than a uint32 holds stay unknown).
func (t *blockTable) setMemo(b, n uint64) {
	if n < 1<<32-1 {
		k := t.keys[b]
		k.memo = uint32(n + 1)
		t.keys[b] = k
	}
}

// nodeKeys returns the keys of b, a node marked blockKeyed, and whether
// they were recorded (node with keep). The memo of a leaf is 1 + its
// entries, whatever its tree: only a mapping tree's is asked for.
func (t *blockTable) nodeKeys(b uint64) (nodeKeys, bool) {
	if p := t.leaves[b>>blockPageShift]; p != nil {
		if w := p[b&(1<<blockPageShift-1)]; w != 0 {
			first, last, nr := unpackLeaf(w)
			return nodeKeys{first: first, last: last, memo: uint32(nr + 1)}, true
		}
	}
	k, ok := t.keys[b]
	return k, ok
}
