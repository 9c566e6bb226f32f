// Package refcount keeps a reference count for each block of a device in
// little more memory than a space map's bitmaps: the tools that rebuild or
// verify a pool's space maps (check, restore) count every reference of a
// whole pool, up to billions of blocks.
//
// The counts are held in two planes of two bits a block. The low plane
// holds the two low bits of every count, block b at bits 2(b%32) of word
// b/32, so that the words of a space-map bitmap's blocks follow one
// another as in the bitmap. The next two bits are in a high plane,
// allocated for a group of GroupWords words (1088 blocks; a bitmap's
// blocks are 15 groups) only when a count there first reaches 4; counts
// above Saturated live in a map. Counts of 3 to 14 are common in pools with
// snapshots, which a map would make costly, but they cluster, in the runs
// snapshots share with their origins, so most groups never need their
// high plane: two bits a block, not four.
//
// The planes are outside the Go heap where the system allows
// (internal/offheap), sized for the whole device: the pages of blocks never
// counted are never resident, those counted cost exactly two bits a block,
// and the garbage collector's heap goal does not grow with them. Free
// releases them; Counts dropped without Free release them when collected.
package refcount

import (
	"math/bits"
	"runtime"

	"github.com/thinmeta/thinmeta/internal/offheap"
)

const (
	// GroupWords is the size of a group of the high plane, in words of
	// 32 blocks: 34 (1088 blocks), so that a space-map bitmap's 510
	// words are 15 whole groups.
	GroupWords = 34
	// Saturated is the largest count the planes hold: a count above it
	// is in a map.
	Saturated = 15

	lowBits = 0x5555555555555555 // the low bit of each two-bit entry
)

// Counts holds a count for each block of [0, n). A Counts is not safe for
// concurrent use.
type Counts struct {
	n    uint64
	low  []uint64 // block b at bits 2(b%32) of word b/32
	hidx []uint32 // per group: 0, or 1 + its place in high
	// high holds the high planes of the groups that have one, in the
	// order they were first needed, GroupWords words each; nhigh of
	// them are in use.
	high  []uint64
	nhigh uint32
	over  map[uint64]uint32

	cleanup runtime.Cleanup
}

// New returns zero counts for blocks [0, n).
func New(n uint64) *Counts {
	words := int((n + 31) / 32)
	groups := (words + GroupWords - 1) / GroupWords
	c := &Counts{n: n, over: make(map[uint64]uint32),
		// Every group might need a high plane: as many words again as
		// the low plane, of which only those used become resident.
		low: offheap.Make[uint64](words), high: offheap.Make[uint64](groups * GroupWords),
		hidx: offheap.Make[uint32](groups)}
	c.cleanup = runtime.AddCleanup(c, planes.free, planes{c.low, c.high, c.hidx})
	return c
}

// planes are the mappings of a Counts, for Free and its cleanup.
type planes struct {
	low, high []uint64
	hidx      []uint32
}

func (p planes) free() {
	offheap.Free(p.low)
	offheap.Free(p.high)
	offheap.Free(p.hidx)
}

// Free releases the planes; c must not be used afterwards (a second Free
// does nothing).
func (c *Counts) Free() {
	if c == nil || c.over == nil {
		return
	}
	c.cleanup.Stop()
	planes{c.low, c.high, c.hidx}.free()
	c.low, c.hidx, c.high, c.over = nil, nil, nil, nil
}

// Len returns the number of blocks counted: n of New.
func (c *Counts) Len() uint64 { return c.n }

// Inc adds a reference to block b (below Len).
func (c *Counts) Inc(b uint64) {
	w, s := b/32, 2*(b%32)
	if (c.low[w]>>s)&3 < 3 {
		c.low[w] += 1 << s
		return
	}
	c.carry(b, w, s)
}

// IncRun adds a reference to each of the n blocks from b (all below Len),
// a word of the low plane at a time: one addition for the run's blocks in
// it, and a carry for each of them that was at 3.
func (c *Counts) IncRun(b, n uint64) {
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

// carry is an increment of block b, entry (w, s) of the low plane, whose
// low bits are 3: into the high plane, or past Saturated into the map.
func (c *Counts) carry(b, w, s uint64) {
	g := w / GroupWords
	k := c.hidx[g]
	if k == 0 {
		c.nhigh++
		k = c.nhigh
		c.hidx[g] = k
	}
	hw := uint64(k-1)*GroupWords + w%GroupWords
	if (c.high[hw]>>s)&3 == 3 {
		if v, ok := c.over[b]; ok {
			c.over[b] = v + 1
		} else {
			c.over[b] = Saturated + 1
		}
		return
	}
	c.low[w] &^= 3 << s
	c.high[hw] += 1 << s
}

// highWord returns the index in high of the word beside low plane word
// w, and false if w's group has no high plane.
func (c *Counts) highWord(w uint64) (uint64, bool) {
	k := c.hidx[w/GroupWords]
	return uint64(k-1)*GroupWords + w%GroupWords, k != 0
}

// Dec drops a reference to block b, which has one.
func (c *Counts) Dec(b uint64) {
	w, s := b/32, 2*(b%32)
	if v, ok := c.over[b]; ok {
		if v == Saturated+1 {
			delete(c.over, b)
		} else {
			c.over[b] = v - 1
		}
		return
	}
	if (c.low[w]>>s)&3 != 0 {
		c.low[w] -= 1 << s
		return
	}
	// Borrow from the high plane (the count is 4 or more, so it exists).
	c.low[w] |= 3 << s
	hw, _ := c.highWord(w)
	c.high[hw] -= 1 << s
}

// Get returns block b's count (0 for a block beyond Len).
func (c *Counts) Get(b uint64) uint32 {
	if b >= c.n {
		return 0
	}
	w, s := b/32, 2*(b%32)
	v := uint32(c.low[w]>>s) & 3
	if hw, ok := c.highWord(w); ok {
		v |= uint32(c.high[hw]>>s) & 3 << 2
	}
	if v == Saturated {
		if o, ok := c.over[b]; ok {
			return o
		}
	}
	return v
}

// Word returns the two planes of the 32 blocks from block 32*i (block
// 32*i+j at bits 2j and 2j+1 of each): their counts are low + high<<2,
// where that is below Saturated; Get gives the others. Words beyond Len
// are zero.
func (c *Counts) Word(i uint64) (low, high uint64) {
	if i >= uint64(len(c.low)) {
		return 0, 0
	}
	if hw, ok := c.highWord(i); ok {
		high = c.high[hw]
	}
	return c.low[i], high
}
