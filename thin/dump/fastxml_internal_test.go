package dump

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/thinmeta/thinmeta/thin"
)

// wantRun is the mapping line of thin_dump's XML written with fmt: the
// model appendRun must agree with.
func wantRun(r thin.Run, f *runForm) string {
	var s string
	if r.Len == 1 {
		s = fmt.Sprintf(`    <single_mapping origin_block="%d" data_block="%d" time="%d"/>`, r.VBlock, r.Block, r.Time)
	} else {
		s = fmt.Sprintf(`    <range_mapping origin_begin="%d" data_begin="%d" length="%d" time="%d"/>`, r.VBlock, r.Block, r.Len, r.Time)
	}
	if f == &form110 {
		return "\n" + s
	}
	return s + "\n"
}

// edgeValues are the numbers around every change in the number of digits.
func edgeValues() []uint64 {
	vs := []uint64{0, 1, math.MaxUint64, math.MaxUint64 - 1}
	for _, p := range pow10 {
		vs = append(vs, p-1, p, p+1)
	}
	for i := range 64 {
		vs = append(vs, 1<<i-1, 1<<i, 1<<i+1)
	}
	return vs
}

func TestDecimalLen(t *testing.T) {
	for _, v := range edgeValues() {
		if got, want := decimalLen(v), len(fmt.Sprint(v)); got != want {
			t.Errorf("decimalLen(%d) = %d, want %d", v, got, want)
		}
	}
}

// TestAppendRunAsFmt compares appendRun with fmt for both generations'
// forms, single and range lines, numbers of every length, appended to
// buffers of every fill (so that the room reserved and the words stored
// past a piece's end are exercised at the buffer's end).
func TestAppendRunAsFmt(t *testing.T) {
	edges := edgeValues()
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() uint64 {
		if rng.IntN(2) == 0 {
			return edges[rng.IntN(len(edges))]
		}
		return rng.Uint64() >> rng.IntN(64)
	}
	for _, f := range []*runForm{&form090, &form110} {
		for i := range 20000 {
			r := thin.Run{VBlock: pick(), Block: pick(), Len: pick(), Time: uint32(pick())}
			if i%3 == 0 {
				r.Len = 1
			}
			if r.Len == 0 {
				r.Len = 2
			}
			// A prefix that must survive, in a buffer with little room.
			pre := []byte("<prefix>")
			b := make([]byte, len(pre), len(pre)+rng.IntN(2*maxRunLine))
			copy(b, pre)
			got := string(appendRun(b, r, f))
			if want := string(pre) + wantRun(r, f); got != want {
				t.Fatalf("appendRun(%+v):\n got %q\nwant %q", r, got, want)
			}
		}
	}
}
