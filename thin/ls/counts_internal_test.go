package ls

import (
	"math/rand/v2"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

// TestCountsRunsConcurrent counts random runs of blocks (crossing word and
// page boundaries, some at absurd block numbers beyond the directory) on
// several goroutines into one set and compares every block's count, and
// the runs' exclusive totals, with a map counted one block at a time.
func TestCountsRunsConcurrent(t *testing.T) {
	type run struct{ b, n uint64 }
	r := rand.New(rand.NewPCG(1, 2))
	bases := []uint64{0, pageBlocks - 70, 3*pageBlocks + 1, denseMaxPage*pageBlocks - 100, 1<<40 - 200}
	const workers = 4
	runs := make([][]run, workers)
	model := map[uint64]int{}
	for w := range runs {
		for range 2000 {
			b := bases[r.IntN(len(bases))] + r.Uint64N(300)
			n := 1 + r.Uint64N(150)
			runs[w] = append(runs[w], run{b, n})
			for i := range n {
				model[b+i]++
			}
		}
	}
	c := &counts{}
	defer c.release()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := cursor{c: c}
			for _, x := range runs[w] {
				k.inc(x.b, x.n)
			}
		}()
	}
	wg.Wait()
	k := cursor{c: c}
	for b, n := range model {
		if got := k.once(b, 1); got != uint64(min(n, 2)%2) {
			t.Fatalf("block %d counted %d times: once gives %d", b, n, got)
		}
		pg := c.lookup(b >> pageShift)
		w, m := (b>>6)&(pageWords-1), uint64(1)<<(b&63)
		if pg.seen[w]&m == 0 || (pg.multi[w]&m != 0) != (n > 1) {
			t.Fatalf("block %d counted %d times: seen %v multi %v", b, n, pg.seen[w]&m != 0, pg.multi[w]&m != 0)
		}
	}
	for _, rs := range runs {
		for _, x := range rs {
			var want uint64
			for i := range x.n {
				if model[x.b+i] == 1 {
					want++
				}
			}
			if got := k.once(x.b, x.n); got != want {
				t.Fatalf("run %d+%d: once %d, want %d", x.b, x.n, got, want)
			}
		}
	}
	if got := k.once(5*pageBlocks, 200); got != 0 {
		t.Fatalf("blocks never counted: once %d", got)
	}
}

// inc reports a run all seen exactly when every block of it had been
// counted before (on one goroutine, against a map counted a block at a
// time): only then may the counting walk leave the run out of its log.
func TestIncAllSeen(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := &counts{}
		defer c.release()
		k := cursor{c: c}
		model := map[uint64]bool{}
		base := rapid.SampledFrom([]uint64{0, pageBlocks - 100, denseMaxPage*pageBlocks - 50}).Draw(t, "base")
		for range rapid.IntRange(1, 200).Draw(t, "runs") {
			b := base + rapid.Uint64Range(0, 400).Draw(t, "b")
			n := rapid.Uint64Range(1, 150).Draw(t, "n")
			want := true
			for i := range n {
				want = want && model[b+i]
				model[b+i] = true
			}
			if got := k.inc(b, n); got != want {
				t.Fatalf("inc(%d, %d) reports all seen %v; the model says %v", b, n, got, want)
			}
		}
	})
}
