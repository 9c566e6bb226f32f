package ls

import (
	"encoding/binary"
	"sync"

	"github.com/thinmeta/thinmeta/internal/offheap"
)

// Run logs: the counting walk writes down, per device, the runs of
// consecutive data blocks it counts, so that the exclusive count of that
// device needs no second walk of its tree: it goes through the log and
// asks the counts how many of each run's blocks are counted once. The
// exclusive walk's reads, checksums and key checks (a third of a
// listing's CPU on the bench pool, where the leaf summaries settled only
// two leaves in five) are then not done at all. A run whose blocks had
// all been counted before is not written down: they are counted many
// whatever comes later, so it holds no exclusive block.
//
// A run is two unsigned varints: the zigzag-coded distance from the end
// of the previous run to its first block, and its length less one: 3.3
// bytes a run on the bench pool, whose runs are 21 blocks long on average
// and whose logs take 0.5 MB (1.7 MB with every run written down). The
// logs of one listing share a budget of chunks
// (maxLogBytes); a device whose log does not fit gives its chunks back
// and is walked again, with its leaf summaries, as before. So a listing's
// memory stays bounded whatever the size of the pool.

// logChunkBytes is the size of the chunks logs are written in.
const logChunkBytes = 8 << 10

// maxLogBytes bounds the run logs one listing keeps.
var maxLogBytes = 2 << 20 // a variable for the tests

// runSpace is the most bytes one run takes in a log.
const runSpace = 2 * binary.MaxVarintLen64

// A logPool hands out the chunks of one listing's logs, from memory
// outside the Go heap. It is safe for concurrent use.
type logPool struct {
	mu   sync.Mutex
	slab *offheap.Slab
	free [][]byte // chunks given back
	left int      // chunks the budget still allows the slab to hand out
}

func newLogPool(budget int) *logPool { return &logPool{left: budget / logChunkBytes} }

// get returns an empty chunk, or nil if the budget is spent.
func (lp *logPool) get() []byte {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if n := len(lp.free); n > 0 {
		c := lp.free[n-1]
		lp.free = lp.free[:n-1]
		return c[:0]
	}
	if lp.left <= 0 {
		return nil
	}
	lp.left--
	if lp.slab == nil {
		lp.slab = offheap.NewSlab(logChunkBytes, 128)
	}
	return lp.slab.Get()[:0]
}

// put gives chunks back for other logs.
func (lp *logPool) put(cs [][]byte) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	lp.free = append(lp.free, cs...)
}

// release frees every chunk; no log of the pool may be used after it.
func (lp *logPool) release() {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.slab != nil {
		lp.slab.Release()
	}
	lp.slab, lp.free, lp.left = nil, nil, 0
}

// A runLog is one device's runs, in the order the counting walk found
// them. One goroutine writes it; the zero runLog with a pool set is empty.
type runLog struct {
	pool *logPool
	full [][]byte // chunks written before cur
	cur  []byte   // the chunk being written (nil: none yet, or lost)
	prev uint64   // one past the last block of the previous run
	// mapped is the mappings the counting walk found, in runs logged or
	// not: a run whose blocks had all been counted before is left out, as
	// none of them can be counted once at the end.
	mapped uint64
	lost   bool // the budget ran out: the log is incomplete and empty
}

// add writes down the run of the n blocks from b on (n >= 1).
func (l *runLog) add(b, n uint64) {
	if cap(l.cur)-len(l.cur) < runSpace && !l.grow() {
		return
	}
	d := int64(b - l.prev)
	l.cur = binary.AppendUvarint(binary.AppendUvarint(l.cur, uint64(d<<1)^uint64(d>>63)), n-1)
	l.prev = b + n
}

// grow starts a new chunk, and reports whether it could.
func (l *runLog) grow() bool {
	if l.lost {
		return false
	}
	c := l.pool.get()
	if c == nil {
		// The budget is spent: give the chunks back for other logs.
		if l.cur != nil {
			l.full = append(l.full, l.cur)
		}
		l.pool.put(l.full)
		l.full, l.cur, l.lost = nil, nil, true
		return false
	}
	if l.cur != nil {
		l.full = append(l.full, l.cur)
	}
	l.cur = c
	return true
}

// complete reports whether the log holds every run added to it.
func (l *runLog) complete() bool { return !l.lost }

// each calls f with every run of the log in order, and stops at the first
// error f returns.
func (l *runLog) each(f func(b, n uint64) error) error {
	var prev uint64
	for i := 0; i <= len(l.full); i++ {
		c := l.cur
		if i < len(l.full) {
			c = l.full[i]
		}
		for len(c) > 0 {
			z, k := binary.Uvarint(c)
			m, k2 := binary.Uvarint(c[k:])
			c = c[k+k2:]
			b := prev + uint64(int64(z>>1)^-int64(z&1))
			prev = b + m + 1
			if err := f(b, m+1); err != nil {
				return err
			}
		}
	}
	return nil
}
