package refcount

import (
	"runtime"
	"testing"

	"pgregory.net/rapid"
)

// Counts agree with a map of counts through random increments of single
// blocks and runs and decrements, concentrated on a few blocks (so that
// counts carry into the high plane and past Saturated, and borrow back)
// and at word, group and edge boundaries: Get equals the map, Word gives
// the planes of 32 blocks (Saturated for a count above it), and a group
// has a high plane exactly when one of its counts has reached 4; only
// counts above Saturated are in the map.
func TestCountsModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.Uint64Range(1, 4*32*GroupWords+100).Draw(t, "n")
		c := New(n)
		defer c.Free()
		model := map[uint64]uint32{}
		reached4 := map[uint64]bool{} // groups
		edge := func(x uint64) uint64 { return min(x, n-1) }
		block := rapid.OneOf(
			rapid.Uint64Range(0, n-1),
			rapid.Uint64Range(0, min(n-1, 70)),
			rapid.SampledFrom([]uint64{0, edge(31), edge(32), edge(32*GroupWords - 1), edge(32 * GroupWords),
				edge(32*GroupWords + 5), n - 1}),
		)
		note := func(b uint64) {
			if model[b] >= 4 {
				reached4[b/(32*GroupWords)] = true
			}
		}
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			b := block.Draw(t, "block")
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0:
				for range rapid.IntRange(1, 20).Draw(t, "times") {
					c.Inc(b)
					model[b]++
					note(b)
				}
			case 1:
				k := rapid.Uint64Range(1, min(n-b, 200)).Draw(t, "length")
				for range rapid.IntRange(1, 6).Draw(t, "times") {
					c.IncRun(b, k)
					for j := range k {
						model[b+j]++
						note(b + j)
					}
				}
			case 2:
				for range rapid.IntRange(1, 20).Draw(t, "times") {
					if model[b] == 0 {
						break
					}
					c.Dec(b)
					model[b]--
				}
			}
		}
		for b := range n {
			if got, want := c.Get(b), model[b]; got != want {
				t.Fatalf("block %d: count %d, want %d", b, got, want)
			}
			if _, got := c.highWord(b / 32); got != reached4[b/(32*GroupWords)] {
				t.Fatalf("block %d: group has a high plane %v, a count of 4 or more %v", b, got, reached4[b/(32*GroupWords)])
			}
		}
		for i := uint64(0); 32*i < n+64; i++ {
			low, high := c.Word(i)
			for j := range uint64(32) {
				m := min(model[32*i+j], Saturated)
				if e := uint32(low>>(2*j))&3 | uint32(high>>(2*j))&3<<2; e != m {
					t.Fatalf("word %d entry %d: planes give %d, count %d", i, j, e, model[32*i+j])
				}
			}
		}
		if c.Get(n) != 0 {
			t.Fatal("a block beyond n has a count")
		}
		for b := range c.over {
			if model[b] <= Saturated {
				t.Fatalf("block %d with count %d kept in the map", b, model[b])
			}
		}
	})
}

// IncRun's word-at-a-time step agrees with a slice of counts for every
// start and length within three words and counts around 3 (where it
// carries) and at Saturated.
func TestIncRunWordStep(t *testing.T) {
	for _, base := range []uint32{0, 2, 3, 14, 15, 16} {
		for b := range uint64(96) {
			for k := uint64(1); b+k <= 96; k++ {
				c := New(96)
				want := make([]uint32, 96)
				for i := range uint64(96) {
					v := base + uint32(i%3) // neighbours at different counts
					for range v {
						c.Inc(i)
					}
					want[i] = v
				}
				c.IncRun(b, k)
				for j := b; j < b+k; j++ {
					want[j]++
				}
				for i := range uint64(96) {
					if got := c.Get(i); got != want[i] {
						t.Fatalf("base %d, run %d+%d: block %d count %d, want %d", base, b, k, i, got, want[i])
					}
				}
				c.Free()
			}
		}
	}
}

// The planes are outside the Go heap (on Linux): counting in 256 groups
// and carrying each into its high plane allocates next to nothing in the
// heap. Free twice, and a Counts of no blocks, are harmless.
func TestPlanesOffHeap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("planes come from the heap without mmap")
	}
	const groups = 256
	c := New(groups * 32 * GroupWords)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for g := range uint64(groups) {
		for range 4 {
			c.Inc(g * 32 * GroupWords)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4096 {
		t.Errorf("heap allocations grew by %d bytes for %d groups", grew, groups)
	}
	for g := range uint64(groups) {
		if got := c.Get(g * 32 * GroupWords); got != 4 {
			t.Fatalf("group %d: count %d, want 4", g, got)
		}
	}
	c.Free()
	c.Free()
	z := New(0)
	if z.Get(0) != 0 {
		t.Fatal("a Counts of no blocks has a count")
	}
	z.Free()
}
