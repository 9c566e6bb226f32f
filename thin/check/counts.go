package check

import (
	"math/bits"
	"unsafe"

	"github.com/thinmeta/thinmeta/internal/offheap"
)

// counts holds a reference count per block compactly, as two planes of two
// bits a block: the low plane holds the two low bits of every count (the
// space maps' own two bits a block); the high plane, the next two bits, is
// allocated for a group of 1024 blocks only when a count there first
// reaches 4. A count of 15 is saturated: the planes hold 15 and a count
// above it is in a map. A pool with few snapshots thus costs two bits a
// block, and one whose snapshots share blocks with their origins four bits
// only in the groups those blocks are in: snapshots share the runs of
// their origins, so blocks counted 4 or more cluster (in bench/scale.sh's
// pool of 10M mappings, the 9% of referenced blocks counted 3 or more lie
// in 11% of the groups).
//
// The low plane is one flat array outside the Go heap (offheap.Make): an
// anonymous mapping, whose pages become resident when first written, so
// its memory follows the blocks actually referenced (a page per 16384
// blocks), not the size of the device, and a count is one load away from
// its block number (chunked low planes, each found through a directory,
// made the counter wait on three dependent loads per run: a third of its
// time). The high planes come from a slab, outside the heap too: in the
// heap, 20 MiB of planes would let as much garbage pile up before a
// collection. release frees them.
type counts struct {
	low []uint64 // block b at bits 2(b%32) of word b/32
	// dirs[i][j] holds the high planes of blocks
	// [(i<<dirShift+j)<<chunkShift, ...+1<<chunkShift). Two levels keep
	// the index small for a data device of billions of blocks.
	dirs  [][]*chunk
	over  map[uint64]uint32
	n     uint64
	highs *offheap.Slab
}

const (
	chunkShift  = 15 // blocks per chunk of the high planes' index: 32768
	groupShift  = 10 // blocks per group of the high plane: 1024, in 32 words (256 bytes)
	groupWords  = 1 << groupShift / 32
	dirShift    = 10 // chunks per directory: 1024 (8 KiB of pointers)
	saturated   = 15 // the largest count the planes hold
	chunkGroups = 1 << (chunkShift - groupShift)
)

// chunk holds the high plane of each group of 32768 blocks (nil: every
// count in the group is below 4).
type chunk struct {
	high [chunkGroups]*[groupWords]uint64
}

// slabBytes is the size of the high planes' mappings.
const slabBytes = 1 << 20

// newCounts returns counts for blocks [0, n). The caller bounds n (by the
// size of the metadata space map) before calling.
func newCounts(n uint64) *counts {
	nc := (n + 1<<chunkShift - 1) >> chunkShift
	return &counts{
		low:  offheap.Make[uint64](int((n + 31) / 32)),
		dirs: make([][]*chunk, (nc+1<<dirShift-1)>>dirShift), over: make(map[uint64]uint32), n: n,
		highs: offheap.NewSlab(8*groupWords, slabBytes/(8*groupWords)),
	}
}

// release frees the planes; the counts must not be used after it.
func (c *counts) release() {
	offheap.Free(c.low)
	c.highs.Release()
	*c = counts{}
}

// releaseCounts frees the checker's counts once the check is over (the
// data counter has ended).
func (c *checker) releaseCounts() {
	for _, k := range []**counts{&c.meta, &c.data} {
		if *k != nil {
			(*k).release()
			*k = nil
		}
	}
}

// chunk returns the chunk of block b, allocating it (and its directory).
func (c *counts) chunk(b uint64) *chunk {
	ci := b >> chunkShift
	d := c.dirs[ci>>dirShift]
	if d == nil {
		d = make([]*chunk, 1<<dirShift)
		c.dirs[ci>>dirShift] = d
	}
	ch := d[ci&(1<<dirShift-1)]
	if ch == nil {
		ch = &chunk{}
		d[ci&(1<<dirShift-1)] = ch
	}
	return ch
}

// inc adds one reference to b (which must be < n).
func (c *counts) inc(b uint64) {
	w, s := b/32, 2*(b%32)
	if (c.low[w]>>s)&3 < 3 {
		c.low[w] += 1 << s
		return
	}
	c.carry(b, w, s)
}

// incRun adds one reference to each of the n blocks from b (all < the
// bound): a word of the low plane at a time, one addition for the run's
// blocks in it, and a carry for each of them that was at 3.
func (c *counts) incRun(b, n uint64) {
	low := c.low
	for n > 0 {
		w, s := b/32, b%32
		k := min(n, 32-s) // the run's blocks in word w
		m := uint64(lowBits) >> (64 - 2*k) << (2 * s)
		v := low[w]
		t := v & (v >> 1) & m // the run's blocks at 3: they carry
		low[w] = v + m&^t
		for t != 0 {
			j := uint64(bits.TrailingZeros64(t))
			c.carry(b-s+j/2, w, j)
			t &= t - 1
		}
		b, n = b+k, n-k
	}
}

// carry is inc of a block whose low bits are 3: the count carries into
// the high plane, or, at 15 or more, into the map.
func (c *counts) carry(b, w, s uint64) {
	ch := c.chunk(b)
	i := b & (1<<chunkShift - 1)
	h := ch.high[i>>groupShift]
	if h == nil {
		h = (*[groupWords]uint64)(unsafe.Pointer(unsafe.SliceData(c.highs.Get())))
		ch.high[i>>groupShift] = h
	}
	hw := w % groupWords
	if (h[hw]>>s)&3 == 3 {
		if v, ok := c.over[b]; ok {
			c.over[b] = v + 1
		} else {
			c.over[b] = saturated + 1
		}
		return
	}
	c.low[w] &^= 3 << s
	h[hw] += 1 << s
}

// high returns the high plane of the group of block b, or nil.
func (c *counts) high(b uint64) *[groupWords]uint64 {
	if ch := c.chunkOf(b); ch != nil {
		return ch.high[(b&(1<<chunkShift-1))>>groupShift]
	}
	return nil
}

// get returns b's count (0 for blocks beyond n).
func (c *counts) get(b uint64) uint32 {
	if b >= c.n {
		return 0
	}
	w, s := b/32, 2*(b%32)
	v := uint32(c.low[w]>>s) & 3
	if h := c.high(b); h != nil {
		v |= uint32(h[w%groupWords]>>s) & 3 << 2
	}
	if v == saturated {
		if o, ok := c.over[b]; ok {
			return o
		}
	}
	return v
}

// chunkOf returns the chunk of block b, or nil if none is allocated.
func (c *counts) chunkOf(b uint64) *chunk {
	ci := b >> chunkShift
	di := ci >> dirShift
	if di >= uint64(len(c.dirs)) || c.dirs[di] == nil {
		return nil
	}
	return c.dirs[di][ci&(1<<dirShift-1)]
}

// word returns the two planes of the 32 blocks starting at block 32*i
// (block 32*i+j at bits 2j and 2j+1, as fromDisk orders a bitmap word):
// when high is 0, low holds those blocks' whole counts.
func (c *counts) word(i uint64) (low, high uint64) {
	if i >= uint64(len(c.low)) {
		return 0, 0
	}
	if h := c.high(32 * i); h != nil {
		high = h[i%groupWords]
	}
	return c.low[i], high
}

const lowBits = 0x5555555555555555

// hasThree reports whether any two-bit entry of a natural-order word is 3.
func hasThree(w uint64) bool { return w&(w>>1)&lowBits != 0 }

// fromDisk converts a bitmap word in on-disk order (the lower bit of each
// pair is the high bit of the count) to natural order.
func fromDisk(w uint64) uint64 { return (w&lowBits)<<1 | (w>>1)&lowBits }
