package check

// counts holds a reference count per block compactly: four bits per block,
// saturating at 15, with the exact count of blocks referenced 15 times or
// more in a map. Snapshot-heavy pools have many blocks with a few
// references, which a map would make costly; fifteen is rarely reached.
// The words are allocated in chunks on first use, so memory follows the
// blocks actually referenced, not the size of the device.
type counts struct {
	// dirs[i][j] covers blocks [(i<<dirShift+j)<<chunkShift, ...+1<<chunkShift).
	// Two levels keep the index small for a data device of billions of
	// blocks of which few are referenced.
	dirs [][]*[chunkWords]uint64
	over map[uint64]uint32
	n    uint64
}

const (
	chunkShift = 15 // blocks per chunk: 32768, in 2048 words (16 KiB)
	chunkWords = 1 << chunkShift / 16
	dirShift   = 10 // chunks per directory: 1024 (8 KiB of pointers)
	saturated  = 15
)

// newCounts returns counts for blocks [0, n). The caller bounds n (by the
// size of the metadata space map) before calling.
func newCounts(n uint64) *counts {
	nc := (n + 1<<chunkShift - 1) >> chunkShift
	return &counts{dirs: make([][]*[chunkWords]uint64, (nc+1<<dirShift-1)>>dirShift), over: make(map[uint64]uint32), n: n}
}

// chunk returns the chunk of block b, allocating it (and its directory).
func (c *counts) chunk(b uint64) *[chunkWords]uint64 {
	ci := b >> chunkShift
	d := c.dirs[ci>>dirShift]
	if d == nil {
		d = make([]*[chunkWords]uint64, 1<<dirShift)
		c.dirs[ci>>dirShift] = d
	}
	ch := d[ci&(1<<dirShift-1)]
	if ch == nil {
		ch = new([chunkWords]uint64)
		d[ci&(1<<dirShift-1)] = ch
	}
	return ch
}

// inc adds one reference to b (which must be < n).
func (c *counts) inc(b uint64) {
	ch := c.chunk(b)
	i := b & (1<<chunkShift - 1)
	w, s := i/16, 4*(i%16)
	switch v := (ch[w] >> s) & 15; {
	case v < saturated-1:
		ch[w] += 1 << s
	case v == saturated-1:
		ch[w] += 1 << s
		c.over[b] = saturated
	default:
		c.over[b]++
	}
}

// get returns b's count (0 for blocks beyond n).
func (c *counts) get(b uint64) uint32 {
	v := uint32(c.word(b/16)>>(4*(b%16))) & 15
	if v == saturated {
		return c.over[b]
	}
	return v
}

// word returns 16 four-bit counts starting at block 16*i (count of block
// 16*i+j at bits 4j to 4j+3).
func (c *counts) word(i uint64) uint64 {
	ci := i / chunkWords
	di := ci >> dirShift
	if di >= uint64(len(c.dirs)) || c.dirs[di] == nil {
		return 0
	}
	ch := c.dirs[di][ci&(1<<dirShift-1)]
	if ch == nil {
		return 0
	}
	return ch[i%chunkWords]
}

const lowBits = 0x5555555555555555

// hasThree reports whether any two-bit entry of a natural-order word is 3.
func hasThree(w uint64) bool { return w&(w>>1)&lowBits != 0 }

// fromDisk converts a bitmap word in on-disk order (the lower bit of each
// pair is the high bit of the count) to natural order.
func fromDisk(w uint64) uint64 { return (w&lowBits)<<1 | (w>>1)&lowBits }

// spread widens 16 two-bit entries (the low 32 bits of w) to 16 four-bit
// ones, so a bitmap word can be compared with two words of counts.
func spread(w uint64) uint64 {
	w &= 0xFFFFFFFF
	w = (w | w<<16) & 0x0000FFFF0000FFFF
	w = (w | w<<8) & 0x00FF00FF00FF00FF
	w = (w | w<<4) & 0x0F0F0F0F0F0F0F0F
	w = (w | w<<2) & 0x3333333333333333
	return w
}
