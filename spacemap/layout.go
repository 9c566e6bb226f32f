package spacemap

import (
	"encoding/binary"

	"github.com/thinmeta/thinmeta/transaction"
)

// RootSize is the size of a disk_sm_root (FORMAT.md §5.1); it occupies the
// first bytes of a 128-byte superblock slot.
const RootSize = 32

// Root is a decoded disk_sm_root.
type Root struct {
	NrBlocks     uint64 // blocks tracked
	NrAllocated  uint64 // blocks with a non-zero count
	BitmapRoot   uint64 // data: root of the index tree; metadata: the index block
	RefCountRoot uint64 // root of the overflow tree
}

// DecodeRoot decodes a root from a superblock slot (only the first RootSize
// bytes are meaningful; the rest of the slot is ignored).
func DecodeRoot(slot []byte) Root {
	le := binary.LittleEndian
	return Root{
		NrBlocks:     le.Uint64(slot[0:]),
		NrAllocated:  le.Uint64(slot[8:]),
		BitmapRoot:   le.Uint64(slot[16:]),
		RefCountRoot: le.Uint64(slot[24:]),
	}
}

// Encode writes r into the first RootSize bytes of slot and zeroes the rest.
func (r Root) Encode(slot []byte) {
	le := binary.LittleEndian
	clear(slot)
	le.PutUint64(slot[0:], r.NrBlocks)
	le.PutUint64(slot[8:], r.NrAllocated)
	le.PutUint64(slot[16:], r.BitmapRoot)
	le.PutUint64(slot[24:], r.RefCountRoot)
}

// IndexEntrySize is the size of a disk_index_entry (FORMAT.md §5.2).
const IndexEntrySize = 16

// IndexEntry describes one bitmap block.
type IndexEntry struct {
	Blocknr        uint64 // location of the bitmap
	NrFree         uint32 // entries with count 0 (counting those past nr_blocks)
	NoneFreeBefore uint32 // no free entry before this position (a hint)
}

// DecodeIndexEntry decodes an index entry.
func DecodeIndexEntry(b []byte) IndexEntry {
	le := binary.LittleEndian
	return IndexEntry{
		Blocknr:        le.Uint64(b[0:]),
		NrFree:         le.Uint32(b[8:]),
		NoneFreeBefore: le.Uint32(b[12:]),
	}
}

// Encode writes e into b.
func (e IndexEntry) Encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], e.Blocknr)
	le.PutUint32(b[8:], e.NrFree)
	le.PutUint32(b[12:], e.NoneFreeBefore)
}

// Bitmap block layout (FORMAT.md §5.3): the 16-byte checksummed header, then
// 510 little-endian 64-bit words of 32 two-bit entries each.
const (
	bitmapHeaderSize = transaction.HeaderSize
	// EntriesPerBitmap is the number of blocks one bitmap tracks.
	EntriesPerBitmap = (transaction.BlockSize - bitmapHeaderSize) * 4
	wordsPerBitmap   = (transaction.BlockSize - bitmapHeaderSize) / 8
)

// Metadata index block layout (FORMAT.md §5.6).
const (
	metadataIndexHeaderSize = transaction.HeaderSize
	// MaxMetadataBitmaps is the number of entries in the metadata index.
	MaxMetadataBitmaps = 255
	// MaxMetadataBlocks is the most metadata blocks a metadata space map
	// can track.
	MaxMetadataBlocks = MaxMetadataBitmaps * EntriesPerBitmap
)

// BitmapEntry returns the count stored for entry e of a bitmap block: 0, 1, 2,
// or 3 for "3 or more, see the overflow tree". Within each 64-bit word the
// lower of the two bits of an entry is its high bit (FORMAT.md §5.3).
func BitmapEntry(block []byte, e int) uint32 {
	w := binary.LittleEndian.Uint64(block[bitmapHeaderSize+8*(e/32):])
	raw := (w >> (2 * (e % 32))) & 3
	return uint32((raw&1)<<1 | raw>>1)
}

// SetBitmapEntry stores count (0 to 3) for entry e of a bitmap block.
func SetBitmapEntry(block []byte, e int, count uint32) {
	off := bitmapHeaderSize + 8*(e/32)
	w := binary.LittleEndian.Uint64(block[off:])
	s := 2 * (e % 32)
	raw := uint64(count&1)<<1 | uint64(count>>1&1)
	w = w&^(3<<s) | raw<<s
	binary.LittleEndian.PutUint64(block[off:], w)
}

// BitmapWord returns word i (of 510) of a bitmap block: the raw two-bit
// entries of blocks 32i to 32i+31, in on-disk bit order.
func BitmapWord(block []byte, i int) uint64 {
	return binary.LittleEndian.Uint64(block[bitmapHeaderSize+8*i:])
}

// SetBitmapWord stores word i (of 510) of a bitmap block: the raw two-bit
// entries of blocks 32i to 32i+31, in on-disk bit order (as BitmapWord
// returns them).
func SetBitmapWord(block []byte, i int, w uint64) {
	binary.LittleEndian.PutUint64(block[bitmapHeaderSize+8*i:], w)
}

// MetadataIndexEntry decodes entry i of a metadata index block.
func MetadataIndexEntry(block []byte, i int) IndexEntry {
	return DecodeIndexEntry(metadataIndexEntry(block, i))
}

// metadataIndexEntry returns the bytes of entry i of a metadata index block.
func metadataIndexEntry(block []byte, i int) []byte {
	off := metadataIndexHeaderSize + IndexEntrySize*i
	return block[off : off+IndexEntrySize]
}

// RefCountValueSize is the value size of the overflow tree: a u32 count.
const RefCountValueSize = 4

// EncodeRefCount encodes an overflow-tree value.
func EncodeRefCount(v []byte, c uint32) { binary.LittleEndian.PutUint32(v, c) }

// DecodeRefCount decodes an overflow-tree value.
func DecodeRefCount(v []byte) uint32 { return binary.LittleEndian.Uint32(v) }
