package check

import "testing"

// Counts above the nibble's range go to the map; spread matches the
// on-disk word layout.
func TestCountsAndSpread(t *testing.T) {
	c := newCounts(100000)
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
	// Entry j of a natural-order word is bits 2j..2j+1; after spread it is
	// bits 4j..4j+3.
	for j := range 32 {
		for v := range uint64(4) {
			w := v << (2 * j)
			lo, hi := spread(w), spread(w>>32)
			got := lo >> (4 * j) & 15
			if j >= 16 {
				got = hi >> (4 * (j - 16)) & 15
			}
			if got != v || (j < 16 && hi != 0) || (j >= 16 && lo != 0) {
				t.Fatalf("entry %d value %d: spread %x %x", j, v, lo, hi)
			}
		}
	}
}
