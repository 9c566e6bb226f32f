// Package crashtest simulates power cuts at every write and flush of a
// workload, fast enough for tens of thousands of cut points in CI.
//
// A deterministic workload is run once on a Recorder, an in-memory device
// that logs every write and flush in order and the commits the workload
// declares. The media after a cut at the k-th operation is then a function
// of the log alone: the writes before the last flush preceding k are
// durable, those after it are not, and what becomes of these depends on the
// disk (kept, lost, torn into sectors, or some lost while later ones
// survive). Since the workload is deterministic, its I/O up to the cut is
// the same whether or not the device fails there, so nothing needs to be
// re-run: Log.Cuts walks the cut points in order, keeping the durable image
// up to date and presenting each cut's media as an overlay of the unflushed
// writes over it, without copying the image.
//
// After a cut inside a commit the media must hold that commit or the one
// before; after a cut between commits, the last one. A test verifies each
// Cut's media against the states it declared (Cut.Committed and
// Cut.Inflight). TestReplayMatchesCrashingDevice holds the shortcut to a
// device that really fails at the k-th operation.
package crashtest

import (
	"fmt"
	"iter"
	"sync"
)

// Mode says what a power cut does to the writes since the last flush.
type Mode int

const (
	// Keep: every completed write survives.
	Keep Mode = iota
	// Drop: every write since the last flush is lost.
	Drop
	// Tear: each 512-byte sector of those writes is old or new at random,
	// as a disk without a flush may leave them.
	Tear
	// Reorder: each of those writes survives whole or is lost whole at
	// random, so a later write may survive an earlier one, as a write
	// cache may order them.
	Reorder
)

// Modes lists every mode.
var Modes = []Mode{Keep, Drop, Tear, Reorder}

func (m Mode) String() string {
	switch m {
	case Keep:
		return "keep"
	case Drop:
		return "drop"
	case Tear:
		return "tear"
	case Reorder:
		return "reorder"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

type op struct {
	flush bool
	off   int64
	data  []byte
}

// commit is a commit a workload declared: operations first..last (1-based,
// inclusive) and the state it makes durable.
type commit struct {
	first, last int
	state       any
}

// Recorder is an in-memory transaction.Device that logs every write and
// flush. It is safe for concurrent use, but the workload must issue its
// writes in a deterministic order.
type Recorder struct {
	mu      sync.Mutex
	cur     []byte
	base    []byte
	ops     []op
	commits []commit
	initial any
}

// NewRecorder returns a recorder holding a copy of image, whose state (as
// the workload models it) is initial.
func NewRecorder(image []byte, initial any) *Recorder {
	return &Recorder{cur: append([]byte(nil), image...), base: append([]byte(nil), image...), initial: initial}
}

// Size returns the device size in bytes.
func (r *Recorder) Size() int64 { return int64(len(r.cur)) }

// ReadAt implements io.ReaderAt.
func (r *Recorder) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off < 0 || off > int64(len(r.cur)) || int64(len(p)) > int64(len(r.cur))-off {
		return 0, fmt.Errorf("crashtest: read [%d, +%d) beyond %d", off, len(p), len(r.cur))
	}
	return copy(p, r.cur[off:]), nil
}

// WriteAt implements io.WriterAt.
func (r *Recorder) WriteAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off < 0 || off > int64(len(r.cur)) || int64(len(p)) > int64(len(r.cur))-off {
		return 0, fmt.Errorf("crashtest: write [%d, +%d) beyond %d", off, len(p), len(r.cur))
	}
	copy(r.cur[off:], p)
	r.ops = append(r.ops, op{off: off, data: append([]byte(nil), p...)})
	return len(p), nil
}

// Flush implements transaction.Device.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op{flush: true})
	return nil
}

// Ops returns the number of writes and flushes so far.
func (r *Recorder) Ops() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}

// Bytes returns the device's current contents (not a copy).
func (r *Recorder) Bytes() []byte { return r.cur }

// Commit runs fn, which makes state durable: a cut during it must leave
// state or the state of the commit before. fn's error is returned (a
// failed commit is not recorded).
func (r *Recorder) Commit(state any, fn func() error) error {
	first := r.Ops() + 1
	if err := fn(); err != nil {
		return err
	}
	if last := r.Ops(); last >= first {
		r.mu.Lock()
		r.commits = append(r.commits, commit{first: first, last: last, state: state})
		r.mu.Unlock()
	}
	return nil
}

// Log returns what was recorded. The recorder must not be used after.
func (r *Recorder) Log() *Log {
	return &Log{base: r.base, ops: r.ops, commits: r.commits, initial: r.initial}
}

// Log is a recorded workload.
type Log struct {
	base    []byte
	ops     []op
	commits []commit
	initial any
}

// Ops returns the number of operations recorded: the cut points.
func (l *Log) Ops() int { return len(l.ops) }

// Commits returns the number of commits recorded.
func (l *Log) Commits() int { return len(l.commits) }

// Final returns the media after the whole workload.
func (l *Log) Final() []byte {
	out := append([]byte(nil), l.base...)
	for _, o := range l.ops {
		if !o.flush {
			copy(out[o.off:], o.data)
		}
	}
	return out
}

// FinalState returns the state of the last commit (the initial one if
// there was none).
func (l *Log) FinalState() any {
	if len(l.commits) == 0 {
		return l.initial
	}
	return l.commits[len(l.commits)-1].state
}

// Cut is the media after one power cut. Its contents are valid only
// during the callback of Log.Cuts that gave it.
type Cut struct {
	K    int  // the operation that did not happen (1-based)
	Mode Mode // what became of the unflushed writes
	Seed uint64
	// Flush reports that the operation cut was a flush.
	Flush bool
	// Committed is the state of the last commit that returned before the
	// cut; Inflight, if HasInflight, that of the commit the cut fell in.
	Committed   any
	Inflight    any
	HasInflight bool

	durable []byte
	overlay map[int64][]byte // 4 KiB blocks where the cut's media differs from durable
}

const blockSize = 4096

// Size returns the media size in bytes.
func (c *Cut) Size() int64 { return int64(len(c.durable)) }

// ReadAt implements io.ReaderAt over the media.
func (c *Cut) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(c.durable)) || int64(len(p)) > int64(len(c.durable))-off {
		return 0, fmt.Errorf("crashtest: read [%d, +%d) beyond %d", off, len(p), len(c.durable))
	}
	copy(p, c.durable[off:])
	if len(c.overlay) == 0 {
		return len(p), nil
	}
	end := off + int64(len(p))
	for b := off / blockSize; b*blockSize < end; b++ {
		blk, ok := c.overlay[b]
		if !ok {
			continue
		}
		lo, hi := max(b*blockSize, off), min((b+1)*blockSize, end)
		copy(p[lo-off:hi-off], blk[lo-b*blockSize:hi-b*blockSize])
	}
	return len(p), nil
}

// Bytes returns a copy of the media.
func (c *Cut) Bytes() []byte {
	out := append([]byte(nil), c.durable...)
	for b, blk := range c.overlay {
		copy(out[b*blockSize:], blk)
	}
	return out
}

// Different reports whether the media differs from what was durable at
// the last flush (some unflushed write survived).
func (c *Cut) Different() bool { return len(c.overlay) > 0 }

// Cuts yields a Cut for every operation of the log and every mode, in
// operation order; Tear and Reorder are drawn seedsPerCut times with
// different seeds (at least once). The cut's contents are valid until the
// next iteration.
func (l *Log) Cuts(modes []Mode, seedsPerCut int) iter.Seq[*Cut] {
	return func(yield func(*Cut) bool) {
		durable := append([]byte(nil), l.base...)
		var pending []op
		ci := 0 // first commit not known to have returned
		committed := l.initial
		for k := 1; k <= len(l.ops); k++ {
			if k > 1 {
				prev := l.ops[k-2]
				if prev.flush {
					for _, w := range pending {
						copy(durable[w.off:], w.data)
					}
					pending = pending[:0]
				} else {
					pending = append(pending, prev)
				}
			}
			for ci < len(l.commits) && l.commits[ci].last < k {
				committed = l.commits[ci].state
				ci++
			}
			c := &Cut{K: k, Flush: l.ops[k-1].flush, Committed: committed, durable: durable}
			if ci < len(l.commits) && l.commits[ci].first <= k {
				c.Inflight, c.HasInflight = l.commits[ci].state, true
			}
			for _, m := range modes {
				n := 1
				if m == Tear || m == Reorder {
					n = max(seedsPerCut, 1)
				}
				for s := range n {
					c.Mode, c.Seed = m, uint64(k)<<8|uint64(s)<<4|uint64(m)
					c.overlay = overlay(durable, pending, m, c.Seed)
					if !yield(c) {
						return
					}
				}
			}
		}
	}
}

// overlay returns the blocks where the media after a cut differs from
// durable, given the unflushed writes and the mode.
func overlay(durable []byte, pending []op, m Mode, seed uint64) map[int64][]byte {
	if m == Drop || len(pending) == 0 {
		return nil
	}
	x := seed*0x9E3779B97F4A7C15 | 1
	next := func() bool {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x&1 == 1
	}
	out := make(map[int64][]byte)
	put := func(off int64, data []byte) {
		for len(data) > 0 {
			b := off / blockSize
			blk, ok := out[b]
			if !ok {
				blk = append([]byte(nil), durable[b*blockSize:(b+1)*blockSize]...)
				out[b] = blk
			}
			n := copy(blk[off-b*blockSize:], data)
			off += int64(n)
			data = data[n:]
		}
	}
	for _, w := range pending {
		switch m {
		case Keep:
			put(w.off, w.data)
		case Reorder:
			if next() {
				put(w.off, w.data)
			}
		case Tear:
			for s := 0; s < len(w.data); s += 512 {
				if next() {
					put(w.off+int64(s), w.data[s:min(s+512, len(w.data))])
				}
			}
		}
	}
	return out
}
