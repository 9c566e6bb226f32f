package btree_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
)

// InitUint64 over a block of garbage gives the bytes that Init of a zeroed
// block, SetKey, SetUint64Value and SetNrEntries give, for every entry
// count from empty to full, leaves and internal nodes.
func TestInitUint64AsInit(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	max := btree.MaxEntries(8)
	for n := 0; n <= max; n++ {
		keys, vals := make([]uint64, n), make([]uint64, n)
		for i := range n {
			keys[i], vals[i] = rng.Uint64(), rng.Uint64()
		}
		flags := btree.FlagLeaf
		if n%2 == 1 {
			flags = btree.FlagInternal
		}
		want := make([]byte, 4096)
		btree.Init(want, flags, 8)
		node := btree.Node(want)
		for i := range n {
			node.SetKey(i, keys[i])
			node.SetUint64Value(i, vals[i])
		}
		node.SetNrEntries(n)

		got := make([]byte, 4096)
		for i := range got {
			got[i] = byte(rng.Uint32())
		}
		btree.InitUint64(got, flags, keys, vals)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d entries: blocks differ", n)
		}
	}
}
