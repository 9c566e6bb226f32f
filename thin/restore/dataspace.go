package restore

import (
	"math/bits"
	"runtime"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/offheap"
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
// shared by several devices counts once, FORMAT.md §4.4), in two planes
// of two bits a block. The low plane holds the two low bits of every
// count, block b at bits 2(b%32) of word b/32 (so bitmap i's blocks are
// words i*chunkWords onwards, laid out as the space map's own bitmaps).
// The next two bits are in a high plane, allocated per group of 1088
// blocks (groupWords words) only when a count there first reaches 4;
// counts above 15 live in a map. Counts of 3 to 14 are common in pools
// with snapshots, which a map would make costly; but they cluster, in the
// runs snapshots share with their origins, so most groups never need
// their high plane (two bits a block, not four).
//
// The planes are outside the Go heap where the system allows
// (internal/offheap), sized for the whole data device: the pages of
// blocks never counted are never resident, those counted cost exactly two
// bits a block (no allocator size class to round up to), and the garbage
// collector's heap goal does not grow with them. free releases them; a
// dataCounts dropped without free releases them when it is collected.
type dataCounts struct {
	nr   uint64
	low  []uint64 // chunkWords words per bitmap
	hidx []uint32 // per group: 0, or 1 + its place in high
	// high holds the high planes of the groups that have one, in the
	// order they were first needed, groupWords words each; nhigh of them
	// are in use.
	high  []uint64
	nhigh uint32
	over  map[uint64]uint32

	cleanup runtime.Cleanup
}

// dataChunk is a view of the counts of one bitmap's blocks; high[g] is
// nil while every count of group g is below 4.
type dataChunk struct {
	low  []uint64              // chunkWords words
	high [chunkGroups][]uint64 // groupWords words each, or nil
}

func newDataCounts(nr uint64) *dataCounts {
	nb := int(spacemap.NrBitmaps(nr))
	d := &dataCounts{nr: nr, over: make(map[uint64]uint32),
		// Every group might need a high plane: as many words again as
		// the low plane, of which only those used become resident.
		low: offheap.Make[uint64](nb * chunkWords), high: offheap.Make[uint64](nb * chunkWords),
		hidx: offheap.Make[uint32](nb * chunkGroups)}
	d.cleanup = runtime.AddCleanup(d, planes.free, planes{d.low, d.high, d.hidx})
	return d
}

// planes are the mappings of a dataCounts, for free and its cleanup.
type planes struct {
	low, high []uint64
	hidx      []uint32
}

func (p planes) free() {
	offheap.Free(p.low)
	offheap.Free(p.high)
	offheap.Free(p.hidx)
}

// free releases the planes; d must not be used afterwards (a second free
// does nothing).
func (d *dataCounts) free() {
	if d.over == nil {
		return
	}
	d.cleanup.Stop()
	planes{d.low, d.high, d.hidx}.free()
	d.low, d.hidx, d.high, d.over = nil, nil, nil, nil
}

// incRange adds a reference to blocks b..b+n-1 (all below nr), a word of
// the low plane at a time where none of the word's entries in the range
// is at 3 (the entries' additions cannot carry into each other then).
func (d *dataCounts) incRange(b, n uint64) {
	end := b + n
	for b < end {
		w, s := b/32, 2*(b%32)
		k := min(end-b, 32-b%32) // entries of word w in the range
		m := uint64(lowBits) >> (64 - 2*k) << s
		v := d.low[w]
		if v&(v>>1)&m == 0 {
			d.low[w] = v + m
		} else {
			for j := b; j < b+k; j++ {
				s := 2 * (j % 32)
				if (d.low[w]>>s)&3 < 3 {
					d.low[w] += 1 << s
				} else {
					d.carry(j, w, s)
				}
			}
		}
		b += k
	}
}

// carry is an increment of block b, entry (w, s) of the low plane, whose
// low bits are 3: into the high plane, or past 15 into the map.
func (d *dataCounts) carry(b, w, s uint64) {
	g := w / groupWords
	k := d.hidx[g]
	if k == 0 {
		d.nhigh++
		k = d.nhigh
		d.hidx[g] = k
	}
	hw := uint64(k-1)*groupWords + w%groupWords
	if (d.high[hw]>>s)&3 == 3 {
		if v, ok := d.over[b]; ok {
			d.over[b] = v + 1
		} else {
			d.over[b] = saturated + 1
		}
		return
	}
	d.low[w] &^= 3 << s
	d.high[hw] += 1 << s
}

// highWord returns the index in high of the word beside low plane word
// w, and false if w's group has no high plane.
func (d *dataCounts) highWord(w uint64) (uint64, bool) {
	k := d.hidx[w/groupWords]
	return uint64(k-1)*groupWords + w%groupWords, k != 0
}

// dec drops a reference to block b, which has one.
func (d *dataCounts) dec(b uint64) {
	w, s := b/32, 2*(b%32)
	if v, ok := d.over[b]; ok {
		if v == saturated+1 {
			delete(d.over, b)
		} else {
			d.over[b] = v - 1
		}
		return
	}
	if (d.low[w]>>s)&3 != 0 {
		d.low[w] -= 1 << s
		return
	}
	// Borrow from the high plane (the count is 4 or more, so it exists).
	d.low[w] |= 3 << s
	hw, _ := d.highWord(w)
	d.high[hw] -= 1 << s
}

// count returns block b's count.
func (d *dataCounts) count(b uint64) uint32 {
	w, s := b/32, 2*(b%32)
	v := uint32(d.low[w]>>s) & 3
	if hw, ok := d.highWord(w); ok {
		v |= uint32(d.high[hw]>>s) & 3 << 2
	}
	if v == saturated {
		if o, ok := d.over[b]; ok {
			return o
		}
	}
	return v
}

// chunk returns the view of bitmap i's counts.
func (d *dataCounts) chunk(i uint64) dataChunk {
	c := dataChunk{low: d.low[i*chunkWords : (i+1)*chunkWords]}
	for g := range uint64(chunkGroups) {
		if k := d.hidx[i*chunkGroups+g]; k != 0 {
			c.high[g] = d.high[uint64(k-1)*groupWords : uint64(k)*groupWords]
		}
	}
	return c
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
	for i := range spacemap.NrBitmaps(d.nr) {
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
		used, ie.NoneFreeBefore, over = fillBitmap(buf, d.chunk(i), over)
		ie.NrFree -= used
		allocated += uint64(used)
		// buf is complete: adding to the trees may write it out.
		for _, e := range over {
			b := i*perBitmap + e
			if err := overflow.Add(b, encodeU32(&obuf, d.count(b))); err != nil {
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
	return spacemap.Root{NrBlocks: d.nr, NrAllocated: allocated, BitmapRoot: ir, RefCountRoot: or}, nil
}

const lowBits = 0x5555555555555555 // the low bit of each two-bit entry

// fillBitmap writes the counts of chunk c into the entries of bitmap buf,
// each as min(count, 3), a word (32 counts) at a time: the low plane with
// 3 wherever the high plane is not 0, its two bits swapped into on-disk
// order (FORMAT.md §5.3). It returns how many counts are not 0 and the
// first entry that is 0 (perBitmap if none), and appends to over the
// entries counted 3 or more.
func fillBitmap(buf []byte, c dataChunk, over []uint64) (used, firstFree uint32, _ []uint64) {
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
