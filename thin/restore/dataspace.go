package restore

import (
	"math/bits"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/refcount"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/transaction"
)

// perBitmap is the number of data blocks one space-map bitmap tracks.
const perBitmap = spacemap.EntriesPerBitmap

// chunkWords is the number of words of bitmap entries (32 blocks each,
// refcount.Counts.Word) one bitmap's blocks take.
const chunkWords = perBitmap / 32

// The data blocks' reference counts are kept, while the pool is built, in
// a refcount.Counts: one reference per distinct leaf that maps the block
// (a leaf shared by several devices counts once, FORMAT.md §4.4). Its
// Word gives the counts of 32 blocks in a bitmap's layout, so bitmap i's
// entries are words i*chunkWords onwards.

var (
	indexVT    = &btree.ValueType{Size: spacemap.IndexEntrySize}
	overflowVT = &btree.ValueType{Size: spacemap.RefCountValueSize}
)

// writeDataSpaceMap writes the counts d as a data space map (FORMAT.md
// §5.5): a bitmap per 16320 blocks, the index tree over them and the
// overflow tree of counts of three or more. It returns the space map's
// root. checkpoint is called after each bitmap; stopped before each, and
// its error ends the write.
func writeDataSpaceMap(d *refcount.Counts, tm *transaction.Manager, checkpoint, stopped func() error) (spacemap.Root, error) {
	index := btree.NewBuilder(tm, indexVT)
	overflow := btree.NewBuilder(tm, overflowVT)
	var allocated uint64
	var vbuf [spacemap.IndexEntrySize]byte
	var obuf [8]byte
	var over []uint64 // entries of the current bitmap counted 3 or more
	for i := range spacemap.NrBitmaps(d.Len()) {
		// A data device of 2^32 blocks has 263,000 bitmaps, seconds of
		// work: a cancellation is noticed at each.
		if err := stopped(); err != nil {
			return spacemap.Root{}, err
		}
		blk, buf, err := tm.New(spacemap.BitmapValidator)
		if err != nil {
			return spacemap.Root{}, err
		}
		ie := spacemap.IndexEntry{Blocknr: blk, NrFree: perBitmap}
		var used uint32
		used, ie.NoneFreeBefore, over = fillBitmap(buf, d, i, over)
		ie.NrFree -= used
		allocated += uint64(used)
		// buf is complete: adding to the trees may write it out.
		for _, e := range over {
			b := i*perBitmap + e
			if err := overflow.Add(b, encodeU32(&obuf, d.Get(b))); err != nil {
				return spacemap.Root{}, err
			}
		}
		over = over[:0]
		ie.Encode(vbuf[:])
		if err := index.Add(i, vbuf[:]); err != nil {
			return spacemap.Root{}, err
		}
		if err := checkpoint(); err != nil {
			return spacemap.Root{}, err
		}
	}
	ir, err := index.Finish()
	if err != nil {
		return spacemap.Root{}, err
	}
	or, err := overflow.Finish()
	if err != nil {
		return spacemap.Root{}, err
	}
	return spacemap.Root{NrBlocks: d.Len(), NrAllocated: allocated, BitmapRoot: ir, RefCountRoot: or}, nil
}

const lowBits = 0x5555555555555555 // the low bit of each two-bit entry

// fillBitmap writes the counts of bitmap i's blocks in d into the entries
// of bitmap buf, each as min(count, 3), a word (32 counts) at a time: the
// low entries of Word with 3 wherever the high ones are not 0, their bits
// swapped into on-disk order (FORMAT.md §5.3). It returns how many counts are not
// 0 and the first entry that is 0 (perBitmap if none), and appends to over
// the entries counted 3 or more.
func fillBitmap(buf []byte, d *refcount.Counts, i uint64, over []uint64) (used, firstFree uint32, _ []uint64) {
	firstFree = perBitmap
	for w := range chunkWords {
		lo, hi := d.Word(i*chunkWords + uint64(w))
		nonzero := (lo | lo>>1 | hi | hi>>1) & lowBits
		used += uint32(bits.OnesCount64(nonzero))
		if z := ^nonzero & lowBits; z != 0 && firstFree == perBitmap {
			firstFree = uint32(32*w + bits.TrailingZeros64(z)/2)
		}
		ge4 := (hi | hi>>1) & lowBits
		v := lo | ge4 | ge4<<1 // min(count, 3)
		for ge3 := v & (v >> 1) & lowBits; ge3 != 0; ge3 &= ge3 - 1 {
			over = append(over, uint64(32*w+bits.TrailingZeros64(ge3)/2))
		}
		spacemap.SetBitmapWord(buf, w, (v&lowBits)<<1|(v>>1)&lowBits)
	}
	return used, firstFree, over
}
