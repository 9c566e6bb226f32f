package check

import (
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
// in 11% of the groups). The chunks of the low plane are allocated on
// first use too, so memory follows the blocks actually referenced, not the
// size of the device. Both planes are outside the Go heap (offheap.Slab),
// in mappings of 1 MiB, pages of which become resident when first written:
// in the heap, 20 MiB of planes would let as much garbage pile up before a
// collection, and a chunk with its high plane's pointers (8448 bytes) took
// a 9472-byte size class. release frees them.
type counts struct {
	// dirs[i][j] covers blocks [(i<<dirShift+j)<<chunkShift, ...+1<<chunkShift).
	// Two levels keep the index small for a data device of billions of
	// blocks of which few are referenced.
	dirs [][]*chunk
	over map[uint64]uint32
	n    uint64
	// last is the chunk of the last block inc counted, lastIdx its
	// index: a device's mappings run through few chunks in turn, so most
	// counts skip the two-level lookup.
	last    *chunk
	lastIdx uint64
	// lows and highs hand out the low planes of chunks and the high
	// planes of groups.
	lows, highs *offheap.Slab
}

const (
	chunkShift  = 15 // blocks per chunk: 32768, in 1024 words (8 KiB) of the low plane
	chunkWords  = 1 << chunkShift / 32
	groupShift  = 10 // blocks per group of the high plane: 1024, in 32 words (256 bytes)
	groupWords  = 1 << groupShift / 32
	dirShift    = 10 // chunks per directory: 1024 (8 KiB of pointers)
	saturated   = 15 // the largest count the planes hold
	chunkGroups = 1 << (chunkShift - groupShift)
)

// chunk is the low plane of 32768 blocks (block i at bits 2(i%32) of word
// i/32) and the high plane of each of its groups (nil: every count in the
// group is below 4).
type chunk struct {
	low  *[chunkWords]uint64
	high [chunkGroups]*[groupWords]uint64
}

// slabBytes is the size of the slabs' mappings.
const slabBytes = 1 << 20

// newCounts returns counts for blocks [0, n). The caller bounds n (by the
// size of the metadata space map) before calling.
func newCounts(n uint64) *counts {
	nc := (n + 1<<chunkShift - 1) >> chunkShift
	return &counts{
		dirs: make([][]*chunk, (nc+1<<dirShift-1)>>dirShift), over: make(map[uint64]uint32), n: n,
		lows:  offheap.NewSlab(8*chunkWords, slabBytes/(8*chunkWords)),
		highs: offheap.NewSlab(8*groupWords, slabBytes/(8*groupWords)),
	}
}

// release frees the planes; the counts must not be used after it.
func (c *counts) release() {
	c.lows.Release()
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

// words returns a zeroed block of s as an array of n words.
func words[A *[chunkWords]uint64 | *[groupWords]uint64](s *offheap.Slab) A {
	return A(unsafe.Pointer(unsafe.SliceData(s.Get())))
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
		ch = &chunk{low: words[*[chunkWords]uint64](c.lows)}
		d[ci&(1<<dirShift-1)] = ch
	}
	return ch
}

// inc adds one reference to b (which must be < n).
func (c *counts) inc(b uint64) {
	ch := c.last
	if ci := b >> chunkShift; ch == nil || ci != c.lastIdx {
		ch = c.chunk(b)
		c.last, c.lastIdx = ch, ci
	}
	i := b & (1<<chunkShift - 1)
	w, s := i/32, 2*(i%32)
	if (ch.low[w]>>s)&3 < 3 {
		ch.low[w] += 1 << s
		return
	}
	c.carry(ch, b, i, w, s)
}

// incRun adds one reference to each of the n blocks from b (all < the
// bound): a word of the low plane at a time, one addition for the run's
// blocks in it unless one of them is at 3 (then those blocks go through
// inc, which carries).
func (c *counts) incRun(b, n uint64) {
	for n > 0 {
		ch := c.last
		if ci := b >> chunkShift; ch == nil || ci != c.lastIdx {
			ch = c.chunk(b)
			c.last, c.lastIdx = ch, ci
		}
		i := b & (1<<chunkShift - 1)
		w, s := i/32, i%32
		k := min(n, 32-s) // the run's blocks in word w
		m := uint64(lowBits) >> (64 - 2*k) << (2 * s)
		if v := ch.low[w]; v&(v>>1)&m == 0 {
			ch.low[w] = v + m
		} else {
			for j := range k {
				c.inc(b + j)
			}
		}
		b, n = b+k, n-k
	}
}

// carry is inc of a block whose low bits are 3: the count carries into
// the high plane, or, at 15 or more, into the map.
func (c *counts) carry(ch *chunk, b, i, w, s uint64) {
	h := ch.high[i>>groupShift]
	if h == nil {
		h = words[*[groupWords]uint64](c.highs)
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
	ch.low[w] &^= 3 << s
	h[hw] += 1 << s
}

// get returns b's count (0 for blocks beyond n).
func (c *counts) get(b uint64) uint32 {
	ch := c.chunkOf(b)
	if ch == nil {
		return 0
	}
	i := b & (1<<chunkShift - 1)
	w, s := i/32, 2*(i%32)
	v := uint32(ch.low[w]>>s) & 3
	if h := ch.high[i>>groupShift]; h != nil {
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
	ch := c.chunkOf(32 * i)
	if ch == nil {
		return 0, 0
	}
	j := i % chunkWords
	if h := ch.high[j/groupWords]; h != nil {
		high = h[j%groupWords]
	}
	return ch.low[j], high
}

const lowBits = 0x5555555555555555

// hasThree reports whether any two-bit entry of a natural-order word is 3.
func hasThree(w uint64) bool { return w&(w>>1)&lowBits != 0 }

// fromDisk converts a bitmap word in on-disk order (the lower bit of each
// pair is the high bit of the count) to natural order.
func fromDisk(w uint64) uint64 { return (w&lowBits)<<1 | (w>>1)&lowBits }
