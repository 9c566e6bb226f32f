package repair

import (
	"maps"
	"slices"
)

// refCounts counts references per block, for blocks numbered up to 2^40:
// a byte per block in chunks allocated on first use, with counts of 255
// and more in a map. Memory follows the blocks referenced.
type refCounts struct {
	chunks map[uint64]*[chunkSize]uint8
	over   map[uint64]uint32
}

const chunkSize = 1 << 16

func newRefCounts() *refCounts {
	return &refCounts{chunks: make(map[uint64]*[chunkSize]uint8), over: make(map[uint64]uint32)}
}

func (c *refCounts) inc(b uint64) {
	ch := c.chunks[b/chunkSize]
	if ch == nil {
		ch = new([chunkSize]uint8)
		c.chunks[b/chunkSize] = ch
	}
	v := &ch[b%chunkSize]
	switch {
	case *v < 254:
		*v++
	case *v == 254:
		*v = 255
		c.over[b] = 255
	default:
		c.over[b]++
	}
}

// dec drops a reference counted before.
func (c *refCounts) dec(b uint64) {
	ch := c.chunks[b/chunkSize]
	if ch == nil {
		return
	}
	v := &ch[b%chunkSize]
	switch {
	case *v == 0:
	case *v < 255:
		*v--
	case c.over[b] > 255:
		c.over[b]--
	default:
		delete(c.over, b)
		*v = 254
	}
}

func (c *refCounts) get(b uint64) uint32 {
	ch := c.chunks[b/chunkSize]
	if ch == nil {
		return 0
	}
	if v := ch[b%chunkSize]; v < 255 {
		return uint32(v)
	}
	return c.over[b]
}

// each calls fn for every block with a non-zero count, in block order.
func (c *refCounts) each(fn func(b uint64, n uint32)) {
	for _, i := range slices.Sorted(maps.Keys(c.chunks)) {
		ch := c.chunks[i]
		for j, v := range ch {
			if v == 0 {
				continue
			}
			b := i*chunkSize + uint64(j)
			n := uint32(v)
			if v == 255 {
				n = c.over[b]
			}
			fn(b, n)
		}
	}
}

// bitset is a set of block numbers below a bound.
type bitset []uint64

func newBitset(n uint64) bitset    { return make(bitset, (n+63)/64) }
func (s bitset) has(b uint64) bool { return s[b/64]&(1<<(b%64)) != 0 }
func (s bitset) set(b uint64)      { s[b/64] |= 1 << (b % 64) }
func (s bitset) clear(b uint64)    { s[b/64] &^= 1 << (b % 64) }
