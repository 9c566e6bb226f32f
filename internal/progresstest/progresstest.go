// Package progresstest checks the progress reports and the cancellation
// of the long operations (check, dump, ls, restore) against what
// thin.Progress promises.
package progresstest

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/thinmeta/thinmeta/thin"
)

// MaxReports is the most reports an operation of known total may make:
// about a thousand, one at the end, and a few for rounding.
const MaxReports = 1000 + 3

// Recorder keeps the reports made to its Func.
type Recorder struct {
	t       testing.TB
	mu      sync.Mutex
	reports []thin.Progress
	inside  atomic.Bool
	// OnReport, if not nil, is called with each report (inside the
	// callback, so an operation can be cancelled at a chosen point).
	OnReport func(thin.Progress)
}

// NewRecorder returns a Recorder that fails t on concurrent calls.
func NewRecorder(t testing.TB) *Recorder { return &Recorder{t: t} }

// Func is the callback to pass as an operation's Progress option.
func (r *Recorder) Func() func(thin.Progress) {
	return func(p thin.Progress) {
		if !r.inside.CompareAndSwap(false, true) {
			r.t.Error("progress reported concurrently")
		}
		defer r.inside.Store(false)
		r.mu.Lock()
		r.reports = append(r.reports, p)
		r.mu.Unlock()
		if r.OnReport != nil {
			r.OnReport(p)
		}
	}
}

// Reports returns the reports made so far.
func (r *Recorder) Reports() []thin.Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]thin.Progress(nil), r.reports...)
}

// CheckComplete fails t unless the reports of a successful operation are
// as promised: a bounded number, Done never decreasing nor above Total,
// the last with Done equal to Total, and Total equal to want.
func (r *Recorder) CheckComplete(t testing.TB, want uint64) {
	t.Helper()
	rs := r.Reports()
	if len(rs) == 0 {
		t.Fatal("no progress reported")
	}
	if len(rs) > MaxReports {
		t.Errorf("%d progress reports, at most %d expected", len(rs), MaxReports)
	}
	for i, p := range rs {
		if p.Total != want {
			t.Fatalf("report %d: Total %d, want %d", i, p.Total, want)
		}
		if p.Total > 0 && p.Done > p.Total {
			t.Fatalf("report %d: Done %d above Total %d", i, p.Done, p.Total)
		}
		if i > 0 && p.Done < rs[i-1].Done {
			t.Fatalf("report %d: Done went down from %d to %d", i, rs[i-1].Done, p.Done)
		}
	}
	if last := rs[len(rs)-1]; last.Done != last.Total {
		t.Errorf("last report %+v: Done is not Total", last)
	}
}

// CancelWhen returns a context and sets r to cancel it at the first
// report for which when is true, calling also (if not nil) just before.
// Reports after the cancellation fail t.
func (r *Recorder) CancelWhen(t testing.TB, when func(thin.Progress) bool, also func()) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var done atomic.Bool
	r.OnReport = func(p thin.Progress) {
		if done.Load() {
			t.Errorf("progress reported after the cancellation: %+v", p)
			return
		}
		if when(p) {
			done.Store(true)
			if also != nil {
				also()
			}
			cancel()
		}
	}
	return ctx
}

// ReaderAt counts the reads made through it after Arm. If OnRead is set,
// it is called with the number of each read (from 1) before it is made.
type ReaderAt struct {
	R      io.ReaderAt
	OnRead func(n int64)
	armed  atomic.Bool
	after  atomic.Int64
	reads  atomic.Int64
}

// ReadAt implements io.ReaderAt.
func (c *ReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if n := c.reads.Add(1); c.OnRead != nil {
		c.OnRead(n)
	}
	if c.armed.Load() {
		c.after.Add(1)
	}
	return c.R.ReadAt(b, off)
}

// Reads returns the number of reads made.
func (c *ReaderAt) Reads() int64 { return c.reads.Load() }

// Arm starts counting.
func (c *ReaderAt) Arm() { c.armed.Store(true) }

// After returns the number of reads since Arm.
func (c *ReaderAt) After() int64 { return c.after.Load() }
