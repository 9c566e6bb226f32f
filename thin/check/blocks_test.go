package check

import (
	"math"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/transaction"
	"pgregory.net/rapid"
)

// testNode returns a node with the given keys (in order), a leaf or an
// internal node, whose values are of valueSize bytes.
func testNode(leaf bool, keys []uint64, valueSize int) btree.Node {
	n := btree.Node(make([]byte, transaction.BlockSize))
	if leaf {
		n.SetFlags(btree.FlagLeaf)
	} else {
		n.SetFlags(btree.FlagInternal)
	}
	n.SetValueSize(valueSize)
	n.SetMaxEntries((transaction.BlockSize - btree.HeaderSize) / (8 + valueSize))
	n.SetNrEntries(len(keys))
	for i, k := range keys {
		n.SetKey(i, k)
	}
	return n
}

// TestBlockTableModel records random nodes and compares what the table
// returns with a map of what was recorded: each node's first and last key
// (1, 0 for an empty one), a leaf's memo (1 + its entries), an internal
// node's memo (as set, or 0), and each block's kind and flags, which must
// not disturb one another. Keys are drawn around the limits of a packed
// leaf (a first key at 2^32, a span at 2^24, more than 255 entries) so
// that both a packed word and the map are used. A leaf recorded without
// its keys has none.
func TestBlockTableModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.Uint64Range(1, 3<<blockPageShift).Draw(t, "n")
		tab := newBlockTable(n)
		model := map[uint64]nodeKeys{}
		infos := map[uint64]blockInfo{}
		unkept := map[uint64]bool{} // leaves recorded without their keys
		block := rapid.Uint64Range(0, n-1)
		base := rapid.SampledFrom([]uint64{0, 1, 1<<32 - 300, 1<<32 - 1, 1 << 32, 1 << 40, math.MaxUint64 - 400})
		step := rapid.SampledFrom([]uint64{1, 2, 1000, 1<<packSpanBits/100 - 1, 1 << packSpanBits / 100, 1 << packSpanBits})
		for range rapid.IntRange(1, 100).Draw(t, "ops") {
			b := block.Draw(t, "block")
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0: // a node walked at its first arrival
				if _, ok := model[b]; ok || unkept[b] {
					continue
				}
				leaf := rapid.Bool().Draw(t, "leaf")
				valueSize := rapid.SampledFrom([]int{4, 8, 24}).Draw(t, "valueSize")
				maxNr := (transaction.BlockSize - btree.HeaderSize) / (8 + valueSize)
				nr := rapid.OneOf(rapid.IntRange(0, 3), rapid.IntRange(maxNr-10, maxNr)).Draw(t, "nr")
				k, d := base.Draw(t, "base"), step.Draw(t, "step")
				var keys []uint64
				for range nr {
					if k > math.MaxUint64-d {
						break
					}
					keys = append(keys, k)
					k += d
				}
				node := testNode(leaf, keys, valueSize)
				keep := !leaf || rapid.Bool().Draw(t, "keep")
				tab.node(b, node, keep)
				*tab.at(b) |= blockKeyed
				infos[b] |= blockKeyed
				if !keep {
					unkept[b] = true
					continue
				}
				want := nodeKeys{first: 1, last: 0}
				if len(keys) > 0 {
					want.first, want.last = keys[0], keys[len(keys)-1]
				}
				if leaf {
					want.memo = uint32(len(keys) + 1)
				}
				model[b] = want
			case 1: // the memo of an internal node
				want, ok := model[b]
				if !ok || want.memo != 0 {
					continue
				}
				m := rapid.OneOf(rapid.Uint64Range(0, 1000), rapid.Uint64Range(1<<32-3, 1<<32)).Draw(t, "memo")
				tab.setMemo(b, m)
				if m < 1<<32-1 {
					want.memo = uint32(m + 1)
				}
				model[b] = want
			case 2: // a kind and flags
				k := treeKind(rapid.IntRange(0, int(kindBlobIndex)).Draw(t, "kind"))
				f := blockInfo(rapid.SampledFrom([]blockInfo{blockSeen, blockOnPath, blockThinRoot}).Draw(t, "flag"))
				info := tab.at(b)
				info.setKind(k)
				if rapid.Bool().Draw(t, "clear") {
					*info &^= f
					infos[b] &^= f
				} else {
					*info |= f
					infos[b] |= f
				}
				infos[b] = infos[b]&^kindMask | blockInfo(k)
			}
		}
		for b, want := range model {
			if got, ok := tab.nodeKeys(b); !ok || got != want {
				t.Fatalf("block %d: keys %+v (%v), want %+v", b, got, ok, want)
			}
		}
		for b := range unkept {
			if got, ok := tab.nodeKeys(b); ok {
				t.Fatalf("block %d: keys %+v, recorded without them", b, got)
			}
		}
		for b, want := range infos {
			got := *tab.at(b)
			if got.kind() != want.kind() {
				t.Fatalf("block %d: kind %v, want %v", b, got.kind(), want.kind())
			}
			for _, f := range []blockInfo{blockSeen, blockOnPath, blockKeyed, blockThinRoot} {
				if got.has(f) != want.has(f) {
					t.Fatalf("block %d: flag %#x is %v, want %v", b, f, got.has(f), want.has(f))
				}
			}
		}
	})
}

// A leaf packs exactly when its first key, span and entry count fit, and
// unpacks to what was packed.
func TestPackLeafLimits(t *testing.T) {
	for _, c := range []struct {
		first, last uint64
		nr          int
		packs       bool
	}{
		{0, 0, 1, true},
		{0, 0, 0, false},
		{5, 4, 1, false},
		{1<<32 - 1, 1<<32 - 1 + 1<<packSpanBits - 1, 255, true},
		{1 << 32, 1 << 32, 1, false},
		{7, 7 + 1<<packSpanBits, 2, false},
		{7, 7 + 1<<packSpanBits - 1, 2, true},
		{7, 9, 256, false},
	} {
		w := packLeaf(c.first, c.last, c.nr)
		if (w != 0) != c.packs {
			t.Errorf("packLeaf(%d, %d, %d) = %#x, want packed %v", c.first, c.last, c.nr, w, c.packs)
			continue
		}
		if w == 0 {
			continue
		}
		if f, l, nr := unpackLeaf(w); f != c.first || l != c.last || nr != c.nr {
			t.Errorf("unpackLeaf(packLeaf(%d, %d, %d)) = %d, %d, %d", c.first, c.last, c.nr, f, l, nr)
		}
	}
}
