package check

// blockInfo is what the check learns of one metadata block it reaches.
type blockInfo struct {
	kind  treeKind // the structure using it (kindNone: not reached yet)
	flags uint8    // the blockXxx bits below
	// memo, for a node of a device's mapping tree, is 1 + the mappings
	// below it (0: unknown).
	memo uint32
	// first and last key of a sound node (1, 0 if it is empty), valid
	// when blockKeyed is set.
	first, last uint64
}

const (
	blockSeen     = 1 << iota // read already
	blockOnPath               // a node being walked (an ancestor of the current one)
	blockKeyed                // a sound node: first and last are its keys
	blockThinRoot             // a root too sparse for a non-root node, not yet reported as one
)

func (i *blockInfo) has(f uint8) bool { return i.flags&f != 0 }

// blockPageShift sets the page size of blockTable: 1024 blocks, 24 KiB.
const blockPageShift = 10

// blockTable holds a blockInfo for each metadata block below a bound, in
// pages allocated when one of their blocks is first reached: its memory
// follows the blocks the trees and space maps reach, not the size of the
// device or what a space map root claims.
type blockTable struct {
	pages []*[1 << blockPageShift]blockInfo
}

// newBlockTable returns a table for blocks [0, n); the caller bounds n by
// the metadata space map's size (at most spacemap.MaxMetadataBlocks), so
// the page index itself stays small.
func newBlockTable(n uint64) blockTable {
	return blockTable{pages: make([]*[1 << blockPageShift]blockInfo, (n+1<<blockPageShift-1)>>blockPageShift)}
}

// at returns the entry of block b (below the table's bound).
func (t blockTable) at(b uint64) *blockInfo {
	p := t.pages[b>>blockPageShift]
	if p == nil {
		p = new([1 << blockPageShift]blockInfo)
		t.pages[b>>blockPageShift] = p
	}
	return &p[b&(1<<blockPageShift-1)]
}
