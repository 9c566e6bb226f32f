package dump

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"pgregory.net/rapid"

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

// pow10[i] is 10^i.
var pow10 = [20]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

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

// checkPutDec writes v with putDec at offset 3 of a buffer of marked
// bytes and compares the text with strconv's: the index returned must be
// after the digits, the bytes before them untouched, and nothing written
// more than 7 bytes past them.
func checkPutDec(t interface{ Fatalf(string, ...any) }, v uint64) {
	var buf [40]byte
	for i := range buf {
		buf[i] = '#'
	}
	const at = 3
	want := strconv.FormatUint(v, 10)
	end := putDec(buf[:], at, v)
	if got := string(buf[at:end]); got != want || end != at+len(want) {
		t.Fatalf("putDec(%d) wrote %q (to index %d), want %q (to %d)", v, got, end, want, at+len(want))
	}
	if string(buf[:at]) != "###" {
		t.Fatalf("putDec(%d) wrote before its index: %q", v, buf[:at])
	}
	for i := end + 7; i < len(buf); i++ {
		if buf[i] != '#' {
			t.Fatalf("putDec(%d) wrote byte %d, %d past its digits", v, i, i-end)
		}
	}
}

// TestPutDec compares putDec with strconv for every number below 2*10^6,
// every number within 5000 of each power of 10 and of each power of 2
// (where the number of digits, the halves split at 10^8 and the lanes of
// digits8 change), and for random numbers of every bit length.
func TestPutDec(t *testing.T) {
	n := uint64(2e6)
	if testing.Short() {
		n = 2e5
	}
	for v := range n {
		checkPutDec(t, v)
	}
	var edges []uint64
	edges = append(edges, pow10[:]...)
	for i := range 64 {
		edges = append(edges, 1<<i)
	}
	for _, e := range edges {
		for d := uint64(0); d <= 5000; d++ {
			checkPutDec(t, e+d)
			checkPutDec(t, e-d)
		}
	}
	checkPutDec(t, math.MaxUint64)
	rapid.Check(t, func(t *rapid.T) {
		bits := rapid.IntRange(0, 64).Draw(t, "bits")
		v := rapid.Uint64().Draw(t, "v")
		if bits < 64 {
			v &= 1<<bits - 1
		}
		checkPutDec(t, v)
	})
}

// TestDigits8 checks the eight digit lanes for every number below 10^8
// (not in -short).
func TestDigits8(t *testing.T) {
	if testing.Short() {
		t.Skip("10^8 numbers")
	}
	var d [8]byte
	for v := range uint64(1e8) {
		x := digits8(v)
		// The digits of v, most significant first.
		w := v
		for i := 7; i >= 0; i-- {
			d[i] = byte(w % 10)
			w /= 10
		}
		for i := range 8 {
			if byte(x>>(8*i)) != d[i] {
				t.Fatalf("digits8(%d) = %#016x, want digits %v", v, x, d)
			}
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
	// Lines whose numbers are all below 2^26 take appendRun's fast path.
	var small []uint64
	for _, v := range edges {
		if v < 1<<26 {
			small = append(small, v)
		}
	}
	pickSmall := func() uint64 {
		if rng.IntN(2) == 0 {
			return small[rng.IntN(len(small))]
		}
		return rng.Uint64N(1<<26) >> rng.IntN(26)
	}
	for _, f := range []*runForm{&form090, &form110} {
		for i := range 40000 {
			r := thin.Run{VBlock: pick(), Block: pick(), Len: pick(), Time: uint32(pick())}
			if i%2 == 0 {
				r = thin.Run{VBlock: pickSmall(), Block: pickSmall(), Len: pickSmall(), Time: uint32(pickSmall())}
			}
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

// BenchmarkAppendRun formats lines like those of the 10M-mapping bench
// pool: blocks below 10^8, 38% single mappings, short ranges, times 0-1.
func BenchmarkAppendRun(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	runs := make([]thin.Run, 4096)
	for i := range runs {
		r := thin.Run{VBlock: rng.Uint64N(2e7), Block: rng.Uint64N(8e6), Len: 1 + rng.Uint64N(34), Time: uint32(rng.IntN(2))}
		if rng.IntN(100) < 38 {
			r.Len = 1
		}
		runs[i] = r
	}
	buf := make([]byte, 0, len(runs)*maxRunLine)
	b.SetBytes(int64(len(appendRuns(buf, runs))))
	for b.Loop() {
		buf = appendRuns(buf[:0], runs)
	}
}

func appendRuns(buf []byte, runs []thin.Run) []byte {
	for _, r := range runs {
		buf = appendRun(buf, r, &form090)
	}
	return buf
}
