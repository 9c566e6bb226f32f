package transaction

import "encoding/binary"

// ReadAhead reads blocks for one scan of mostly consecutive blocks, such as
// a walk over a B-tree that thin_restore or a long-lived pool laid out
// contiguously. ReadInto fetches a window of blocks with one read of the
// device instead of one read per block; the window doubles while the scan
// keeps asking for the block after the current or the previous window, and
// halves when it jumps elsewhere, so a scattered scan costs about one read
// per block as without it.
//
// Every block is judged exactly as Reader.ReadInto judges it: a block the
// Reader's cache holds comes from the cache, under the validator it was
// cached with; any other is validated when it is asked for, whether the
// window holds it or not, and a block the window cannot supply (beyond the
// device, or a failed read) is read by the Reader. So results and errors are
// those of the Reader, and a block that failed validation is never served
// later as valid: the window keeps raw bytes, never a verdict. Read uses the
// Reader's cache. A ReadAhead is not safe for concurrent use: use one per
// goroutine.
//
// A scan that knows which blocks it reads next (a B-tree walk that has read
// an internal node) says so with Plan, and from then on the ReadAhead reads
// what it was told instead of guessing (see Plan). View lends a block
// without copying it.
type ReadAhead struct {
	r       *Reader
	buf     []byte
	first   uint64 // block number of buf[0]
	n       uint64 // blocks in the window
	prevEnd uint64 // end of the window before this one
	size    uint64 // blocks to read on the next miss
	max     uint64

	plan    []uint64 // the blocks the scan reads next (Plan), in order
	planAt  int      // the first of them not yet missed
	planned bool     // Plan was called
	one     []byte   // View's block when the window cannot lend it
}

// planGap is how many blocks nobody asked for a planned read may take in to
// join two planned blocks: reading them costs less than another read.
const planGap = 8

// NewReadAhead returns a ReadAhead over r whose windows grow to at most
// maxBlocks blocks (at least 1).
func NewReadAhead(r *Reader, maxBlocks int) *ReadAhead {
	m := uint64(max(maxBlocks, 1))
	return &ReadAhead{r: r, size: 1, max: m}
}

// NrBlocks returns the number of whole blocks on the device.
func (a *ReadAhead) NrBlocks() uint64 { return a.r.NrBlocks() }

// Read returns block b validated with v through the Reader's cache.
func (a *ReadAhead) Read(b uint64, v *Validator) ([]byte, error) { return a.r.Read(b, v) }

// ReadInto reads block b into buf and validates it with v.
func (a *ReadAhead) ReadInto(b uint64, buf []byte, v *Validator) error {
	if err := a.r.live(); err != nil {
		return err
	}
	if hit, err := a.r.fromCache(b, buf, v); hit {
		return err
	}
	if !a.window(b) {
		return a.r.readInto(b, buf, v)
	}
	off := (b - a.first) * BlockSize
	copy(buf[:BlockSize], a.buf[off:off+BlockSize])
	return v.Validate(buf[:BlockSize], b)
}

// View returns block b validated with v, as ReadInto would read it, without
// copying it when the window holds it. The slice is valid until the next
// call of any method of a, and must not be modified.
func (a *ReadAhead) View(b uint64, v *Validator) ([]byte, error) {
	if err := a.r.live(); err != nil {
		return nil, err
	}
	if a.one == nil {
		a.one = make([]byte, BlockSize)
	}
	if hit, err := a.r.fromCache(b, a.one, v); hit {
		return a.one, err
	}
	if !a.window(b) {
		return a.one, a.r.readInto(b, a.one, v)
	}
	off := (b - a.first) * BlockSize
	blk := a.buf[off : off+BlockSize : off+BlockSize]
	return blk, v.Validate(blk, b)
}

// Plan tells a which blocks the scan asks for next, in that order (it may
// skip some): next holds their numbers as little-endian 64-bit words, as
// the values of a B-tree's internal node do. It replaces the plan before.
//
// Once a scan has planned, a miss at a planned block reads it together
// with the planned blocks that follow it in the plan and on the device
// (each at most planGap blocks after the one before, all within the
// window's maximum) in one read, and a miss at any other block reads that
// block alone, keeping the window. So a planned walk of a tree reads the
// tree's blocks and hardly any others, where the doubling windows also
// read what lies after each internal node; thin_restore of either
// generation writes a tree's leaves in runs, its internal nodes apart from
// them. What a block is judged to be does not depend on the plan.
func (a *ReadAhead) Plan(next []byte) {
	a.planned = true
	a.plan, a.planAt = a.plan[:0], 0
	for i := 0; i+8 <= len(next); i += 8 {
		a.plan = append(a.plan, binary.LittleEndian.Uint64(next[i:]))
	}
}

// window makes the window hold block b, if it can, and reports whether it
// does.
func (a *ReadAhead) window(b uint64) bool {
	if b-a.first < a.n { // (b < a.first wraps around)
		return true
	}
	if a.planned {
		return a.fillPlanned(b)
	}
	if b == a.first+a.n || b == a.prevEnd {
		a.size = min(2*a.size, a.max)
	} else {
		a.size = max(a.size/2, 1)
	}
	return a.fill(b)
}

// fillPlanned reads the planned run of blocks from b into the window; it
// returns false, leaving the window as it is, if b is not planned.
func (a *ReadAhead) fillPlanned(b uint64) bool {
	for i := a.planAt; i < len(a.plan); i++ {
		if a.plan[i] != b {
			continue
		}
		end := b + 1
		for _, c := range a.plan[i+1:] {
			if c < end || c-end > planGap || c-b >= a.max {
				break
			}
			end = c + 1
		}
		a.planAt = i + 1
		a.size = end - b
		return a.fill(b)
	}
	return false
}

// fill reads the window starting at b; false means it could not.
func (a *ReadAhead) fill(b uint64) bool {
	end := a.first + a.n
	a.first, a.n, a.prevEnd = b, 0, end
	nr := a.r.NrBlocks()
	if b >= nr {
		return false
	}
	n := min(a.size, nr-b)
	if uint64(len(a.buf)) < n*BlockSize {
		a.buf = make([]byte, n*BlockSize)
	}
	got, err := a.r.ra.ReadAt(a.buf[:n*BlockSize], int64(b)*BlockSize)
	if got < BlockSize {
		return false
	}
	if err != nil || uint64(got) < n*BlockSize {
		n = uint64(got) / BlockSize // keep the whole blocks that were read
	}
	a.n = n
	return true
}
