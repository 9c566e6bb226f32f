package transaction

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
type ReadAhead struct {
	r       *Reader
	buf     []byte
	first   uint64 // block number of buf[0]
	n       uint64 // blocks in the window
	prevEnd uint64 // end of the window before this one
	size    uint64 // blocks to read on the next miss
	max     uint64
}

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
	if b-a.first >= a.n { // miss (b < a.first wraps around)
		if b == a.first+a.n || b == a.prevEnd {
			a.size = min(2*a.size, a.max)
		} else {
			a.size = max(a.size/2, 1)
		}
		if !a.fill(b) {
			return a.r.readInto(b, buf, v)
		}
	}
	off := (b - a.first) * BlockSize
	copy(buf[:BlockSize], a.buf[off:off+BlockSize])
	return v.Validate(buf[:BlockSize], b)
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
