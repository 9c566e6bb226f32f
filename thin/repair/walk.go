package repair

import (
	"fmt"
	"math"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/transaction"
)

// visitor receives what a tolerant walk finds.
type visitor struct {
	// leaf is called for each usable leaf with the part of the key range
	// [lo, hi] it covers; unsorted leaves have valid entries out of order.
	leaf func(b uint64, n btree.Node, unsorted bool, lo, hi uint64)
	// hole is called for each unusable subtree: the key range its parent
	// gives it (within the walk's range), its block, and why.
	hole func(lo, hi, b uint64, reason error)
	// node, if set, is called for every usable node, internal ones too.
	node func(b uint64, n btree.Node)
}

// walkTree walks one level of a B-tree tolerantly: it visits every leaf
// that may hold keys in [lo, hi] and reports every damaged subtree in that
// range as a hole instead of stopping. Leaves of vs-byte values.
func (s *salvager) walkTree(root uint64, vs int, lo, hi uint64, v visitor) {
	w := treeWalker{s: s, vs: vs, lo: lo, hi: hi, v: v, onPath: make(map[uint64]bool)}
	w.walk(root, 0, 0, math.MaxUint64, true)
}

type treeWalker struct {
	s      *salvager
	vs     int
	lo, hi uint64
	v      visitor
	bufs   [][]byte
	onPath map[uint64]bool
	nodes  uint64
}

func (w *treeWalker) hole(klo, khi, b uint64, reason error) {
	if w.v.hole != nil {
		w.v.hole(max(klo, w.lo), min(khi, w.hi), b, reason)
	}
}

func (w *treeWalker) walk(b uint64, depth int, klo, khi uint64, root bool) {
	if depth > btree.MaxDepth || w.onPath[b] {
		w.hole(klo, khi, b, transaction.Corruptf(b, btree.Kind, btree.ErrDepth, "tree too deep or cyclic"))
		return
	}
	if w.nodes++; w.nodes > w.s.n+1 {
		w.hole(klo, khi, b, transaction.Corruptf(b, btree.Kind, btree.ErrDepth, "more nodes than blocks"))
		return
	}
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, make([]byte, transaction.BlockSize))
	}
	n, err := w.s.readNode(b, w.bufs[depth], w.vs)
	unsorted := err == errUnsorted
	if err != nil && !unsorted {
		w.hole(klo, khi, b, err)
		return
	}
	if first, last, ok := span(n, unsorted); ok && !root && (first < klo || last > khi) {
		w.hole(klo, khi, b, transaction.Corruptf(b, btree.Kind, btree.ErrKeyRange, "keys %d..%d outside %d..%d", first, last, klo, khi))
		return
	}
	if w.v.node != nil {
		w.v.node(b, n)
	}
	if n.IsLeaf() {
		if w.v.leaf != nil {
			w.v.leaf(b, n, unsorted, max(klo, w.lo), min(khi, w.hi))
		}
		return
	}
	w.onPath[b] = true
	defer delete(w.onPath, b)
	nr := n.NrEntries()
	if nr == 0 {
		w.hole(klo, khi, b, fmt.Errorf("internal node %d has no entries", b))
		return
	}
	if root && n.Key(0) > klo {
		// Keys below the root's first key cannot be reached: nothing is
		// lost there.
		klo = n.Key(0)
	}
	for i := range nr {
		clo, chi := childRange(n, i, khi)
		if i == 0 {
			clo = max(clo, klo)
		}
		if chi < w.lo || clo > w.hi || clo > chi {
			continue
		}
		w.walk(n.Uint64Value(i), depth+1, clo, chi, false)
		// The buffer of this depth was not touched by deeper levels.
	}
}
