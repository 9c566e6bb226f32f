package restore

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/thinmeta/thinmeta/thin"
)

// entries expands spans into their keys and packed values.
func entries(spans []span) (keys, vals []uint64) {
	for _, s := range spans {
		for j := range uint64(s.n) {
			keys = append(keys, s.origin+j)
			vals = append(vals, thin.PackBlockTime(s.data+j, s.t))
		}
	}
	return keys, vals
}

// Entries pushed as spans come out of take, in any sizes, as the same
// entries in the same order, with live counting what is left; and
// appendEntries turns entries back into spans that expand to them.
func TestSpansTake(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		var a leaves
		a.reset(nil)
		var pushed []span
		origin, data := uint64(rng.IntN(100)), uint64(rng.IntN(100))
		for range rng.IntN(3000) {
			s := span{origin: origin, data: data, n: uint32(1 + rng.IntN(40)), t: uint32(rng.IntN(3))}
			a.push(s)
			pushed = append(pushed, s)
			origin += uint64(s.n) + uint64(rng.IntN(3))
			data += uint64(s.n) + uint64(rng.IntN(2))
		}
		var got []span
		for a.live > 0 {
			n := min(a.live, 1+rng.IntN(2*leafMax))
			before := len(got)
			got = a.take(n, got)
			if k, _ := entries(got[before:]); len(k) != n {
				t.Fatalf("take(%d) gave %d entries", n, len(k))
			}
			// Interleave more pushes with the takes, as the builder does.
			if rng.IntN(4) == 0 {
				s := span{origin: origin, data: data, n: uint32(1 + rng.IntN(40)), t: 1}
				a.push(s)
				pushed = append(pushed, s)
				origin += uint64(s.n)
				data += uint64(s.n)
			}
		}
		wantK, wantV := entries(pushed)
		gotK, gotV := entries(got)
		if !slices.Equal(gotK, wantK) || !slices.Equal(gotV, wantV) {
			t.Fatalf("taken entries differ from those pushed")
		}
		back := appendEntries(nil, wantK, wantV)
		if k, v := entries(back); !slices.Equal(k, wantK) || !slices.Equal(v, wantV) {
			t.Fatalf("appendEntries does not give back the entries")
		}
		if len(back) > len(pushed) {
			t.Fatalf("appendEntries made %d spans of entries pushed as %d", len(back), len(pushed))
		}
	}
}
