package restore

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/thinmeta/thinmeta/spacemap"
)

// dataCounts agrees with a plain map of counts through increments of
// ranges and decrements, across chunk boundaries and through the
// planes' limit (counts of 14, 15, 16 and far beyond) in both directions.
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
		if got := countAt(d, b); got != model[b] {
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
		t.Fatal("no count went past the planes' limit")
	}
	for b := range d.over {
		if model[b] <= saturated {
			t.Errorf("block %d with count %d kept in the map", b, model[b])
		}
	}
}

// fillBitmap, which converts a word of counts at a time, writes the bitmap
// that setting each entry with spacemap.SetBitmapEntry writes, and counts
// the same used entries, first free entry and entries of 3 or more, for
// chunks of every density (all free, none free, mostly small counts,
// mostly saturated).
func TestFillBitmapAsEntryByEntry(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for round := range 200 {
		c := dataChunk{low: make([]uint64, chunkWords)}
		set := func(e int, v uint64) { // count v (0 to 15) of entry e
			w, s := e/32, 2*(e%32)
			c.low[w] |= v & 3 << s
			if v >= 4 {
				if c.high[w/groupWords] == nil {
					c.high[w/groupWords] = make([]uint64, groupWords)
				}
				c.high[w/groupWords][w%groupWords] |= v >> 2 << s
			}
		}
		counts := make([]uint32, perBitmap)
		density := rng.IntN(5)
		for e := range perBitmap {
			var v uint64
			switch density {
			case 0: // all free
			case 1:
				v = uint64(1 + rng.IntN(15)) // none free
			case 2:
				if rng.IntN(3) == 0 {
					v = uint64(rng.IntN(4))
				}
			default:
				v = uint64(rng.IntN(16))
			}
			if round%7 == 0 && e == perBitmap-1 {
				v = 0 // only the last entry free
			}
			set(e, v)
			counts[e] = uint32(v)
		}
		got := make([]byte, 4096)
		used, first, over := fillBitmap(got, c, nil)

		want := make([]byte, 4096)
		var wantUsed uint32
		wantFirst := uint32(perBitmap)
		var wantOver []uint64
		for e := range perBitmap {
			v := counts[e]
			if v == 0 {
				wantFirst = min(wantFirst, uint32(e))
				continue
			}
			wantUsed++
			spacemap.SetBitmapEntry(want, e, min(v, 3))
			if v >= 3 {
				wantOver = append(wantOver, uint64(e))
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d (density %d): bitmaps differ", round, density)
		}
		if used != wantUsed || first != wantFirst || !slices.Equal(over, wantOver) {
			t.Fatalf("round %d (density %d): used %d first free %d, %d entries over 3; want %d %d %d",
				round, density, used, first, len(over), wantUsed, wantFirst, len(wantOver))
		}
	}
}

// TestDataCountsRapid: random increments of ranges and decrements, drawn
// by rapid, agree with a map; a group has a high plane only once one of
// its counts has reached 4, and only counts above 15 are in the map.
func TestDataCountsRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nr := rapid.Uint64Range(1, 3*perBitmap).Draw(t, "nr")
		d := newDataCounts(nr)
		model := make(map[uint64]uint32)
		reached := make(map[uint64]bool) // groups (block/(32*groupWords)) with a count of 4 or more
		edge := func(x uint64) uint64 { return min(x, nr-1) }
		block := rapid.OneOf(
			rapid.Uint64Range(0, nr-1),
			rapid.SampledFrom([]uint64{0, edge(32*groupWords - 1), edge(32 * groupWords), edge(perBitmap - 1),
				edge(perBitmap), nr - 1}),
		)
		for range rapid.IntRange(1, 80).Draw(t, "ops") {
			b := block.Draw(t, "block")
			if rapid.IntRange(0, 2).Draw(t, "op") > 0 {
				n := rapid.Uint64Range(1, min(40, nr-b)).Draw(t, "n")
				for range rapid.IntRange(1, 20).Draw(t, "times") {
					d.incRange(b, n)
					for j := range n {
						model[b+j]++
						if model[b+j] >= 4 {
							reached[(b+j)/perBitmap*chunkGroups+(b+j)%perBitmap/(32*groupWords)] = true
						}
					}
				}
			} else {
				for range rapid.IntRange(1, 20).Draw(t, "decs") {
					if model[b] == 0 {
						break
					}
					d.dec(b)
					model[b]--
				}
			}
		}
		for b := uint64(0); b < nr; b++ {
			got := countAt(d, b)
			g := b % perBitmap / (32 * groupWords)
			if has := d.chunk(b / perBitmap).high[g] != nil; has != reached[b/perBitmap*chunkGroups+g] {
				t.Fatalf("block %d: its group's high plane allocated %v, a count of 4 or more %v", b, has, !has)
			}
			if got != model[b] {
				t.Fatalf("block %d: count %d, want %d", b, got, model[b])
			}
		}
		for b := range d.over {
			if model[b] <= saturated {
				t.Fatalf("block %d with count %d kept in the map", b, model[b])
			}
		}
	})
}

// countAt returns block b's count.
func countAt(d *dataCounts, b uint64) uint32 { return d.count(b) }

// The planes start zeroed, take every count a model gives them (including
// the last word of a device sized to whole bitmaps and of one that ends
// mid-word), and free releases them once: a second free, and a free of a
// dataCounts of no blocks, do nothing.
func TestDataCountsPlanes(t *testing.T) {
	for _, nr := range []uint64{0, 1, 33, perBitmap, 2*perBitmap + 5} {
		d := newDataCounts(nr)
		nb := spacemap.NrBitmaps(nr)
		if uint64(len(d.low)) != nb*chunkWords || uint64(len(d.high)) != nb*chunkWords || uint64(len(d.hidx)) != nb*chunkGroups {
			t.Fatalf("nr %d: planes of %d, %d and %d entries for %d bitmaps", nr, len(d.low), len(d.high), len(d.hidx), nb)
		}
		if slices.ContainsFunc(d.low, func(w uint64) bool { return w != 0 }) ||
			slices.ContainsFunc(d.high, func(w uint64) bool { return w != 0 }) ||
			slices.ContainsFunc(d.hidx, func(k uint32) bool { return k != 0 }) {
			t.Fatalf("nr %d: planes not zeroed", nr)
		}
		for b := range nr {
			d.incRange(b, 1)
			if b%3 == 0 {
				for range 5 {
					d.incRange(b, 1)
				}
			}
		}
		for b := range nr {
			want := uint32(1)
			if b%3 == 0 {
				want = 6
			}
			if got := d.count(b); got != want {
				t.Fatalf("nr %d: block %d counted %d, want %d", nr, b, got, want)
			}
		}
		d.free()
		if d.low != nil || d.high != nil || d.hidx != nil {
			t.Fatalf("nr %d: planes kept after free", nr)
		}
		d.free()
	}
}

// incRange's word-at-a-time step agrees with a slice of counts, for every
// start and length within three words and counts around 3 (where the step
// must fall back to carrying entry by entry) and past 15.
func TestIncRangeWordStep(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const nr = 3 * 32
		d := newDataCounts(nr)
		defer d.free()
		var want [nr]uint32
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			b := rapid.Uint64Range(0, nr-1).Draw(t, "b")
			n := rapid.Uint64Range(1, nr-b).Draw(t, "n")
			d.incRange(b, n)
			for j := b; j < b+n; j++ {
				want[j]++
			}
		}
		for b := range uint64(nr) {
			if got := d.count(b); got != want[b] {
				t.Fatalf("block %d: %d, want %d", b, got, want[b])
			}
		}
	})
}
