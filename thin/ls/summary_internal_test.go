package ls

import (
	"testing"

	"pgregory.net/rapid"
)

// TestSummariseBoundsDecide: a summary summarise accepts keeps the leaf's
// block, mapping count and data-block range, and spans few enough data
// blocks that decide, which may scan the whole span a word at a time,
// scans at most about two words per mapping. Before maxSumSpan a leaf of
// two mappings 2^23 blocks apart was summarised, and listing a pool of 2M
// mappings scattered over 8M data blocks took 4.3 s instead of 0.05 s
// (every decide scanned 131,072 words and found no block counted twice).
func TestSummariseBoundsDecide(t *testing.T) {
	if _, ok := summarise(100, 2, 0, 1<<23); ok {
		t.Errorf("a leaf of 2 mappings spanning 2^23 data blocks was summarised")
	}
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.Uint64Range(0, 1<<50).Draw(t, "block")
		nr := rapid.IntRange(1, 1<<16).Draw(t, "nr")
		lo := rapid.Uint64Range(0, 1<<41).Draw(t, "lo")
		span := rapid.OneOf(rapid.Uint64Range(0, uint64(nr)*4), rapid.Uint64Range(0, 1<<25)).Draw(t, "span")
		hi := lo + span
		s, ok := summarise(b, nr, lo, hi)
		if !ok {
			// Refused only for a reason the encoding or the bound gives.
			if b < 1<<48 && nr < 1<<16 && lo < 1<<40 && span < uint64(nr) {
				t.Fatalf("a leaf of %d mappings spanning %d blocks was refused", nr, span+1)
			}
			return
		}
		if s.block() != b || s.nr() != uint64(nr) || s.lo() != lo || s.hi() != hi {
			t.Fatalf("summary of (%d, %d, %d, %d) reads back (%d, %d, %d, %d)", b, nr, lo, hi, s.block(), s.nr(), s.lo(), s.hi())
		}
		// decide's loop: one step per 64-block word the span touches.
		words := hi/64 - lo/64 + 1
		if words > 2*uint64(nr)+4 {
			t.Fatalf("a leaf of %d mappings spanning %d blocks (%d words) was summarised", nr, span+1, words)
		}
	})
}
