package check

// counts holds a reference count per block compactly: two bits per block
// (0, 1, 2, or 3 meaning "see over"), and the exact count of blocks with
// three or more references in a map — the shape of the on-disk space maps.
// The two-bit words are allocated in chunks on first use, so memory follows
// the blocks actually referenced, not the size of the device.
type counts struct {
	chunks [][]uint64 // chunk i covers blocks [i<<chunkShift, (i+1)<<chunkShift)
	over   map[uint64]uint32
	n      uint64
}

const (
	chunkShift = 15 // blocks per chunk: 32768, in 1024 words (8 KiB)
	chunkWords = 1 << chunkShift / 32
)

// newCounts returns counts for blocks [0, n). The caller bounds n (by the
// size of the metadata device) before calling.
func newCounts(n uint64) *counts {
	return &counts{chunks: make([][]uint64, (n+1<<chunkShift-1)>>chunkShift), over: make(map[uint64]uint32), n: n}
}

// inc adds one reference to b (which must be < n).
func (c *counts) inc(b uint64) {
	ch := c.chunks[b>>chunkShift]
	if ch == nil {
		ch = make([]uint64, chunkWords)
		c.chunks[b>>chunkShift] = ch
	}
	i := b & (1<<chunkShift - 1)
	w, s := i/32, 2*(i%32)
	switch v := (ch[w] >> s) & 3; {
	case v < 2:
		ch[w] += 1 << s
	case v == 2:
		ch[w] += 1 << s
		c.over[b] = 3
	default:
		c.over[b]++
	}
}

// get returns b's count (0 for blocks beyond n).
func (c *counts) get(b uint64) uint32 {
	v := uint32(c.word(b/32)>>(2*(b%32))) & 3
	if v == 3 {
		return c.over[b]
	}
	return v
}

// word returns 32 two-bit entries starting at block 32*i, in natural order
// (value v of block 32*i+j at bits 2j, 2j+1).
func (c *counts) word(i uint64) uint64 {
	ci := i / chunkWords
	if ci >= uint64(len(c.chunks)) || c.chunks[ci] == nil {
		return 0
	}
	return c.chunks[ci][i%chunkWords]
}

const lowBits = 0x5555555555555555

// hasThree reports whether any entry of a natural-order word is 3.
func hasThree(w uint64) bool { return w&(w>>1)&lowBits != 0 }

// fromDisk converts a bitmap word in on-disk order (the lower bit of each
// pair is the high bit of the count) to natural order.
func fromDisk(w uint64) uint64 { return (w&lowBits)<<1 | (w>>1)&lowBits }
