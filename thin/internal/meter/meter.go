// Package meter counts the work of a long operation, reports it through a
// thin.Progress callback, and notices cancellation.
package meter

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/thinmeta/thinmeta/thin"
)

// Reports bounds the number of progress reports of a known total (plus
// one final report).
const Reports = 1000

// Meter counts units of work. Add may be called from several goroutines;
// reports are made one at a time, in increasing order of Done.
type Meter struct {
	ctx   context.Context
	done  <-chan struct{} // ctx.Done(), nil if ctx can never be done
	fn    func(thin.Progress)
	total uint64
	step  uint64 // report every step units; 0: never before Finish

	n    atomic.Uint64
	next atomic.Uint64 // the count at which to report next

	mu       sync.Mutex
	phase    string
	reported uint64
	any      bool
}

// New returns a meter of work of total units (0 if unknown) under ctx,
// reporting to fn (which may be nil). With an unknown total, every Add
// of at least every units reports; with a known one, about every
// total/Reports units.
func New(ctx context.Context, fn func(thin.Progress), phase string, total, every uint64) *Meter {
	m := &Meter{ctx: ctx, done: ctx.Done(), fn: fn, total: total, phase: phase}
	if fn != nil {
		m.step = max(every, 1)
		if total > 0 {
			m.step = (total + Reports - 1) / Reports
		}
		m.next.Store(m.step)
	}
	return m
}

// Err returns the context's error: non-nil once it is cancelled or past
// its deadline. It is cheap enough to call for every block read. A nil
// *Meter is never cancelled and reports nothing.
func (m *Meter) Err() error {
	if m == nil {
		return nil
	}
	select {
	case <-m.done:
		return m.ctx.Err()
	default:
		return nil
	}
}

// Add records k more units done and returns Err.
func (m *Meter) Add(k uint64) error {
	if m == nil {
		return nil
	}
	if err := m.Err(); err != nil {
		return err
	}
	if m.step != 0 {
		if n := m.n.Add(k); n >= m.next.Load() {
			m.report(n)
		}
	}
	return nil
}

// Phase starts a phase of the work: it is reported at once, with the
// units counted so far, and named in later reports.
func (m *Meter) Phase(s string) {
	if m == nil || m.fn == nil || m.Err() != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s == m.phase {
		return
	}
	m.phase = s
	n := m.n.Load()
	if m.total > 0 {
		n = min(n, m.total)
	}
	n = max(n, m.reported)
	m.any, m.reported = true, n
	m.fn(thin.Progress{Phase: s, Done: n, Total: m.total})
}

func (m *Meter) report(n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n < m.next.Load() || m.Err() != nil {
		return // another goroutine reported past n meanwhile, or cancelled
	}
	m.next.Store(n + m.step)
	m.send(n)
}

// send reports n (capped at a known total) if it is past the last report;
// m.mu is held.
func (m *Meter) send(n uint64) {
	if m.total > 0 {
		n = min(n, m.total)
	}
	if m.any && n <= m.reported {
		return
	}
	m.any, m.reported = true, n
	m.fn(thin.Progress{Phase: m.phase, Done: n, Total: m.total})
}

// Finish makes the final report: Done equal to Total (or to the units
// counted, if Total is unknown). Call it only when the work succeeded.
func (m *Meter) Finish() {
	if m == nil || m.fn == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.total
	if n == 0 {
		n = m.n.Load()
	}
	if m.any && n == m.reported {
		return
	}
	m.any, m.reported = true, n
	m.fn(thin.Progress{Phase: m.phase, Done: n, Total: m.total})
}
