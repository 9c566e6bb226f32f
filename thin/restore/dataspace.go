package restore

import (
	"encoding/binary"
	"math/bits"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/transaction"
)

// perBitmap is the number of data blocks one space-map bitmap tracks.
const perBitmap = spacemap.EntriesPerBitmap

// saturated marks a count kept in dataCounts.over.
const saturated = 15

// dataCounts holds the reference count of every data block while the pool
// is built: one reference per distinct leaf that maps the block (a leaf
// shared by several devices counts once, FORMAT.md §4.4). Counts are four
// bits a block (half a byte: block e of a chunk in the low bits of byte
// e/2 when e is even, the high bits when odd), in chunks of one bitmap's
// worth of blocks, allocated when first touched; counts of 15 and more
// live in a map. Four bits rather than the space map's two: counts of 3 to
// 14 are common in pools with snapshots, and would make a map costly.
type dataCounts struct {
	nr     uint64
	chunks []*[perBitmap / 2]uint8
	over   map[uint64]uint32
}

func newDataCounts(nr uint64) *dataCounts {
	return &dataCounts{nr: nr, chunks: make([]*[perBitmap / 2]uint8, spacemap.NrBitmaps(nr)), over: make(map[uint64]uint32)}
}

// incRange adds a reference to blocks b..b+n-1 (all below nr).
func (d *dataCounts) incRange(b, n uint64) {
	for n > 0 {
		i, e := b/perBitmap, b%perBitmap
		c := d.chunks[i]
		if c == nil {
			c = new([perBitmap / 2]uint8)
			d.chunks[i] = c
		}
		k := min(n, perBitmap-e)
		for j := e; j < e+k; j++ {
			p, s := &c[j>>1], 4*(j&1)
			if (*p>>s)&15 < saturated-1 {
				*p += 1 << s
			} else {
				d.incSlow(i*perBitmap+j, p, s)
			}
		}
		b += k
		n -= k
	}
}

func (d *dataCounts) incSlow(b uint64, p *uint8, s uint64) {
	if (*p>>s)&15 == saturated-1 {
		*p += 1 << s
		d.over[b] = saturated
		return
	}
	d.over[b]++
}

// dec drops a reference to block b, which has one.
func (d *dataCounts) dec(b uint64) {
	e := b % perBitmap
	p, s := &d.chunks[b/perBitmap][e>>1], 4*(e&1)
	if (*p>>s)&15 != saturated {
		*p -= 1 << s
		return
	}
	v := d.over[b] - 1
	if v < saturated {
		delete(d.over, b)
		*p = *p&^(15<<s) | uint8(v)<<s
		return
	}
	d.over[b] = v
}

// count returns entry e of chunk c (of bitmap i).
func (d *dataCounts) count(c *[perBitmap / 2]uint8, i, e uint64) uint32 {
	if v := uint32(c[e>>1]>>(4*(e&1))) & 15; v != saturated {
		return v
	}
	return d.over[i*perBitmap+e]
}

var (
	indexVT    = &btree.ValueType{Size: spacemap.IndexEntrySize}
	overflowVT = &btree.ValueType{Size: spacemap.RefCountValueSize}
)

// write writes the counts as a data space map (FORMAT.md §5.5): a bitmap
// per 16320 blocks, the index tree over them and the overflow tree of
// counts of three or more. It returns the space map's root. checkpoint is
// called after each bitmap; stopped before each, and its error ends the
// write.
func (d *dataCounts) write(tm *transaction.Manager, checkpoint, stopped func() error) (spacemap.Root, error) {
	index := btree.NewBuilder(tm, indexVT)
	overflow := btree.NewBuilder(tm, overflowVT)
	var allocated uint64
	var vbuf [spacemap.IndexEntrySize]byte
	var obuf [8]byte
	var over []uint64 // entries of the current bitmap counted 3 or more
	for i, c := range d.chunks {
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
		if c != nil {
			var used uint32
			used, ie.NoneFreeBefore, over = fillBitmap(buf, c, over)
			ie.NrFree -= used
			allocated += uint64(used)
		}
		// buf is complete: adding to the trees may write it out.
		for _, e := range over {
			if err := overflow.Add(uint64(i)*perBitmap+e, encodeU32(&obuf, d.count(c, uint64(i), e))); err != nil {
				return spacemap.Root{}, err
			}
		}
		over = over[:0]
		ie.Encode(vbuf[:])
		if err := index.Add(uint64(i), vbuf[:]); err != nil {
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
	return spacemap.Root{NrBlocks: d.nr, NrAllocated: allocated, BitmapRoot: ir, RefCountRoot: or}, nil
}

// Masks of the four-bit counts in a 64-bit word of a chunk (counts 16j to
// 16j+15 of it, count k in bits 4k to 4k+3): the low bit of each, and the
// low two bits of each.
const (
	nibbleLow  = 0x1111111111111111
	nibbleLow2 = 0x3333333333333333
)

// fillBitmap writes the counts of chunk c into the entries of bitmap buf,
// each as min(count, 3), sixteen counts at a time. It returns how many
// counts are not 0 and the first entry that is 0 (perBitmap if none), and
// appends to over the entries counted 3 or more.
func fillBitmap(buf []byte, c *[perBitmap / 2]uint8, over []uint64) (used, firstFree uint32, _ []uint64) {
	firstFree = perBitmap
	for i := range perBitmap / 32 {
		var word uint64
		for half := range 2 {
			j := 2*i + half // word j of the chunk: counts 16j to 16j+15
			x := binary.LittleEndian.Uint64(c[8*j:])
			nonzero := (x | x>>1 | x>>2 | x>>3) & nibbleLow
			used += uint32(bits.OnesCount64(nonzero))
			if z := ^nonzero & nibbleLow; z != 0 && firstFree == perBitmap {
				firstFree = uint32(16*j + bits.TrailingZeros64(z)/4)
			}
			word |= uint64(bitmapEntries(x)) << (32 * half)
			for ge3 := ((x>>2 | x>>3) | x&(x>>1)) & nibbleLow; ge3 != 0; ge3 &= ge3 - 1 {
				over = append(over, uint64(16*j+bits.TrailingZeros64(ge3)/4))
			}
		}
		spacemap.SetBitmapWord(buf, i, word)
	}
	return used, firstFree, over
}

// bitmapEntries turns sixteen four-bit counts (count k in bits 4k to
// 4k+3 of x) into sixteen two-bit bitmap entries in on-disk form (entry k
// in bits 2k and 2k+1, FORMAT.md §5.3): each is min(count, 3) with its two
// bits swapped, as spacemap.SetBitmapEntry stores it.
func bitmapEntries(x uint64) uint32 {
	ge4 := (x>>2 | x>>3) & nibbleLow
	v := x&nibbleLow2 | ge4 | ge4<<1 // min(count, 3) in the low two bits
	v = (v&nibbleLow)<<1 | (v>>1)&nibbleLow
	// Pack the two-bit fields, four bits apart, together.
	v = (v | v>>2) & 0x0F0F0F0F0F0F0F0F
	v = (v | v>>4) & 0x00FF00FF00FF00FF
	v = (v | v>>8) & 0x0000FFFF0000FFFF
	v = (v | v>>16) & 0x00000000FFFFFFFF
	return uint32(v)
}
