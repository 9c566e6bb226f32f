// Package refcount keeps a reference count for each block of a device in
// less memory than a space map's bitmaps: the tools that rebuild or verify
// a pool's space maps (check, restore) count every reference of a whole
// pool, up to billions of blocks.
//
// The counts are held bit-sliced, one plane for each of their four bits.
// The plane of bit 0 covers the whole device, block b at bit b%64 of word
// b/64. The others are allocated a group of GroupBlocks blocks (1088; a
// space-map bitmap's blocks are 15 groups) at a time, in the order they are
// first needed: bit 1's when a count in the group first reaches 2, bits 2
// and 3 together when one first reaches 4. Counts above Saturated live in
// a map. Most blocks of a pool are referenced once, and those referenced
// more cluster, in the runs snapshots share with their origins, so most
// groups never need more than bit 0: a pool whose shared blocks fill a
// third of its groups costs about 1.4 bits a block, and none costs more
// than four.
//
// The planes are outside the Go heap where the system allows
// (internal/offheap), sized for the whole device: the pages of blocks never
// counted are never resident, and the garbage collector's heap goal does
// not grow with them. Free releases them; Counts dropped without Free
// release them when collected.
package refcount

import (
	"math/bits"
	"runtime"

	"github.com/thinmeta/thinmeta/internal/offheap"
)

const (
	// GroupWords is the size of a group of the upper planes in words of
	// 64 blocks: 17, so that a space-map bitmap's 16320 blocks are 15
	// whole groups.
	GroupWords = 17
	// GroupBlocks is the number of blocks in a group: 1088.
	GroupBlocks = 64 * GroupWords
	// Saturated is the largest count the planes hold: a count above it
	// is in a map.
	Saturated = 15
)

// Counts holds a count for each block of [0, n). A Counts is not safe for
// concurrent use.
type Counts struct {
	n    uint64
	bit0 []uint64 // bit 0 of block b's count at bit b%64 of word b/64
	// midx and hidx hold, per group, 0 or 1 + the group's place in mid
	// and high. mid holds bit 1 of the groups that have it, GroupWords
	// words each; high bits 2 and 3, 2*GroupWords words a group (bit 2's
	// words, then bit 3's). nmid and nhigh of them are in use.
	midx, hidx  []uint32
	mid, high   []uint64
	nmid, nhigh uint32
	over        map[uint64]uint32

	cleanup runtime.Cleanup
}

// New returns zero counts for blocks [0, n).
func New(n uint64) *Counts {
	words := int((n + 63) / 64)
	groups := (words + GroupWords - 1) / GroupWords
	// Every group might need its upper planes: of these reservations only
	// the pages used become resident.
	p := planes{
		bit0: offheap.Make[uint64](words),
		mid:  offheap.Make[uint64](groups * GroupWords),
		high: offheap.Make[uint64](groups * 2 * GroupWords),
		midx: offheap.Make[uint32](groups),
		hidx: offheap.Make[uint32](groups),
	}
	c := &Counts{n: n, over: make(map[uint64]uint32),
		bit0: p.bit0, mid: p.mid, high: p.high, midx: p.midx, hidx: p.hidx}
	c.cleanup = runtime.AddCleanup(c, planes.free, p)
	return c
}

// planes are the mappings of a Counts, for Free and its cleanup.
type planes struct {
	bit0, mid, high []uint64
	midx, hidx      []uint32
}

func (p planes) free() {
	offheap.Free(p.bit0)
	offheap.Free(p.mid)
	offheap.Free(p.high)
	offheap.Free(p.midx)
	offheap.Free(p.hidx)
}

// Free releases the planes; c must not be used afterwards (a second Free
// does nothing).
func (c *Counts) Free() {
	if c == nil || c.over == nil {
		return
	}
	c.cleanup.Stop()
	planes{c.bit0, c.mid, c.high, c.midx, c.hidx}.free()
	c.bit0, c.mid, c.high, c.midx, c.hidx, c.over = nil, nil, nil, nil, nil, nil
}

// Len returns the number of blocks counted: n of New.
func (c *Counts) Len() uint64 { return c.n }

// Inc adds a reference to block b (below Len).
func (c *Counts) Inc(b uint64) {
	w, m := b/64, uint64(1)<<(b%64)
	v := c.bit0[w]
	c.bit0[w] = v ^ m
	if v&m != 0 {
		c.carry(w, m)
	}
}

// IncRun adds a reference to each of the n blocks from b (all below Len),
// a word of bit 0's plane at a time: one exclusive or for the run's blocks
// in it, and a carry for those whose bit 0 was set.
func (c *Counts) IncRun(b, n uint64) {
	bit0 := c.bit0
	for n > 0 {
		w, s := b/64, b%64
		k := min(n, 64-s) // the run's blocks in word w
		m := ^uint64(0) >> (64 - k) << s
		v := bit0[w]
		bit0[w] = v ^ m
		if t := v & m; t != 0 {
			c.carry(w, t)
		}
		b, n = b+k, n-k
	}
}

// carry completes the increment of the blocks t of word w, whose bit 0 was
// set and has been cleared: it adds 2 to each from bit 1 up, allocating
// the group's upper planes as they are first needed. A block at Saturated
// keeps its planes and goes past it in the map.
func (c *Counts) carry(w, t uint64) {
	mw := c.midWord(w)
	t1 := c.mid[mw] & t // bit 1 set: carries on
	c.mid[mw] ^= t
	if t1 == 0 {
		return
	}
	hw := c.highWord(w)
	t2 := c.high[hw] & t1
	c.high[hw] ^= t1
	if t2 == 0 {
		return
	}
	sat := c.high[hw+GroupWords] & t2 // all four bits were set
	c.high[hw+GroupWords] ^= t2 &^ sat
	if sat == 0 {
		return
	}
	c.bit0[w] |= sat
	c.mid[mw] |= sat
	c.high[hw] |= sat
	for ; sat != 0; sat &= sat - 1 {
		b := 64*w + uint64(bits.TrailingZeros64(sat))
		if v, ok := c.over[b]; ok {
			c.over[b] = v + 1
		} else {
			c.over[b] = Saturated + 1
		}
	}
}

// midWord returns the index in mid of the word of bit 1 beside word w of
// bit 0, allocating the group's plane if it has none.
func (c *Counts) midWord(w uint64) uint64 {
	return uint64(place(c.midx, &c.nmid, w)-1)*GroupWords + w%GroupWords
}

// highWord returns the index in high of the word of bit 2 beside word w of
// bit 0 (bit 3's is GroupWords on), allocating the group's planes if it has
// none.
func (c *Counts) highWord(w uint64) uint64 {
	return uint64(place(c.hidx, &c.nhigh, w)-1)*2*GroupWords + w%GroupWords
}

// place returns 1 + the place of word w's group among those of an upper
// plane (idx, of which *used are in use), giving it the next if it has
// none.
func place(idx []uint32, used *uint32, w uint64) uint32 {
	g := w / GroupWords
	if idx[g] == 0 {
		*used++
		idx[g] = *used
	}
	return idx[g]
}

// upper returns the indexes in mid and high of the words beside word w of
// bit 0, and whether the group has each plane, allocating none.
func (c *Counts) upper(w uint64) (mw, hw uint64, hasMid, hasHigh bool) {
	g := w / GroupWords
	km, kh := c.midx[g], c.hidx[g]
	return uint64(km-1)*GroupWords + w%GroupWords, uint64(kh-1)*2*GroupWords + w%GroupWords, km != 0, kh != 0
}

// Dec drops a reference to block b, which has one.
func (c *Counts) Dec(b uint64) {
	if v, ok := c.over[b]; ok {
		if v == Saturated+1 {
			delete(c.over, b)
		} else {
			c.over[b] = v - 1
		}
		return
	}
	w, m := b/64, uint64(1)<<(b%64)
	c.bit0[w] ^= m
	if c.bit0[w]&m == 0 {
		return
	}
	// Borrow from the upper bits: the count is 2 or more, so the group
	// has the planes of its set bits.
	mw, hw, _, _ := c.upper(w)
	c.mid[mw] ^= m
	if c.mid[mw]&m == 0 {
		return
	}
	c.high[hw] ^= m
	if c.high[hw]&m == 0 {
		return
	}
	c.high[hw+GroupWords] ^= m
}

// Get returns block b's count (0 for a block beyond Len).
func (c *Counts) Get(b uint64) uint32 {
	if b >= c.n {
		return 0
	}
	w, s := b/64, b%64
	v := uint32(c.bit0[w]>>s) & 1
	mw, hw, hasMid, hasHigh := c.upper(w)
	if hasMid {
		v |= uint32(c.mid[mw]>>s) & 1 << 1
	}
	if hasHigh {
		v |= uint32(c.high[hw]>>s)&1<<2 | uint32(c.high[hw+GroupWords]>>s)&1<<3
	}
	if v == Saturated {
		if o, ok := c.over[b]; ok {
			return o
		}
	}
	return v
}

// Word returns the counts of the 32 blocks from block 32*i in the two-bit
// entries of a space map's bitmap (block 32*i+j at bits 2j and 2j+1 of
// each): their counts are low + high<<2, where that is below Saturated;
// Get gives the others. Words beyond Len are zero.
func (c *Counts) Word(i uint64) (low, high uint64) {
	w, s := i/2, 32*(i%2)
	if w >= uint64(len(c.bit0)) {
		return 0, 0
	}
	lo := c.bit0[w] >> s & 0xffffffff
	mw, hw, hasMid, hasHigh := c.upper(w)
	if hasMid {
		lo |= c.mid[mw] >> s << 32
	}
	if hasHigh {
		high = interleave(c.high[hw]>>s&0xffffffff | c.high[hw+GroupWords]>>s<<32)
	}
	return interleave(lo), high
}

// interleave moves bit j of x's low half to bit 2j and bit j of its high
// half to bit 2j+1 (the outer perfect shuffle, Hacker's Delight 7-2).
func interleave(x uint64) uint64 {
	t := (x ^ x>>16) & 0x00000000ffff0000
	x ^= t ^ t<<16
	t = (x ^ x>>8) & 0x0000ff000000ff00
	x ^= t ^ t<<8
	t = (x ^ x>>4) & 0x00f000f000f000f0
	x ^= t ^ t<<4
	t = (x ^ x>>2) & 0x0c0c0c0c0c0c0c0c
	x ^= t ^ t<<2
	t = (x ^ x>>1) & 0x2222222222222222
	return x ^ t ^ t<<1
}
