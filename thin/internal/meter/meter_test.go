package meter

import (
	"context"
	"testing"

	"github.com/thinmeta/thinmeta/thin"
)

// The cost of counting a unit of work: what check pays per block read,
// dump and ls per leaf. With a cancellable context and a progress
// callback, as the CLI runs them.
func BenchmarkAdd(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A thousand reports over 10^12 units: as good as none.
	m := New(ctx, func(thin.Progress) {}, "x", 1e12, 0)
	for b.Loop() {
		if err := m.Add(1); err != nil {
			b.Fatal(err)
		}
	}
}

// With context.Background and no callback, as a library caller that
// wants neither.
func BenchmarkAddBackground(b *testing.B) {
	m := New(context.Background(), nil, "x", 0, 0)
	for b.Loop() {
		if err := m.Add(1); err != nil {
			b.Fatal(err)
		}
	}
}

// Reports are bounded, monotonic and end at the total, whatever the
// steps; nothing is reported once the context is done.
func TestReports(t *testing.T) {
	for _, total := range []uint64{1, 7, 999, 1000, 1001, 123457} {
		var got []thin.Progress
		m := New(context.Background(), func(p thin.Progress) { got = append(got, p) }, "x", total, 0)
		for done := uint64(0); done < total; {
			k := min(total-done, done%5+1)
			m.Add(k)
			done += k
		}
		m.Finish()
		if len(got) > Reports+1 {
			t.Errorf("total %d: %d reports", total, len(got))
		}
		for i := range got {
			if got[i].Done > total || i > 0 && got[i].Done <= got[i-1].Done {
				t.Fatalf("total %d: report %d is %+v after %+v", total, i, got[i], got[max(i-1, 0)])
			}
		}
		if last := got[len(got)-1]; last.Done != total || last.Total != total {
			t.Errorf("total %d: last report %+v", total, last)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	m := New(ctx, func(thin.Progress) { n++ }, "x", 10, 0)
	m.Add(1)
	cancel()
	if err := m.Add(1); err != context.Canceled {
		t.Errorf("Add after cancel: %v", err)
	}
	if n != 1 {
		t.Errorf("%d reports, want 1 (none after the cancellation)", n)
	}
}
