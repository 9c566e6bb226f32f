package ls

import (
	"errors"
	"math"
	"testing"

	"pgregory.net/rapid"
)

type logRun struct{ b, n uint64 }

// runsOf returns the runs each gives, in order.
func runsOf(t *rapid.T, l *runLog) []logRun {
	var got []logRun
	if err := l.each(func(b, n uint64) error {
		got = append(got, logRun{b, n})
		return nil
	}); err != nil {
		t.Fatalf("each: %v", err)
	}
	return got
}

// TestRunLogModel writes random runs (forward and backward jumps of any
// size, lengths up to 2^40, block numbers up to 2^64-1) into logs sharing
// a small budget, written in turn as the walk's goroutines would, and
// compares what each log gives back with the runs added: a complete log
// gives exactly them in order; a log the budget could not hold says it is
// not complete. The pool never hands out more chunks than its budget, and
// chunks a lost log gave back are used again.
func TestRunLogModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		chunks := rapid.IntRange(0, 6).Draw(t, "chunks")
		pool := newLogPool(chunks * logChunkBytes)
		defer pool.release()
		nlogs := rapid.IntRange(1, 4).Draw(t, "logs")
		logs := make([]runLog, nlogs)
		want := make([][]logRun, nlogs)
		for i := range logs {
			logs[i].pool = pool
		}
		block := rapid.OneOf(
			rapid.Uint64Range(0, 1<<20),
			rapid.Uint64Range(1<<40-1000, 1<<40),
			rapid.Uint64Range(math.MaxUint64-1<<20, math.MaxUint64-1<<16),
		)
		steps := rapid.IntRange(0, 20000).Draw(t, "steps")
		for range steps {
			i := rapid.IntRange(0, nlogs-1).Draw(t, "log")
			b := block.Draw(t, "b")
			n := rapid.OneOf(rapid.Uint64Range(1, 64), rapid.Uint64Range(1, 1<<40)).Draw(t, "n")
			logs[i].add(b, n)
			want[i] = append(want[i], logRun{b, n})
		}
		handed := 0
		for i := range logs {
			if !logs[i].complete() {
				if got := runsOf(t, &logs[i]); len(got) != 0 {
					t.Fatalf("log %d is lost but gives %d runs", i, len(got))
				}
				continue
			}
			handed += len(logs[i].full)
			if logs[i].cur != nil {
				handed++
			}
			got := runsOf(t, &logs[i])
			if len(got) != len(want[i]) {
				t.Fatalf("log %d gives %d runs, %d were added", i, len(got), len(want[i]))
			}
			for j := range got {
				if got[j] != want[i][j] {
					t.Fatalf("log %d run %d: got %+v, added %+v", i, j, got[j], want[i][j])
				}
			}
		}
		if handed > chunks {
			t.Fatalf("complete logs hold %d chunks; the budget is %d", handed, chunks)
		}
		// Every chunk not held by a complete log is free for another.
		free := 0
		for pool.get() != nil {
			free++
		}
		if handed+free != chunks {
			t.Fatalf("%d chunks in complete logs and %d free; the budget is %d", handed, free, chunks)
		}
	})
}

// each stops at the first error its function returns.
func TestRunLogEachStops(t *testing.T) {
	pool := newLogPool(logChunkBytes)
	defer pool.release()
	l := runLog{pool: pool}
	for i := range uint64(10) {
		l.add(100*i, 3)
	}
	stop := errors.New("stop")
	calls := 0
	err := l.each(func(b, n uint64) error {
		if calls++; calls == 4 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 4 {
		t.Fatalf("each returned %v after %d calls; want stop after 4", err, calls)
	}
}
