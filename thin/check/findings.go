package check

import (
	"errors"
	"fmt"
	"strings"

	"github.com/thinmeta/thinmeta/btree"
)

// Severity classifies a finding as thin_check does.
type Severity int

const (
	// Fatal findings mean the metadata is inconsistent: the kernel could
	// read wrong data or corrupt it further.
	Fatal Severity = iota
	// NonFatal findings are harmless to the kernel but still make the
	// check fail unless non-fatal errors are ignored: leaked blocks
	// (counted but unreferenced) and under-populated B-tree nodes.
	NonFatal
)

// String returns "fatal" or "non-fatal".
func (s Severity) String() string {
	if s == NonFatal {
		return "non-fatal"
	}
	return "fatal"
}

// Sentinels for inconsistencies between structures; a Finding's Err wraps
// one of these or a block-level sentinel of packages transaction, btree,
// spacemap or superblock.
var (
	// ErrMappedBlocks means a device's mapped_blocks differs from the
	// number of mappings in its tree.
	ErrMappedBlocks = errors.New("mapped_blocks differs from the mappings in the tree")
	// ErrDataBlockRange means a mapping names a data block beyond the data
	// device.
	ErrDataBlockRange = errors.New("mapping to a data block beyond the data device")
	// ErrRefCount means a space map records fewer references to a block
	// than exist: the block could be reused while still in use.
	ErrRefCount = errors.New("reference count too low")
	// ErrLeak means a space map records more references than exist. The
	// kernel never hands out a block whose count is not zero, so the
	// extra count only keeps the block from being freed: a leak, whether
	// the block is referenced or not (docs/CHECK.md). Non-fatal.
	ErrLeak = errors.New("reference count too high (leaked)")
	// ErrExtraCount means a block that is in use has a count higher than
	// its references. It wraps ErrLeak: non-fatal, as in thin_check
	// 0.9.0, though thin_check 1.1.0 calls it fatal (docs/CHECK.md says
	// why thinmeta sides with the kernel). The kernel takes such a block
	// for shared: it copies the node rather than write it in place, and
	// raises its children's counts (the copy's references); a deleted
	// tree stops at it; a data block is not discarded. Each of those
	// leaks more, none gives a block two owners.
	ErrExtraCount = fmt.Errorf("%w on a block in use", ErrLeak)
	// ErrCrossLinked means one block is referenced from trees of different
	// kinds (e.g. as a details node and as a mapping node).
	ErrCrossLinked = errors.New("block used by two different structures")
	// ErrSpaceMapRange means a structure uses a metadata block beyond the
	// metadata space map.
	ErrSpaceMapRange = errors.New("block beyond the end of the space map")
	// ErrNextKey means a child node holds keys at or above its parent's
	// next key, where lookups never go. It wraps btree.ErrKeyRange.
	// (thin_check 0.9.0 checks only the lower bound given by the parent.)
	ErrNextKey = btree.ErrNextKey
	// ErrReachedAgain means a node checked through one parent is also
	// referenced by another whose key range it does not fit, so lookups
	// through one of them go wrong. (thin_check 0.9.0 skips a node seen
	// before without checking it against the new parent.)
	ErrReachedAgain = errors.New("shared node outside another parent's key range")
	// ErrCycle means a node is reached again from its own subtree. It
	// wraps btree.ErrDepth.
	ErrCycle = fmt.Errorf("%w: a node is its own ancestor", btree.ErrDepth)
)

// CountError is a space map's count of one block that differs from the
// references the check found (Area names the space map). It wraps ErrLeak
// when the count is too high on a block with no references, ErrExtraCount
// when it is too high on a block in use, ErrRefCount when it is too low;
// Found is the count the block should have.
type CountError struct {
	Block           uint64
	Recorded, Found uint32
}

// Error names the kind of miscount, the block, its count and its
// references.
func (e *CountError) Error() string {
	return fmt.Sprintf("%v: block %d has count %d, %d references found", e.Unwrap(), e.Block, e.Recorded, e.Found)
}

// Unwrap returns ErrLeak, ErrExtraCount or ErrRefCount.
func (e *CountError) Unwrap() error {
	switch {
	case e.Recorded > e.Found && e.Found > 0:
		return ErrExtraCount
	case e.Recorded > e.Found:
		return ErrLeak
	}
	return ErrRefCount
}

// MappedBlocksError is a device's mapped_blocks (Recorded) that differs
// from the mappings its tree holds (Found). It wraps ErrMappedBlocks.
type MappedBlocksError struct {
	Recorded, Found uint64
}

// Error gives both numbers.
func (e *MappedBlocksError) Error() string {
	return fmt.Sprintf("%v: details say %d, the tree holds %d", ErrMappedBlocks, e.Recorded, e.Found)
}

// Unwrap returns ErrMappedBlocks.
func (e *MappedBlocksError) Unwrap() error { return ErrMappedBlocks }

// Finding is one problem found by Check.
type Finding struct {
	Severity Severity
	// Area is the structure being examined: "superblock",
	// "metadata snapshot", "device details", "mapping tree",
	// "metadata snapshot device details", "metadata snapshot mapping
	// tree", "metadata space map" or "data space map".
	Area string
	// Device is the thin device concerned, if HasDevice.
	Device    uint64
	HasDevice bool
	// Err describes the problem; use errors.Is/As to classify it. Block
	// numbers are in its text and, for damaged blocks, in a
	// *transaction.CorruptError it wraps.
	Err error
}

// String formats a finding on one line.
// The area is said once: an error that starts by naming it ("superblock
// at block 0: ...") is not prefixed with it again.
func (f Finding) String() string {
	var b strings.Builder
	msg := f.Err.Error()
	if f.HasDevice || !strings.HasPrefix(msg, f.Area+" ") {
		b.WriteString(f.Area)
		if f.HasDevice {
			fmt.Fprintf(&b, ", thin device %d", f.Device)
		}
		b.WriteString(": ")
	}
	b.WriteString(msg)
	if f.Severity == NonFatal {
		b.WriteString(" (non-fatal)")
	}
	return b.String()
}
