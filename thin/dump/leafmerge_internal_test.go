package dump

import (
	"context"
	"testing"

	"pgregory.net/rapid"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/transaction"
)

// modelRuns merges mappings into runs as thin_dump does: a mapping
// extends the run before it if its key, its data block (as a number, not
// wrapping at 2^40) and its time continue the run.
func modelRuns(ks, bs []uint64, ts []uint32) []thin.Run {
	var runs []thin.Run
	for i := range ks {
		if n := len(runs); n > 0 {
			r := &runs[n-1]
			if ks[i] == r.VBlock+r.Len && bs[i] == r.Block+r.Len && ts[i] == r.Time {
				r.Len++
				continue
			}
		}
		runs = append(runs, thin.Run{VBlock: ks[i], Block: bs[i], Len: 1, Time: ts[i]})
	}
	return runs
}

// TestLeafMergesAsModel formats mappings cut into leaves of random sizes
// with formatter.leaf (runs continue from leaf to leaf) and compares the
// text with the model's runs written by the emitter, in all four forms.
// Data blocks are drawn near 0 or near the largest block, 2^40-1, where
// a packed value's next block would wrap into the time bits: a run ending
// at 2^40-1 must not be continued by block 0.
func TestLeafMergesAsModel(t *testing.T) {
	const maxBlock = 1<<40 - 1
	emitters := []emitter{xmlEmitter{}, xml110Emitter{}, hrEmitter{}, hr110Emitter{}}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 1200).Draw(t, "n")
		base := rapid.SampledFrom([]uint64{0, maxBlock - 600, maxBlock - 300, maxBlock - 40}).Draw(t, "base")
		ks, bs, ts := make([]uint64, n), make([]uint64, n), make([]uint32, n)
		k, b, tm := rapid.Uint64Range(0, 1<<20).Draw(t, "k0"), base, uint32(0)
		for i := range n {
			// Mostly continue the run; sometimes jump a key, a block
			// (maybe to 0) or change the time.
			switch rapid.IntRange(0, 9).Draw(t, "step") {
			case 0:
				k += rapid.Uint64Range(2, 5).Draw(t, "dk")
			case 1:
				b = rapid.SampledFrom([]uint64{0, 1, base, b + 2}).Draw(t, "jump")
			case 2:
				tm = rapid.Uint32Range(0, thin.MaxTime).Draw(t, "time")
			}
			if b > maxBlock {
				b = 0
			}
			ks[i], bs[i], ts[i] = k, b, tm
			k++
			b++
		}
		var cuts []int
		for i := 0; i < n; {
			m := min(n-i, rapid.IntRange(1, btree.MaxEntries(8)).Draw(t, "leaf"))
			cuts = append(cuts, m)
			i += m
		}
		e := emitters[rapid.IntRange(0, len(emitters)-1).Draw(t, "form")]
		var want []byte
		for _, r := range modelRuns(ks, bs, ts) {
			want = e.run(want, r)
		}
		var got []byte
		f := formatter{e: e, form: formOf(e), buf: make([]byte, 0, chunkCap), reuse: true,
			m: meter.New(context.Background(), nil, "mappings", uint64(n), 0),
			emit: func(b []byte) bool {
				got = append(got, b...)
				return true
			}}
		block := make([]byte, transaction.BlockSize)
		i := 0
		for _, m := range cuts {
			vals := make([]uint64, m)
			for j := range m {
				vals[j] = thin.PackBlockTime(bs[i+j], ts[i+j])
			}
			btree.InitUint64(block, btree.FlagLeaf, ks[i:i+m], vals)
			if err := f.leaf(0, btree.Node(block)); err != nil {
				t.Fatal(err)
			}
			i += m
		}
		f.flushRun()
		got = append(got, f.buf...)
		if string(got) != string(want) {
			t.Fatalf("leaves of %v:\n got %q\nwant %q", cuts, got, want)
		}
	})
}
