package restore

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/thinmeta/thinmeta/internal/refcount"
	"github.com/thinmeta/thinmeta/spacemap"
)

// fillBitmap, which converts a word of counts at a time, writes the bitmap
// that setting each entry with spacemap.SetBitmapEntry writes, and counts
// the same used entries, first free entry and entries of 3 or more, for
// bitmaps of every density (all free, none free, mostly small counts,
// mostly high ones, past the planes' Saturated too), the second bitmap of
// the counts and the last, which ends before the bitmap does. (The counts
// themselves are refcount's, tested there.)
func TestFillBitmapAsEntryByEntry(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for round := range 120 {
		// Blocks of two bitmaps and a part of a third: bitmap 1 whole,
		// bitmap 2 ending at nr.
		nr := uint64(2*perBitmap + 1 + rng.IntN(perBitmap-1))
		d := refcount.New(nr)
		counts := make([]uint32, nr)
		density := rng.IntN(5)
		for b := uint64(perBitmap); b < nr; b++ {
			var v uint32
			switch density {
			case 0: // all free
			case 1:
				v = uint32(1 + rng.IntN(15)) // none free
			case 2:
				if rng.IntN(3) == 0 {
					v = uint32(rng.IntN(4))
				}
			case 3:
				v = uint32(rng.IntN(16))
			default:
				v = uint32(rng.IntN(20)) // some beyond Saturated
			}
			if round%7 == 0 && b == 2*perBitmap-1 {
				v = 0 // only the last entry free
			}
			for range v {
				d.Inc(b)
			}
			counts[b] = v
		}
		for _, i := range []uint64{1, 2} {
			got := make([]byte, 4096)
			used, first, over := fillBitmap(got, d, i, nil)

			want := make([]byte, 4096)
			var wantUsed uint32
			wantFirst := uint32(perBitmap)
			var wantOver []uint64
			for e := range uint64(perBitmap) {
				b := i*perBitmap + e
				var v uint32
				if b < nr {
					v = counts[b]
				}
				if v == 0 {
					wantFirst = min(wantFirst, uint32(e))
					continue
				}
				wantUsed++
				spacemap.SetBitmapEntry(want, int(e), min(v, 3))
				if v >= 3 {
					wantOver = append(wantOver, e)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d (density %d) bitmap %d: bitmaps differ", round, density, i)
			}
			if used != wantUsed || first != wantFirst || !slices.Equal(over, wantOver) {
				t.Fatalf("round %d (density %d) bitmap %d: used %d first free %d, %d entries over 3; want %d %d %d",
					round, density, i, used, first, len(over), wantUsed, wantFirst, len(wantOver))
			}
		}
		d.Free()
	}
}
