package thin

import (
	"github.com/thinmeta/thinmeta/spacemap"
)

// Sizes behind EstimateMetadataBlocks. Every node of a tree the kernel or
// thinmeta writes, except a root, holds at least half its capacity: nodes
// are split into halves when full (FORMAT.md §4.5).
const (
	// halfMapping: half of a mapping or top-level leaf, or of an internal
	// node (252 entries of 8 bytes).
	halfMapping = 126
	// halfDetails: half of a device-details leaf (126 entries of 24 bytes).
	halfDetails = 63
	// halfIndex: half of a data space map index leaf (168 entries of 16
	// bytes).
	halfIndex = 84
	// transactionSlack is room for one transaction's shadow copies: what
	// it frees becomes free only when it commits (2 MiB, LVM's smallest
	// metadata device).
	transactionSlack = 512
	// maxKernelReserve bounds the metadata blocks the kernel keeps back:
	// a pool whose free metadata falls to min(4096, a tenth of the
	// device) stops allocating data blocks (dm-thin-metadata.c,
	// __set_metadata_reserve).
	maxKernelReserve = 4096
)

// EstimateMetadataBlocks returns how many 4 KiB metadata blocks a pool
// needs whose data device has nrDataBlocks blocks, all of them mapped,
// with at most maxThins thin devices and snapshots: a size the pool
// really fits in, under the kernel or thinmeta, however the mappings are
// spread over the thins and in whatever order they are written.
//
// It bounds each structure by its half-full nodes (the mapping trees
// hold at most nrDataBlocks/125 + maxThins nodes, whatever the spread),
// adds the device-details and top-level trees, both space maps, the
// superblock, room for the transaction in flight and the kernel's
// reserve. thin_metadata_size (0.9.0 and 1.1.0) counts only the mapping
// leaves at half full, one block per thin and the superblock: about 5%
// less for a large pool, which a pool filled in order (whose leaves are
// half full) does not fit in, and far too little for a small one (see
// the metadata-size command's help). Snapshots are counted as thins; the
// leaves they share are counted once per writer, which over-counts them.
//
// The second result is false when no metadata device is large enough:
// the estimate is then more than spacemap.MaxMetadataBlocks, the most a
// metadata space map can track, and the returned value is that limit.
func EstimateMetadataBlocks(nrDataBlocks, maxThins uint64) (uint64, bool) {
	// The mapping trees: a tree of m entries has at most m/126 leaves
	// and, above them, at most 1/125 of that in internal nodes plus a
	// root: m/125 + 1 blocks.
	need := divUp(nrDataBlocks, 125) + maxThins
	need += divUp(maxThins, halfDetails-1) + 1 // device details
	need += divUp(maxThins, halfMapping-1) + 1 // top level
	dataBitmaps := divUp(nrDataBlocks, spacemap.EntriesPerBitmap)
	need += dataBitmaps + divUp(dataBitmaps, halfIndex-1) + 1 // data space map
	need += 2                                                 // the space maps' overflow roots
	need += 1 + 1                                             // superblock, metadata space map index
	need += transactionSlack
	// The metadata space map's bitmaps depend on the total; two rounds
	// settle it (a bitmap covers 16,320 blocks).
	total := need
	for range 2 {
		total = withReserve(need + divUp(total, spacemap.EntriesPerBitmap))
	}
	if total > spacemap.MaxMetadataBlocks {
		return spacemap.MaxMetadataBlocks, false
	}
	return total, true
}

// withReserve returns the smallest device that leaves n blocks free above
// the kernel's reserve of min(4096, a tenth of the device).
func withReserve(n uint64) uint64 {
	if n/9 >= maxKernelReserve {
		return n + maxKernelReserve
	}
	t := divUp(n*10, 9)
	for t-min(maxKernelReserve, t/10) < n {
		t++
	}
	return t
}

func divUp(a, b uint64) uint64 { return a/b + min(a%b, 1) }
