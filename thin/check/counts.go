package check

// counts holds a reference count per block compactly: two bits per block
// (0, 1, 2, or 3 meaning "see over"), and the exact count of blocks with
// three or more references in a map — the shape of the on-disk space maps,
// so memory stays at a quarter byte per block for typical pools.
type counts struct {
	words []uint64
	over  map[uint64]uint32
	n     uint64
}

func newCounts(n uint64) *counts {
	return &counts{words: make([]uint64, (n+31)/32), over: make(map[uint64]uint32), n: n}
}

// inc adds one reference to b (which must be < n).
func (c *counts) inc(b uint64) {
	w, s := b/32, 2*(b%32)
	v := (c.words[w] >> s) & 3
	switch {
	case v < 2:
		c.words[w] += 1 << s
	case v == 2:
		c.words[w] += 1 << s
		c.over[b] = 3
	default:
		c.over[b]++
	}
}

// get returns b's count.
func (c *counts) get(b uint64) uint32 {
	v := uint32(c.words[b/32]>>(2*(b%32))) & 3
	if v == 3 {
		return c.over[b]
	}
	return v
}

// word returns 32 two-bit entries starting at block 32*i, in natural order
// (value v of block 32*i+j at bits 2j, 2j+1).
func (c *counts) word(i uint64) uint64 {
	if i >= uint64(len(c.words)) {
		return 0
	}
	return c.words[i]
}

const lowBits = 0x5555555555555555

// hasThree reports whether any entry of a natural-order word is 3.
func hasThree(w uint64) bool { return w&(w>>1)&lowBits != 0 }

// fromDisk converts a bitmap word in on-disk order (the lower bit of each
// pair is the high bit of the count) to natural order.
func fromDisk(w uint64) uint64 { return (w&lowBits)<<1 | (w>>1)&lowBits }
