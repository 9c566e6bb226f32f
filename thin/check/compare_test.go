package check

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/refcount"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/transaction"
)

// compare gives the findings, in order, and the leak count that judging
// each block on its own gives: its bitmap entry (3: the overflow tree's
// entry for it, whatever its value; none: an ErrOverflow finding) against
// the references found, a CountError when they differ (non-fatal, and a
// leak, when the recorded count is the higher). The bitmaps are drawn so
// that whole words agree but for their entries of 3 (snapshot-heavy
// pools), disagree anywhere, carry counts in the high plane and beyond
// it, and hold garbage past the space map's last block.
func TestCompareModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.Uint64Range(1, 2*spacemap.EntriesPerBitmap).Draw(t, "n")
		nb := (n + spacemap.EntriesPerBitmap - 1) / spacemap.EntriesPerBitmap
		found := refcount.New(n)
		defer found.Free()
		foundOf := make([]uint32, n)
		recorded := make([]uint32, n)
		// Blocks are drawn a word at a time: a word of small counts, of
		// counts around 3, or of large ones; the recorded counts equal
		// the found ones unless the word is drawn to differ.
		for w := uint64(0); 32*w < n; w++ {
			kind := rapid.IntRange(0, 3).Draw(t, "word kind")
			differ := rapid.IntRange(0, 4).Draw(t, "differ") == 0
			for j := range uint64(32) {
				b := 32*w + j
				if b >= n {
					break
				}
				var f uint32
				switch kind {
				case 1:
					f = uint32(rapid.IntRange(0, 2).Draw(t, "small"))
				case 2:
					f = uint32(rapid.IntRange(2, 5).Draw(t, "around 3"))
				case 3:
					f = uint32(rapid.IntRange(0, 20).Draw(t, "large"))
				}
				foundOf[b], recorded[b] = f, f
				for range f {
					found.Inc(b)
				}
				if differ && rapid.IntRange(0, 3).Draw(t, "this one") == 0 {
					recorded[b] = uint32(rapid.IntRange(0, 20).Draw(t, "recorded"))
				}
			}
		}
		// The overflow tree: an entry for each recorded count of 3 or
		// more, but some dropped, some holding a value below 3, and
		// some for blocks whose entry is below 3 (ignored).
		var overflow []overflowEntry
		entry := make([]uint32, n)
		for b := range n {
			r := recorded[b]
			entry[b] = min(r, 3)
			switch {
			case r >= 3 && rapid.IntRange(0, 15).Draw(t, "drop") == 0:
			case r >= 3 && rapid.IntRange(0, 15).Draw(t, "low") == 0:
				v := uint32(rapid.IntRange(0, 2).Draw(t, "low value"))
				overflow = append(overflow, overflowEntry{b, v})
				recorded[b] = v
			case r >= 3:
				overflow = append(overflow, overflowEntry{b, r})
			case rapid.IntRange(0, 30).Draw(t, "stray") == 0:
				overflow = append(overflow, overflowEntry{b, 7})
			}
		}
		// The bitmaps, at blocks 1..nb, with garbage past block n.
		dev := memdev.New(int64(nb+1) * transaction.BlockSize)
		var index []spacemap.IndexEntry
		for i := range nb {
			blk := dev.Bytes()[(i+1)*transaction.BlockSize : (i+2)*transaction.BlockSize]
			for e := range uint64(spacemap.EntriesPerBitmap) {
				b := i*spacemap.EntriesPerBitmap + e
				v := uint32(0)
				if b < n {
					v = entry[b]
				} else if b < n+64 {
					v = uint32(rapid.IntRange(0, 3).Draw(t, "garbage"))
				}
				spacemap.SetBitmapEntry(blk, int(e), v)
			}
			spacemap.BitmapValidator.Prepare(blk, i+1)
			index = append(index, spacemap.IndexEntry{Blocknr: i + 1})
		}

		// The model: each block on its own, in order.
		var want []string
		var wantLeaked uint64
		next := 0
		for b := range n {
			got := entry[b]
			if got == 3 {
				for next < len(overflow) && overflow[next].block < b {
					next++
				}
				if next == len(overflow) || overflow[next].block != b {
					want = append(want, fmt.Sprintf("fatal overflow %d", b))
					continue
				}
				got = overflow[next].count
			}
			if f := foundOf[b]; got != f {
				sev := "fatal"
				if got > f {
					sev = "non-fatal"
					wantLeaked++
				}
				want = append(want, fmt.Sprintf("%s count %d %d/%d", sev, b, got, f))
			}
		}

		var gotFindings []string
		c := &checker{
			r:     transaction.NewReader(dev, dev.Size()),
			meter: meter.New(context.Background(), nil, "walk", 0, 0),
			report: func(f Finding) {
				var ce *CountError
				switch {
				case errors.As(f.Err, &ce):
					gotFindings = append(gotFindings, fmt.Sprintf("%s count %d %d/%d", f.Severity, ce.Block, ce.Recorded, ce.Found))
				case errors.Is(f.Err, spacemap.ErrOverflow):
					var b uint64
					if _, err := fmt.Sscanf(f.Err.Error()[len(spacemap.ErrOverflow.Error()):], ": block %d", &b); err != nil {
						t.Fatalf("%v: %v", f, err)
					}
					gotFindings = append(gotFindings, fmt.Sprintf("%s overflow %d", f.Severity, b))
				default:
					t.Fatalf("unexpected finding %v", f)
				}
			},
		}
		// The overflow entries come in batches, as the walk yields
		// leaves.
		rest := overflow
		batch := rapid.IntRange(1, 300).Draw(t, "batch")
		leaked := c.compare(smInfo{area: "data space map", index: index}, found, n, func() (ovBatch, bool) {
			k := min(batch, len(rest))
			var e ovBatch
			for _, o := range rest[:k] {
				e.keys = binary.LittleEndian.AppendUint64(e.keys, o.block)
				e.vals = binary.LittleEndian.AppendUint32(e.vals, o.count)
			}
			rest = rest[k:]
			return e, k > 0
		})
		c.flush()
		if leaked != wantLeaked {
			t.Errorf("leaked %d, want %d", leaked, wantLeaked)
		}
		if len(gotFindings) != len(want) {
			t.Fatalf("%d findings, want %d:\n%q\n%q", len(gotFindings), len(want), gotFindings, want)
		}
		for i := range want {
			if gotFindings[i] != want[i] {
				t.Fatalf("finding %d: %s, want %s", i, gotFindings[i], want[i])
			}
		}
	})
}
