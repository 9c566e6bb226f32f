package btree

import (
	"math/rand/v2"
	"testing"
)

// benchTree builds a tree of n keys (0, 3, 6, ...) and returns it for
// reading through the transaction.
func benchTree(b *testing.B, n int) Tree {
	b.Helper()
	e := newEnv(int64(n/50 + 64))
	root, err := Empty(e.tm, e.vt)
	if err != nil {
		b.Fatal(err)
	}
	for k := range uint64(n) {
		if root, _, err = Insert(e.tm, root, e.vt, 3*k, val(k)); err != nil {
			b.Fatal(err)
		}
	}
	return Tree{R: e.tm, Root: root, ValueSize: 8}
}

// BenchmarkLookup looks up random keys, half of them present, in a tree of
// 100,000 entries (three levels).
func BenchmarkLookup(b *testing.B) {
	t := benchTree(b, 100000)
	rng := rand.New(rand.NewPCG(1, 1))
	for b.Loop() {
		k := rng.Uint64N(2 * 3 * 100000 / 2)
		if _, _, err := t.Lookup(k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWalk visits every entry of a tree of 100,000 entries.
func BenchmarkWalk(b *testing.B) {
	t := benchTree(b, 100000)
	for b.Loop() {
		n := 0
		if err := t.Walk(0, ^uint64(0), func(uint64, []byte) error { n++; return nil }); err != nil || n != 100000 {
			b.Fatal(n, err)
		}
	}
}
