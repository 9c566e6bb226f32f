package thin

import (
	"errors"
	"fmt"
	"math"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/spacemap"
)

// Errors of sizes and ranges that the format cannot hold.
var (
	// ErrRange means a range of blocks that is empty the wrong way round
	// or runs past 2^64 (or past what the format can number).
	ErrRange = errors.New("block range out of bounds")
	// ErrMetadataTooSmall means a metadata device too small for what was
	// asked: a data device (or metadata space map) larger than it can
	// describe (the data space map's bitmaps alone would not fit), more
	// metadata blocks than it has, or fewer than the 16 blocks a pool
	// needs at the least.
	ErrMetadataTooSmall = errors.New("metadata device too small")
)

// BlockRange returns the end of the count blocks from begin, begin+count,
// or an error wrapping ErrRange if that runs past 2^64 (a range ending at
// the last block, 2^64-1, has end 0). It is the check every range of
// blocks given as a start and a length goes through.
func BlockRange(begin, count uint64) (end uint64, err error) {
	if count > 0 && begin > math.MaxUint64-(count-1) {
		return 0, fmt.Errorf("%w: %d blocks from block %d run past 2^64", ErrRange, count, begin)
	}
	return begin + count, nil
}

// Nodes of the data space map's index tree (16-byte values), and of the
// internal levels above its leaves.
var (
	indexLeafEntries     = uint64(btree.MaxEntries(spacemap.IndexEntrySize))
	indexInternalEntries = uint64(btree.MaxEntries(btree.InternalValueSize))
)

// DataSpaceMapBlocks returns the fewest metadata blocks the data space map
// of a data device of nrData blocks takes: a bitmap per
// spacemap.EntriesPerBitmap data blocks, and the nodes of the tree that
// indexes them, packed full (trees built by insertion are less dense, so
// a pool may need somewhat more).
func DataSpaceMapBlocks(nrData uint64) uint64 {
	bitmaps := spacemap.NrBitmaps(nrData)
	nodes := (max(bitmaps, 1) + indexLeafEntries - 1) / indexLeafEntries
	n := bitmaps + nodes
	for nodes > 1 {
		nodes = (nodes + indexInternalEntries - 1) / indexInternalEntries
		n += nodes
	}
	return n
}

// fixedMetadataBlocks is what an empty pool of nrMeta metadata blocks
// takes besides the data space map: the superblock, the metadata space
// map's bitmaps, its index block and overflow tree, the data space map's
// overflow tree, and the roots of the mapping and details trees.
func fixedMetadataBlocks(nrMeta uint64) uint64 {
	return 6 + spacemap.NrBitmaps(nrMeta)
}

// CheckDataSize returns an error wrapping ErrMetadataTooSmall if a pool
// on nrMeta metadata blocks cannot describe a data device of nrData
// blocks: the data space map and the structures every pool has would take
// more than the metadata device. It is a lower bound of what the pool
// needs, so it refuses at once what could only fail after allocating and
// writing the space map.
func CheckDataSize(nrData, nrMeta uint64) error {
	nrMeta = min(nrMeta, spacemap.MaxMetadataBlocks)
	if need := DataSpaceMapBlocks(nrData) + fixedMetadataBlocks(nrMeta); need > nrMeta {
		return fmt.Errorf("%w: a data device of %d blocks needs at least %d metadata blocks; the metadata device has %d (it can describe up to %d data blocks)",
			ErrMetadataTooSmall, nrData, need, nrMeta, MaxDataBlocks(nrMeta))
	}
	return nil
}

// MaxDataBlocks returns the largest data device, in data blocks, that a
// pool of nrMeta metadata blocks can describe by CheckDataSize (0 if even
// an empty data device does not fit). The largest any pool can describe
// is MaxDataBlocks(spacemap.MaxMetadataBlocks), about 6.8e10 blocks, far
// below the 2^40 a mapping can name.
func MaxDataBlocks(nrMeta uint64) uint64 {
	nrMeta = min(nrMeta, spacemap.MaxMetadataBlocks)
	fixed := fixedMetadataBlocks(nrMeta)
	fits := func(n uint64) bool { return DataSpaceMapBlocks(n)+fixed <= nrMeta }
	if !fits(0) {
		return 0
	}
	// fits is monotonic; the answer is below nrMeta bitmaps' worth.
	lo, hi := uint64(0), nrMeta*spacemap.EntriesPerBitmap+1
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// checkDataGrowth refuses to grow the data device to n blocks if the new
// bitmaps and index nodes cannot fit the metadata blocks still free.
func (m *Metadata) checkDataGrowth(n uint64) error {
	if err := CheckDataSize(n, m.msm.NrBlocks()); err != nil {
		return err
	}
	cur := m.dsm.NrBlocks()
	if more := DataSpaceMapBlocks(n) - DataSpaceMapBlocks(cur); more > m.msm.NrFree() {
		return fmt.Errorf("%w: growing the data device from %d to %d blocks needs at least %d more metadata blocks; %d are free",
			ErrMetadataTooSmall, cur, n, more, m.msm.NrFree())
	}
	return nil
}
