package restore

import (
	"math/rand/v2"
	"testing"
)

// dataCounts agrees with a plain map of counts through increments of
// ranges and decrements, across chunk boundaries and through the
// four-bit limit (counts of 14, 15, 16 and far beyond) in both directions.
func TestDataCountsModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	const nr = 3*perBitmap + 77
	d := newDataCounts(nr)
	model := make(map[uint64]uint32)
	hot := []uint64{0, 1, perBitmap - 1, perBitmap, perBitmap + 1, 2*perBitmap + 3, nr - 1}
	for range 200000 {
		switch rng.IntN(3) {
		case 0:
			b := hot[rng.IntN(len(hot))]
			if rng.IntN(4) == 0 {
				b = rng.Uint64N(nr)
			}
			n := 1 + rng.Uint64N(min(40, nr-b))
			d.incRange(b, n)
			for j := range n {
				model[b+j]++
			}
		default:
			b := hot[rng.IntN(len(hot))]
			if model[b] > 0 {
				d.dec(b)
				model[b]--
			}
		}
	}
	for b := uint64(0); b < nr; b++ {
		c := d.chunks[b/perBitmap]
		var got uint32
		if c != nil {
			got = d.count(c, b/perBitmap, b%perBitmap)
		}
		if got != model[b] {
			t.Fatalf("block %d: count %d, want %d", b, got, model[b])
		}
	}
	var high int
	for _, v := range model {
		if v >= saturated+2 {
			high++
		}
	}
	if high == 0 {
		t.Fatal("no count went past the four-bit limit")
	}
	for b := range d.over {
		if model[b] < saturated {
			t.Errorf("block %d with count %d kept in the map", b, model[b])
		}
	}
}
