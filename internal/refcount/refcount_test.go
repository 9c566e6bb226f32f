package refcount

import (
	"runtime"
	"testing"

	"pgregory.net/rapid"
)

// Counts agree with a map of counts through random increments of single
// blocks and runs and decrements, concentrated on a few blocks (so that
// counts carry into the upper planes and past Saturated, and borrow back)
// and at word, group and edge boundaries: Get equals the map, Word gives
// the bitmap entries of 32 blocks (Saturated for a count above it), and a
// group has a plane of bit 1 exactly when one of its counts has reached 2
// and of bits 2 and 3 when one has reached 4; only counts above Saturated
// are in the map.
func TestCountsModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.Uint64Range(1, 4*GroupBlocks+100).Draw(t, "n")
		c := New(n)
		defer c.Free()
		model := map[uint64]uint32{}
		reached2 := map[uint64]bool{} // groups
		reached4 := map[uint64]bool{}
		edge := func(x uint64) uint64 { return min(x, n-1) }
		block := rapid.OneOf(
			rapid.Uint64Range(0, n-1),
			rapid.Uint64Range(0, min(n-1, 70)),
			rapid.SampledFrom([]uint64{0, edge(31), edge(32), edge(63), edge(64), edge(GroupBlocks - 1),
				edge(GroupBlocks), edge(GroupBlocks + 5), n - 1}),
		)
		note := func(b uint64) {
			if model[b] >= 2 {
				reached2[b/GroupBlocks] = true
			}
			if model[b] >= 4 {
				reached4[b/GroupBlocks] = true
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
			g := b / GroupBlocks
			if _, _, mid, high := c.upper(b / 64); mid != reached2[g] || high != reached4[g] {
				t.Fatalf("block %d: group has planes of bit 1 %v, of bits 2 and 3 %v; a count of 2 or more %v, of 4 or more %v",
					b, mid, high, reached2[g], reached4[g])
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
// start within three words, lengths 1 to 8 and then growing by an eighth
// (every word boundary is crossed), and counts around each carry (1, 3, 7)
// and at Saturated.
func TestIncRunWordStep(t *testing.T) {
	const n = 192
	for _, base := range []uint32{0, 1, 2, 3, 6, 7, 14, 15, 16} {
		for b := range uint64(n) {
			for k := uint64(1); b+k <= n; k += 1 + k/8 {
				c := New(n)
				want := make([]uint32, n)
				for i := range uint64(n) {
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
				for i := range uint64(n) {
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
// and carrying each into its upper planes allocates next to nothing in the
// heap. Free twice, and a Counts of no blocks, are harmless.
func TestPlanesOffHeap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("planes come from the heap without mmap")
	}
	const groups = 256
	c := New(groups * GroupBlocks)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for g := range uint64(groups) {
		for range 4 {
			c.Inc(g * GroupBlocks)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4096 {
		t.Errorf("heap allocations grew by %d bytes for %d groups", grew, groups)
	}
	for g := range uint64(groups) {
		if got := c.Get(g * GroupBlocks); got != 4 {
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
