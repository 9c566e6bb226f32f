package restore

import (
	"math/bits"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/transaction"
)

// perBitmap is the number of data blocks one space-map bitmap tracks.
const perBitmap = spacemap.EntriesPerBitmap

// saturated is the largest count the planes hold: a count above it is
// in dataCounts.over.
const saturated = 15

const (
	chunkWords  = perBitmap / 32 // words of a chunk's low plane: 510
	groupWords  = 34             // words of a group's high plane (1088 blocks)
	chunkGroups = chunkWords / groupWords
)

// dataCounts holds the reference count of every data block while the pool
// is built: one reference per distinct leaf that maps the block (a leaf
// shared by several devices counts once, FORMAT.md §4.4). A chunk holds
// one bitmap's worth of blocks, allocated when first touched, as two
// planes of two bits a block: the low plane, the two low bits of every
// count (block e of the chunk at bits 2(e%32) of word e/32, as the space
// map's own bitmaps hold two bits a block), and the next two bits, in a
// high plane allocated per group of 1088 blocks only when a count there
// first reaches 4; counts above 15 live in a map. Counts of 3 to 14 are
// common in pools with snapshots, which a map would make costly; but they
// cluster, in the runs snapshots share with their origins, so most groups
// never need their high plane (two bits a block, not four).
type dataCounts struct {
	nr     uint64
	chunks []*dataChunk
	over   map[uint64]uint32
}

// dataChunk is the counts of one bitmap's blocks; high[g] is nil while
// every count of group g is below 4.
type dataChunk struct {
	low  [chunkWords]uint64
	high [chunkGroups]*[groupWords]uint64
}

func newDataCounts(nr uint64) *dataCounts {
	return &dataCounts{nr: nr, chunks: make([]*dataChunk, spacemap.NrBitmaps(nr)), over: make(map[uint64]uint32)}
}

// incRange adds a reference to blocks b..b+n-1 (all below nr).
func (d *dataCounts) incRange(b, n uint64) {
	for n > 0 {
		i, e := b/perBitmap, b%perBitmap
		c := d.chunks[i]
		if c == nil {
			c = new(dataChunk)
			d.chunks[i] = c
		}
		k := min(n, perBitmap-e)
		for j := e; j < e+k; j++ {
			w, s := j/32, 2*(j%32)
			if (c.low[w]>>s)&3 < 3 {
				c.low[w] += 1 << s
			} else {
				d.carry(c, i*perBitmap+j, w, s)
			}
		}
		b += k
		n -= k
	}
}

// carry is an increment of block b, entry (w, s) of c, whose low bits are
// 3: into the high plane, or past 15 into the map.
func (d *dataCounts) carry(c *dataChunk, b, w, s uint64) {
	h := c.high[w/groupWords]
	if h == nil {
		h = new([groupWords]uint64)
		c.high[w/groupWords] = h
	}
	hw := w % groupWords
	if (h[hw]>>s)&3 == 3 {
		if v, ok := d.over[b]; ok {
			d.over[b] = v + 1
		} else {
			d.over[b] = saturated + 1
		}
		return
	}
	c.low[w] &^= 3 << s
	h[hw] += 1 << s
}

// dec drops a reference to block b, which has one.
func (d *dataCounts) dec(b uint64) {
	e := b % perBitmap
	c := d.chunks[b/perBitmap]
	w, s := e/32, 2*(e%32)
	if v, ok := d.over[b]; ok {
		if v == saturated+1 {
			delete(d.over, b)
		} else {
			d.over[b] = v - 1
		}
		return
	}
	if (c.low[w]>>s)&3 != 0 {
		c.low[w] -= 1 << s
		return
	}
	// Borrow from the high plane (the count is 4 or more, so it exists).
	c.low[w] |= 3 << s
	c.high[w/groupWords][w%groupWords] -= 1 << s
}

// count returns entry e of chunk c (of bitmap i).
func (d *dataCounts) count(c *dataChunk, i, e uint64) uint32 {
	w, s := e/32, 2*(e%32)
	v := uint32(c.low[w]>>s) & 3
	if h := c.high[w/groupWords]; h != nil {
		v |= uint32(h[w%groupWords]>>s) & 3 << 2
	}
	if v == saturated {
		if o, ok := d.over[i*perBitmap+e]; ok {
			return o
		}
	}
	return v
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

const lowBits = 0x5555555555555555 // the low bit of each two-bit entry

// fillBitmap writes the counts of chunk c into the entries of bitmap buf,
// each as min(count, 3), a word (32 counts) at a time: the low plane with
// 3 wherever the high plane is not 0, its two bits swapped into on-disk
// order (FORMAT.md §5.3). It returns how many counts are not 0 and the
// first entry that is 0 (perBitmap if none), and appends to over the
// entries counted 3 or more.
func fillBitmap(buf []byte, c *dataChunk, over []uint64) (used, firstFree uint32, _ []uint64) {
	firstFree = perBitmap
	for w := range chunkWords {
		lo := c.low[w]
		var hi uint64
		if h := c.high[w/groupWords]; h != nil {
			hi = h[w%groupWords]
		}
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
