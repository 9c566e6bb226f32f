package repair

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// errUnsorted marks a leaf whose checksum and header are valid but whose
// keys are not in increasing order; its entries can be sorted.
var errUnsorted = errors.New("keys out of order")

// readNode reads block b as a node of a tree whose leaves hold values of
// vs bytes, into buf. It checks what the kernel and thin_check check
// (btree.Validator, and btree.CheckNode for what does not depend on the
// node's place). A leaf whose first fault is its key order is returned with
// errUnsorted if its keys do not repeat.
func (s *salvager) readNode(b uint64, buf []byte, vs int) (btree.Node, error) {
	if b >= s.n {
		return nil, fmt.Errorf("block %d beyond the end of the device (%d blocks)", b, s.n)
	}
	if err := s.readNodeBlock(b, buf); err != nil {
		return nil, err
	}
	n := btree.Node(buf)
	if err := btree.CheckNode(n, b, btree.RootPlace(vs), 0); err != nil {
		if errors.Is(err, btree.ErrKeyOrder) && n.IsLeaf() && !repeats(n) {
			return n, errUnsorted
		}
		return nil, err
	}
	return n, nil
}

// readNodeBlock reads block b into buf through btree.Validator, taking what
// the kernel and thin_check 0.9.0 take: a flags word with other bits beside
// exactly one of the two type bits is read by its type bit. Everything else
// in thinmeta refuses such a node (btree.ErrNodeFlags), as thin_check 1.1.0
// does for leaves; salvage keeps what the node holds.
func (s *salvager) readNodeBlock(b uint64, buf []byte) error {
	err := s.r.ReadInto(b, buf, btree.Validator)
	if !errors.Is(err, btree.ErrNodeFlags) || !typeFlags(buf) {
		return err
	}
	// Location and checksum were verified before the flags were looked at.
	return btree.Validator.Check(buf, b)
}

// typeFlags reduces the flags word of a node to its type bit, reporting
// false if it has not exactly one of them.
func typeFlags(blk []byte) bool {
	n := btree.Node(blk)
	t := n.Flags() & (btree.FlagInternal | btree.FlagLeaf)
	if t != btree.FlagInternal && t != btree.FlagLeaf {
		return false
	}
	n.SetFlags(t)
	return true
}

// repeats reports whether a node's keys repeat.
func repeats(n btree.Node) bool {
	ks := make([]uint64, n.NrEntries())
	for i := range ks {
		ks[i] = n.Key(i)
	}
	slices.Sort(ks)
	for i := 1; i < len(ks); i++ {
		if ks[i] == ks[i-1] {
			return true
		}
	}
	return false
}

// sortedEntries returns the entries of a leaf in key order: indexes into
// the node.
func sortedEntries(n btree.Node) []int {
	idx := make([]int, n.NrEntries())
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		ka, kb := n.Key(a), n.Key(b)
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
	return idx
}

// span returns a node's first and last key in order (for an unsorted
// leaf, its smallest and largest), and false for an empty node.
func span(n btree.Node, unsorted bool) (lo, hi uint64, ok bool) {
	nr := n.NrEntries()
	if nr == 0 {
		return 0, 0, false
	}
	if !unsorted {
		return n.Key(0), n.Key(nr - 1), true
	}
	lo, hi = math.MaxUint64, 0
	for i := range nr {
		lo, hi = min(lo, n.Key(i)), max(hi, n.Key(i))
	}
	return lo, hi, true
}

// childRange returns the key range [lo, hi] that internal node n gives
// child i, within the node's own range [klo, khi].
func childRange(n btree.Node, i int, khi uint64) (lo, hi uint64) {
	lo, hi = n.Key(i), khi
	if i+1 < n.NrEntries() {
		if k := n.Key(i + 1); k > 0 {
			hi = k - 1
		}
	}
	return lo, hi
}

// leafMappings returns the mappings of a mapping leaf within [lo, hi], in
// key order, appending to ms.
func leafMappings(ms []thin.Mapping, n btree.Node, unsorted bool, lo, hi uint64) []thin.Mapping {
	add := func(i int) {
		k := n.Key(i)
		if k < lo || k > hi {
			return
		}
		b, t := thin.UnpackBlockTime(n.Uint64Value(i))
		ms = append(ms, thin.Mapping{VBlock: k, Block: b, Time: t})
	}
	if unsorted {
		for _, i := range sortedEntries(n) {
			add(i)
		}
		return ms
	}
	for i := range n.NrEntries() {
		add(i)
	}
	return ms
}

// reasonText describes why a node is unusable, without the package
// prefix of errors.
func reasonText(err error) string {
	var ce *transaction.CorruptError
	if errors.As(err, &ce) {
		s := ce.Err.Error()
		if ce.Detail != "" {
			s += ": " + ce.Detail
		}
		return s
	}
	var ie *transaction.IOError
	if errors.As(err, &ie) {
		return fmt.Sprintf("%s error: %v", ie.Op, ie.Err)
	}
	return err.Error()
}
