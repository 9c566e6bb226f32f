package transaction

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// A Reader reads validated metadata blocks from an io.ReaderAt. It keeps a
// small cache of recently read blocks and is safe for concurrent use.
//
// Blocks returned by Read are shared with the cache and must not be modified.
type Reader struct {
	ra       io.ReaderAt
	nrBlocks uint64
	closed   atomic.Bool
	parent   *Reader // Derive: closing it closes this one too
	shared   bool    // Derive(nil, ...): reads through the parent's cache
	guard    func() error

	mu    sync.Mutex
	cache map[uint64]*cached
	clock []uint64 // ring of cached block numbers, for eviction
	hand  int
	limit int
}

type cached struct {
	data []byte
	v    *Validator
	ref  bool
	slot int // index in clock
}

// DefaultCacheBlocks is the number of blocks a Reader caches by default (4 MiB).
const DefaultCacheBlocks = 1024

// NewReader returns a Reader over the first size bytes of ra. Only whole
// 4096-byte blocks are addressable.
func NewReader(ra io.ReaderAt, size int64) *Reader {
	if size < 0 {
		size = 0
	}
	return &Reader{
		ra:       ra,
		nrBlocks: uint64(size) / BlockSize,
		cache:    make(map[uint64]*cached),
		limit:    DefaultCacheBlocks,
	}
}

// Derive returns a new Reader over the first size bytes of ra that also
// stops reading once r is closed: for a view that must end with what it
// was taken from. If ra is nil it reads r's device through r's cache (the
// two must read the same state); otherwise it has a cache of its own.
func (r *Reader) Derive(ra io.ReaderAt, size int64) *Reader {
	shared := ra == nil
	if shared {
		ra = r.ra
	}
	d := NewReader(ra, size)
	d.parent, d.shared = r, shared
	return d
}

// Close makes every later read (and every read of a Reader derived from
// r) fail with ErrClosed. It does not close the device, and closing twice
// is harmless.
func (r *Reader) Close() {
	r.closed.Store(true)
	r.mu.Lock()
	r.cache, r.clock, r.hand = make(map[uint64]*cached), nil, 0
	r.mu.Unlock()
}

// Closed reports whether r, or a Reader it was derived from, is closed.
func (r *Reader) Closed() bool {
	for q := r; q != nil; q = q.parent {
		if q.closed.Load() {
			return true
		}
	}
	return false
}

// Guard makes every read of r (and of the Readers derived from it) call
// f first and fail with its error, if any: for a reader of something
// that can go stale. It must be called before r is used.
func (r *Reader) Guard(f func() error) { r.guard = f }

func (r *Reader) live() error {
	for q := r; q != nil; q = q.parent {
		if q.closed.Load() {
			return ErrClosed
		}
		if q.guard != nil {
			if err := q.guard(); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetCacheBlocks changes the number of blocks kept in the cache (0 disables it).
func (r *Reader) SetCacheBlocks(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.limit = max(n, 0)
	r.cache = make(map[uint64]*cached)
	r.clock = nil
	r.hand = 0
}

// caches reports whether r keeps a cache of blocks (SetCacheBlocks).
func (r *Reader) caches() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.limit > 0
}

// NrBlocks returns the number of whole blocks on the device.
func (r *Reader) NrBlocks() uint64 { return r.nrBlocks }

// ReaderAt returns the underlying device.
func (r *Reader) ReaderAt() io.ReaderAt { return r.ra }

// ReadRaw reads block b into buf (at least BlockSize bytes) without any
// validation.
func (r *Reader) ReadRaw(b uint64, buf []byte) error {
	if err := r.live(); err != nil {
		return err
	}
	return r.rawRead(b, buf)
}

// rawRead is ReadRaw for a caller that checked that r is live.
func (r *Reader) rawRead(b uint64, buf []byte) error {
	if b >= r.nrBlocks {
		return &CorruptError{Block: b, Kind: "block", Err: ErrOutOfRange,
			Detail: fmt.Sprintf("device has %d blocks", r.nrBlocks)}
	}
	n, err := r.ra.ReadAt(buf[:BlockSize], int64(b)*BlockSize)
	if n == BlockSize {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &IOError{Block: b, Op: "read", Err: err}
}

// ReadInto reads block b into buf and validates it with v. A block the
// cache holds is copied from it and judged as Read judges it (read as
// another kind it fails with ErrValidatorMismatch); any other block is read
// from the device without entering the cache, which suits a single pass
// over many blocks.
func (r *Reader) ReadInto(b uint64, buf []byte, v *Validator) error {
	if err := r.live(); err != nil {
		return err
	}
	if hit, err := r.fromCache(b, buf, v); hit {
		return err
	}
	return r.readInto(b, buf, v)
}

// readInto reads block b from the device into buf and validates it, for a
// caller that checked that r is live.
func (r *Reader) readInto(b uint64, buf []byte, v *Validator) error {
	if err := r.rawRead(b, buf); err != nil {
		if ce, ok := err.(*CorruptError); ok {
			ce.Kind = v.Kind
		}
		return err
	}
	return v.Validate(buf[:BlockSize], b)
}

// fromCache copies block b into buf if the cache holds it, reporting
// whether it did; a block cached under another validator is refused.
func (r *Reader) fromCache(b uint64, buf []byte, v *Validator) (hit bool, err error) {
	if r.shared {
		return r.parent.fromCache(b, buf, v)
	}
	r.mu.Lock()
	c, ok := r.cache[b]
	if !ok {
		r.mu.Unlock()
		return false, nil
	}
	c.ref = true
	data, cv := c.data, c.v
	r.mu.Unlock()
	if cv != v {
		return true, Corruptf(b, v.Kind, ErrValidatorMismatch, "already read as %s", cv.Kind)
	}
	copy(buf[:BlockSize], data)
	return true, nil
}

// Read returns block b validated with v, from the cache when possible. The
// returned slice must not be modified. Reading a cached block with a
// different validator fails with ErrValidatorMismatch.
func (r *Reader) Read(b uint64, v *Validator) ([]byte, error) {
	if err := r.live(); err != nil {
		return nil, err
	}
	if r.shared {
		return r.parent.Read(b, v)
	}
	r.mu.Lock()
	if c, ok := r.cache[b]; ok {
		// Take both fields under the lock: insert may replace them.
		c.ref = true
		data, cv := c.data, c.v
		r.mu.Unlock()
		if cv != v {
			return nil, Corruptf(b, v.Kind, ErrValidatorMismatch, "already read as %s", cv.Kind)
		}
		return data, nil
	}
	r.mu.Unlock()

	buf := make([]byte, BlockSize)
	if err := r.readInto(b, buf, v); err != nil {
		return nil, err
	}
	r.insert(b, buf, v)
	return buf, nil
}

func (r *Reader) insert(b uint64, data []byte, v *Validator) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limit == 0 {
		return
	}
	if c, ok := r.cache[b]; ok {
		// Keep the newest contents (a block rewritten by a writer).
		c.data, c.v = data, v
		return
	}
	slot := len(r.clock)
	if slot < r.limit {
		r.clock = append(r.clock, b)
	} else {
		// Second-chance eviction. A slot whose block was dropped is free.
		for {
			old := r.cache[r.clock[r.hand]]
			if old == nil || old.slot != r.hand || !old.ref {
				break
			}
			old.ref = false
			r.hand = (r.hand + 1) % len(r.clock)
		}
		if old := r.cache[r.clock[r.hand]]; old != nil && old.slot == r.hand {
			delete(r.cache, r.clock[r.hand])
		}
		slot = r.hand
		r.clock[slot] = b
		r.hand = (r.hand + 1) % len(r.clock)
	}
	r.cache[b] = &cached{data: data, v: v, slot: slot}
}

// Drop forgets any cached copy of block b (after it was rewritten).
func (r *Reader) Drop(b uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cache, b) // its clock slot becomes free for eviction
}

// take removes block b from the cache and returns its buffer if it is
// cached under validator v: for a writer that is about to replace the
// block's only copy and can reuse the buffer instead of copying it.
func (r *Reader) take(b uint64, v *Validator) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.cache[b]
	if !ok || c.v != v {
		return nil
	}
	delete(r.cache, b)
	return c.data
}

// peek returns block b's cached contents if it is cached under v, without
// reading the device.
func (r *Reader) peek(b uint64, v *Validator) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.cache[b]; ok && c.v == v {
		return c.data
	}
	return nil
}
