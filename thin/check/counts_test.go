package check

import (
	"runtime"
	"testing"

	"pgregory.net/rapid"
)

// Counts above the planes' range go to the map.
func TestCountsSaturate(t *testing.T) {
	c := newCounts(100000)
	defer c.release()
	for i := range 40 {
		c.inc(70000)
		if got := c.get(70000); got != uint32(i+1) {
			t.Fatalf("after %d incs: %d", i+1, got)
		}
	}
	c.inc(70001)
	if c.get(70001) != 1 || c.get(69999) != 0 {
		t.Fatal("neighbours disturbed")
	}
	if c.get(200000) != 0 {
		t.Fatal("a block beyond n has a count")
	}
}

// TestCountsModel compares counts with a map after random increments,
// concentrated on a few blocks (so that counts reach the high plane and
// saturate) and at chunk and group boundaries: get equals the map, and
// word gives the two planes of 32 blocks, which hold the counts (15 for a
// saturated one); a group has a high plane only when it needs one.
func TestCountsModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.Uint64Range(1, 5<<chunkShift).Draw(t, "n")
		c := newCounts(n)
		defer c.release()
		model := map[uint64]uint32{}
		edge := func(x uint64) uint64 { return min(x, n-1) }
		block := rapid.OneOf(
			rapid.Uint64Range(0, n-1),
			rapid.Uint64Range(0, min(n-1, 70)),
			rapid.SampledFrom([]uint64{0, edge(1<<groupShift - 1), edge(1 << groupShift), edge(1<<chunkShift - 1),
				edge(1 << chunkShift), edge(1<<chunkShift + 1<<groupShift), n - 1}),
		)
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			b := block.Draw(t, "block")
			for range rapid.IntRange(1, 20).Draw(t, "times") {
				c.inc(b)
				model[b]++
			}
		}
		for b, want := range model {
			if got := c.get(b); got != want {
				t.Fatalf("block %d: count %d, want %d", b, got, want)
			}
			for _, nb := range []uint64{b - 1, b + 1} {
				if _, ok := model[nb]; !ok && nb < n && c.get(nb) != 0 {
					t.Fatalf("block %d, never counted, has count %d", nb, c.get(nb))
				}
			}
			// Memory: a group has a high plane only once one of its
			// counts has reached 4.
			g := b >> groupShift
			reached := false
			for o := g << groupShift; o < (g+1)<<groupShift; o++ {
				reached = reached || model[o] >= 4
			}
			if has := c.high(b) != nil; has != reached {
				t.Fatalf("group of block %d: high plane allocated %v, a count of 4 or more %v", b, has, reached)
			}
			i := b / 32
			low, high := c.word(i)
			for j := range uint64(32) {
				m := min(model[32*i+j], saturated)
				if e := uint32(low>>(2*j))&3 | uint32(high>>(2*j))&3<<2; e != m {
					t.Fatalf("word %d entry %d: planes give %d, count %d", i, j, e, model[32*i+j])
				}
			}
		}
		if low, high := c.word((n + 1<<chunkShift) / 32); low != 0 || high != 0 {
			t.Fatal("a word beyond n has counts")
		}
	})
}

// fromDisk swaps the two bits of every entry: on disk the lower bit of a
// pair is the count's high bit.
func TestFromDisk(t *testing.T) {
	for j := range 32 {
		for v := range uint64(4) {
			disk := (v>>1 | (v&1)<<1) << (2 * j)
			if got := fromDisk(disk); got != v<<(2*j) {
				t.Fatalf("entry %d value %d: fromDisk(%x) = %x", j, v, disk, got)
			}
			if hasThree(v<<(2*j)) != (v == 3) {
				t.Fatalf("entry %d value %d: hasThree wrong", j, v)
			}
		}
	}
}

// incRun gives the counts that inc of each block of the run gives: runs
// of random length from random and edge blocks (within a word, across
// words, groups and chunks), repeated and overlapping so that counts pass
// 3 (the carry into the high plane) and 15 (the map) inside a run,
// against a map of the counts.
func TestCountsIncRunModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.Uint64Range(1, 3<<chunkShift).Draw(t, "n")
		c := newCounts(n)
		defer c.release()
		model := map[uint64]uint32{}
		edge := func(x uint64) uint64 { return min(x, n-1) }
		start := rapid.OneOf(
			rapid.Uint64Range(0, n-1),
			rapid.Uint64Range(0, min(n-1, 100)),
			rapid.SampledFrom([]uint64{0, edge(31), edge(33), edge(1<<groupShift - 5), edge(1<<chunkShift - 40), n - 1}),
		)
		for range rapid.IntRange(1, 40).Draw(t, "ops") {
			b := start.Draw(t, "start")
			k := rapid.Uint64Range(1, min(n-b, 200)).Draw(t, "length")
			for range rapid.IntRange(1, 6).Draw(t, "times") {
				c.incRun(b, k)
				for j := range k {
					model[b+j]++
				}
			}
		}
		for b := range n {
			if got, want := c.get(b), model[b]; got != want {
				t.Fatalf("block %d: count %d, want %d", b, got, want)
			}
		}
	})
}

// The planes are outside the Go heap (on Linux): counting one block in
// each of 256 chunks (2 MiB of low planes) and carrying each into its high
// plane grows the heap by the chunks' headers only.
func TestCountsPlanesOffHeap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("planes come from the heap without mmap")
	}
	const nc = 256
	c := newCounts(nc << chunkShift)
	defer c.release()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range uint64(nc) {
		for range 4 {
			c.inc(i << chunkShift)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > nc*1024 {
		t.Errorf("heap allocations grew by %d bytes for %d chunks", grew, nc)
	}
	for i := range uint64(nc) {
		if got := c.get(i << chunkShift); got != 4 {
			t.Fatalf("block %d: count %d, want 4", i<<chunkShift, got)
		}
	}
}
