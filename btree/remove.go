package btree

import (
	"github.com/thinmeta/thinmeta/transaction"
)

// Remove deletes key from the tree rooted at root, dropping the reference
// its value held (vt.Dec). It returns the new root, which the caller must
// adopt even when the key was absent (the path may have been shadowed).
//
// On the way down every internal node's children around the key are
// rebalanced as the kernel does (FORMAT.md §4.6): neighbours are merged or
// their entries evened out so non-root nodes stay at least a third full.
//
// An error ends tm's transaction (Manager.Fail): the tree may be half
// changed.
func Remove(tm *transaction.Manager, root uint64, vt *ValueType, key uint64) (newRoot uint64, removed bool, err error) {
	newRoot, removed, err = remove(tm, root, vt, key)
	return newRoot, removed, tm.Fail(err)
}

func remove(tm *transaction.Manager, root uint64, vt *ValueType, key uint64) (newRoot uint64, removed bool, err error) {
	b, n, err := shadow(tm, root, vt)
	if err != nil {
		return root, false, err
	}
	newRoot = b
	for depth := 0; ; depth++ {
		if depth > MaxDepth {
			return newRoot, false, transaction.Corruptf(origin(tm, b), Kind, ErrDepth, "remove deeper than %d levels", MaxDepth)
		}
		if n.IsInternal() {
			found, err := rebalanceChildren(tm, b, n, vt, key)
			if err != nil || !found {
				return newRoot, false, err
			}
			if n.IsInternal() {
				i := n.LowerBound(key)
				cb, cn, err := shadow(tm, n.Uint64Value(i), vt)
				if err != nil {
					return newRoot, false, err
				}
				n.SetUint64Value(i, cb)
				b, n = cb, cn
			}
			continue
		}
		i := n.LowerBound(key)
		if i < 0 || n.Key(i) != key {
			return newRoot, false, nil
		}
		if vt.Dec != nil {
			if err := vt.Dec(n.Value(i)); err != nil {
				return newRoot, false, refError(err, origin(tm, b), n, i)
			}
		}
		deleteAt(n, i)
		return newRoot, true, nil
	}
}

// mergeThreshold is the population below which a node is merged.
func mergeThreshold(n Node) int { return n.MaxEntries() / 3 }

// rebalanceChildren prepares internal node n (block b, already writable)
// for a removal of key below it. It reports false if key cannot be in the
// tree.
func rebalanceChildren(tm *transaction.Manager, b uint64, n Node, vt *ValueType, key uint64) (bool, error) {
	nr := n.NrEntries()
	if nr == 0 {
		return false, nil
	}
	if nr == 1 {
		// A root with a single child: pull the child up into it.
		child := n.Uint64Value(0)
		blk, err := tm.Read(child, Validator)
		if err != nil {
			return false, err
		}
		if err := checkWritable(Node(blk), child, vt); err != nil {
			return false, err
		}
		c, err := tm.SpaceMap().Count(child)
		if err != nil { // a child the space map does not cover: n is damaged
			return false, refError(err, origin(tm, b), n, 0)
		}
		copy(n, blk)
		if c > 1 {
			// The child stays referenced elsewhere, so its children
			// gain a referrer (the kernel omits this; see FORMAT.md §4.6).
			if err := incChildren(tm, n, child, vt); err != nil {
				return false, err
			}
		}
		return true, tm.SpaceMap().Dec(child)
	}
	i := n.LowerBound(key)
	if i < 0 {
		return false, nil
	}
	switch {
	case i == 0:
		return true, rebalance2(tm, n, vt, 0)
	case i == nr-1:
		return true, rebalance2(tm, n, vt, nr-2)
	default:
		return true, rebalance3(tm, n, vt, i-1)
	}
}

// child shadows child i of parent and patches the parent to point at it.
func child(tm *transaction.Manager, parent Node, vt *ValueType, i int) (uint64, Node, error) {
	cb, cn, err := shadow(tm, parent.Uint64Value(i), vt)
	if err != nil {
		return 0, nil, err
	}
	parent.SetUint64Value(i, cb)
	return cb, cn, nil
}

func sameKind(b uint64, a, c Node) error {
	if a.Flags()&(FlagInternal|FlagLeaf) != c.Flags()&(FlagInternal|FlagLeaf) || a.MaxEntries() != c.MaxEntries() || a.ValueSize() != c.ValueSize() {
		return transaction.Corruptf(b, Kind, ErrNodeHeader, "sibling nodes of different kinds")
	}
	return nil
}

// rebalance2 merges or evens out children li and li+1 of parent.
func rebalance2(tm *transaction.Manager, parent Node, vt *ValueType, li int) error {
	_, left, err := child(tm, parent, vt, li)
	if err != nil {
		return err
	}
	rb, right, err := child(tm, parent, vt, li+1)
	if err != nil {
		return err
	}
	if err := sameKind(origin(tm, rb), left, right); err != nil {
		return err
	}
	nl, nr := left.NrEntries(), right.NrEntries()
	if nl+nr < 2*(mergeThreshold(left)+1) {
		copyEntries(left, nl, right, 0, nr)
		left.SetNrEntries(nl + nr)
		deleteAt(parent, li+1)
		return tm.SpaceMap().Dec(rb)
	}
	redistribute(left, right)
	parent.SetKey(li+1, right.Key(0))
	return nil
}

// redistribute evens out two siblings: left gets half (rounded down).
func redistribute(left, right Node) {
	nl, nr := left.NrEntries(), right.NrEntries()
	target := (nl + nr) / 2
	switch {
	case nl > target:
		move := nl - target
		copyEntries(right, move, right, 0, nr)
		copyEntries(right, 0, left, target, move)
		left.SetNrEntries(target)
		right.SetNrEntries(nr + move)
	case nl < target:
		move := target - nl
		copyEntries(left, nl, right, 0, move)
		copyEntries(right, 0, right, move, nr-move)
		left.SetNrEntries(target)
		right.SetNrEntries(nr - move)
	}
}

// rebalance3 merges or evens out children li, li+1 and li+2 of parent.
func rebalance3(tm *transaction.Manager, parent Node, vt *ValueType, li int) error {
	_, left, err := child(tm, parent, vt, li)
	if err != nil {
		return err
	}
	cb, center, err := child(tm, parent, vt, li+1)
	if err != nil {
		return err
	}
	rb, right, err := child(tm, parent, vt, li+2)
	if err != nil {
		return err
	}
	if err := sameKind(origin(tm, cb), left, center); err != nil {
		return err
	}
	if err := sameKind(origin(tm, rb), center, right); err != nil {
		return err
	}
	nl, nc, nr := left.NrEntries(), center.NrEntries(), right.NrEntries()
	if nl+nc+nr < 4*mergeThreshold(left)+1 {
		// Empty the center into its neighbours and drop it.
		toLeft := min(left.MaxEntries()-nl, nc)
		copyEntries(left, nl, center, 0, toLeft)
		left.SetNrEntries(nl + toLeft)
		rest := nc - toLeft
		if rest > 0 {
			copyEntries(right, rest, right, 0, nr)
			copyEntries(right, 0, center, toLeft, rest)
			right.SetNrEntries(nr + rest)
		}
		parent.SetKey(li+2, right.Key(0))
		deleteAt(parent, li+1)
		if err := tm.SpaceMap().Dec(cb); err != nil {
			return err
		}
		return rebalance2(tm, parent, vt, li)
	}
	// Redistribute: right gets a third, left a third plus the remainder's
	// first entry, center the rest.
	t := nl + nc + nr
	tr := t / 3
	tl := tr
	if t%3 != 0 {
		tl++
	}
	tc := t - tl - tr
	distribute3(left, center, right, tl, tc)
	parent.SetKey(li+1, center.Key(0))
	parent.SetKey(li+2, right.Key(0))
	return nil
}

// distribute3 rearranges the entries of three siblings (in key order) so
// that left holds tl and center tc, right the rest.
func distribute3(left, center, right Node, tl, tc int) {
	nl, nc, nr := left.NrEntries(), center.NrEntries(), right.NrEntries()
	t := nl + nc + nr
	vs := left.ValueSize()
	keys := make([]byte, 0, 8*t)
	vals := make([]byte, 0, vs*t)
	for _, n := range []Node{left, center, right} {
		k := n.NrEntries()
		keys = append(keys, n[HeaderSize:HeaderSize+8*k]...)
		vals = append(vals, n[n.valueOffset(0):n.valueOffset(k)]...)
	}
	put := func(n Node, from, cnt int) {
		copy(n[HeaderSize:HeaderSize+8*cnt], keys[8*from:8*(from+cnt)])
		copy(n[n.valueOffset(0):n.valueOffset(cnt)], vals[vs*from:vs*(from+cnt)])
		n.SetNrEntries(cnt)
	}
	put(left, 0, tl)
	put(center, tl, tc)
	put(right, tl+tc, t-tl-tc)
}
