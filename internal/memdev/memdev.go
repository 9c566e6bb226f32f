// Package memdev provides in-memory metadata devices for tests: a plain
// one, and one that injects crashes (stops after the k-th write, drops or
// tears writes that were not flushed) to test crash safety.
package memdev

import (
	"errors"
	"fmt"
	"sync"
)

// Dev is an in-memory transaction.Device.
type Dev struct {
	mu      sync.Mutex
	b       []byte
	Writes  int // WriteAt calls so far
	Flushes int
}

// New returns a zeroed device of size bytes.
func New(size int64) *Dev { return &Dev{b: make([]byte, size)} }

// FromBytes returns a device holding a copy of b.
func FromBytes(b []byte) *Dev { return &Dev{b: append([]byte(nil), b...)} }

// Bytes returns the device's contents (not a copy).
func (d *Dev) Bytes() []byte { return d.b }

// Size returns the device size in bytes.
func (d *Dev) Size() int64 { return int64(len(d.b)) }

// ReadAt implements io.ReaderAt.
func (d *Dev) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(d.b)) {
		return 0, fmt.Errorf("memdev: read [%d, %d) beyond %d", off, off+int64(len(p)), len(d.b))
	}
	return copy(p, d.b[off:]), nil
}

// WriteAt implements io.WriterAt.
func (d *Dev) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(d.b)) {
		return 0, fmt.Errorf("memdev: write [%d, %d) beyond %d", off, off+int64(len(p)), len(d.b))
	}
	d.Writes++
	return copy(d.b[off:], p), nil
}

// Flush implements transaction.Device.
func (d *Dev) Flush() error {
	d.mu.Lock()
	d.Flushes++
	d.mu.Unlock()
	return nil
}

// ErrCrashed is returned by a crashing device once it has crashed.
var ErrCrashed = errors.New("device crashed")

// Mode says what happens to writes that were not flushed when the device
// crashes.
type Mode int

const (
	// KeepUnflushed: every completed write survives the crash.
	KeepUnflushed Mode = iota
	// DropUnflushed: writes since the last flush are lost.
	DropUnflushed
	// TearUnflushed: writes since the last flush survive at random
	// 512-byte sector granularity (each sector old or new), as a disk
	// without a flush may leave them.
	TearUnflushed
)

// Crashing is a device that accepts writes and flushes until the k-th of
// them, which (and all later I/O) fails: a power cut. Durable returns what the media holds after
// the cut under its Mode.
type Crashing struct {
	mu      sync.Mutex
	durable []byte // as of the last flush
	current []byte // including unflushed writes
	pending []write
	k, n    int
	mode    Mode
	crashed bool
	seed    uint64
}

type write struct {
	off  int64
	data []byte
}

// NewCrashing returns a device holding a copy of image that crashes at the
// k-th write (counting from 1; k <= 0 never crashes).
func NewCrashing(image []byte, k int, mode Mode, seed uint64) *Crashing {
	return &Crashing{
		durable: append([]byte(nil), image...),
		current: append([]byte(nil), image...),
		k:       k, mode: mode, seed: seed,
	}
}

// ReadAt implements io.ReaderAt.
func (c *Crashing) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return 0, ErrCrashed
	}
	if off < 0 || off+int64(len(p)) > int64(len(c.current)) {
		return 0, fmt.Errorf("memdev: read beyond end")
	}
	return copy(p, c.current[off:]), nil
}

// WriteAt implements io.WriterAt.
func (c *Crashing) WriteAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return 0, ErrCrashed
	}
	c.n++
	if c.k > 0 && c.n >= c.k {
		c.crashed = true
		return 0, ErrCrashed
	}
	if off < 0 || off+int64(len(p)) > int64(len(c.current)) {
		return 0, fmt.Errorf("memdev: write beyond end")
	}
	copy(c.current[off:], p)
	c.pending = append(c.pending, write{off, append([]byte(nil), p...)})
	return len(p), nil
}

// Flush implements transaction.Device.
func (c *Crashing) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return ErrCrashed
	}
	// A crash can also strike at a flush, before it completes.
	c.n++
	if c.k > 0 && c.n >= c.k {
		c.crashed = true
		return ErrCrashed
	}
	for _, w := range c.pending {
		copy(c.durable[w.off:], w.data)
	}
	c.pending = c.pending[:0]
	return nil
}

// Writes returns the number of writes and flushes attempted so far.
func (c *Crashing) Writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Crashed reports whether the crash point was reached.
func (c *Crashing) Crashed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crashed
}

// Size returns the device size in bytes.
func (c *Crashing) Size() int64 { return int64(len(c.current)) }

// Durable returns the media contents after the crash, according to the
// device's mode.
func (c *Crashing) Durable() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]byte(nil), c.durable...)
	x := c.seed | 1
	for _, w := range c.pending {
		switch c.mode {
		case KeepUnflushed:
			copy(out[w.off:], w.data)
		case DropUnflushed:
		case TearUnflushed:
			for s := 0; s < len(w.data); s += 512 {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				if x&1 == 1 {
					copy(out[w.off+int64(s):], w.data[s:min(s+512, len(w.data))])
				}
			}
		}
	}
	return out
}
