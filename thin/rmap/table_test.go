package rmap

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

// The table gives back what it was given, sorted by first data block like
// a plain sort (distinct first blocks here: the order of equal ones is
// thin_rmap's, held to thin_rmap itself in rmap_test.go), across chunk
// boundaries, with runs of 2^32 blocks and more kept at their length.
func TestTable(t *testing.T) {
	for _, bits := range []uint{0, 1, 3, 14} {
		restore := SetChunkBits(bits)
		rng := rand.New(rand.NewPCG(uint64(bits), 3))
		var want []Entry
		tb := newTable()
		for _, d := range rng.Perm(5000) {
			n := uint64(1 + rng.IntN(40))
			switch rng.IntN(50) {
			case 0:
				n = longRun
			case 1:
				n = 1<<33 + uint64(rng.IntN(9))
			case 2:
				n = longRun - 1
			}
			e := Entry{DataBegin: uint64(d) << 40, Dev: uint32(rng.IntN(7)), ThinBegin: rng.Uint64N(1 << 50)}
			e.DataEnd = e.DataBegin + n
			want = append(want, e)
			tb.add(e)
		}
		tb.sort()
		slices.SortFunc(want, func(a, b Entry) int { return cmp.Compare(a.DataBegin, b.DataBegin) })
		if tb.n != len(want) {
			t.Fatalf("chunk bits %d: %d entries, want %d", bits, tb.n, len(want))
		}
		for i, w := range want {
			if got := tb.entry(i); got != w {
				t.Fatalf("chunk bits %d: entry %d = %+v, want %+v", bits, i, got, w)
			}
		}
		restore()
	}
}
