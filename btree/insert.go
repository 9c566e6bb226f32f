package btree

import (
	"github.com/thinmeta/thinmeta/transaction"
)

// Insert stores value under key in the tree rooted at root, overwriting any
// value already there (whose reference is dropped with vt.Dec unless
// vt.Equal says it is the same). The reference held by the new value is
// taken over from the caller. It returns the new root, which the caller must
// adopt even on error-free no-ops: the old root may have been shadowed.
//
// Full nodes are split on the way down, so a parent always has room for a
// new child (FORMAT.md §4.5); every non-root node stays at least half full.
//
// An error ends tm's transaction (Manager.Fail): the tree may be half
// changed.
func Insert(tm *transaction.Manager, root uint64, vt *ValueType, key uint64, value []byte) (newRoot uint64, inserted bool, err error) {
	if len(value) != vt.Size {
		panic("btree: Insert with a value of the wrong size")
	}
	newRoot, inserted, err = insert(tm, root, vt, key, value)
	return newRoot, inserted, tm.Fail(err)
}

func insert(tm *transaction.Manager, root uint64, vt *ValueType, key uint64, value []byte) (newRoot uint64, inserted bool, err error) {
	b, n, err := shadow(tm, root, vt)
	if err != nil {
		return root, false, err
	}
	newRoot = b
	var parent Node
	pidx := -1
	for depth := 0; ; depth++ {
		if depth > MaxDepth {
			return newRoot, false, transaction.Corruptf(origin(tm, b), Kind, ErrDepth, "insert deeper than %d levels", MaxDepth)
		}
		i := n.LowerBound(key)
		overwrite := n.IsLeaf() && i >= 0 && n.Key(i) == key
		if n.NrEntries() >= n.MaxEntries() && !overwrite {
			if parent == nil {
				if err := splitBeneath(tm, n); err != nil {
					return newRoot, false, err
				}
			} else {
				b, n, err = splitIntoTwo(tm, parent, pidx, b, n, key)
				if err != nil {
					return newRoot, false, err
				}
			}
			i = n.LowerBound(key)
		}
		if n.IsLeaf() {
			if i >= 0 && n.Key(i) == key {
				old := n.Value(i)
				if vt.Dec != nil && (vt.Equal == nil || !vt.Equal(old, value)) {
					if err := vt.Dec(old); err != nil {
						return newRoot, false, refError(err, origin(tm, b), n, i)
					}
				}
				n.SetValue(i, value)
				return newRoot, false, nil
			}
			insertAt(n, i+1, key, value)
			return newRoot, true, nil
		}
		if i < 0 {
			// Lower the first bound to cover the new key.
			n.SetKey(0, key)
			i = 0
		}
		cb, cn, err := shadow(tm, n.Uint64Value(i), vt)
		if err != nil {
			return newRoot, false, err
		}
		n.SetUint64Value(i, cb)
		parent, pidx = n, i
		b, n = cb, cn
	}
}

// splitBeneath splits a full root in place: its entries move to two new
// children and the root becomes an internal node pointing at them, so the
// root's block number does not change.
func splitBeneath(tm *transaction.Manager, root Node) error {
	nr := root.NrEntries()
	flags, vs := root.Flags()&(FlagInternal|FlagLeaf), root.ValueSize()
	lb, left, err := newNode(tm, flags, vs)
	if err != nil {
		return err
	}
	rb, right, err := newNode(tm, flags, vs)
	if err != nil {
		return err
	}
	half := nr / 2
	left.SetMaxEntries(root.MaxEntries())
	right.SetMaxEntries(root.MaxEntries())
	copyEntries(left, 0, root, 0, half)
	left.SetNrEntries(half)
	copyEntries(right, 0, root, half, nr-half)
	right.SetNrEntries(nr - half)

	k0, k1 := left.Key(0), right.Key(0)
	Init(root, FlagInternal, InternalValueSize)
	root.SetKey(0, k0)
	root.SetUint64Value(0, lb)
	root.SetKey(1, k1)
	root.SetUint64Value(1, rb)
	root.SetNrEntries(2)
	return nil
}

// splitIntoTwo moves the upper half of full node n (child pidx of parent)
// into a new right sibling, and returns the node that covers key.
func splitIntoTwo(tm *transaction.Manager, parent Node, pidx int, b uint64, n Node, key uint64) (uint64, Node, error) {
	nr := n.NrEntries()
	rb, right, err := newNode(tm, n.Flags()&(FlagInternal|FlagLeaf), n.ValueSize())
	if err != nil {
		return 0, nil, err
	}
	right.SetMaxEntries(n.MaxEntries())
	half := nr / 2
	copyEntries(right, 0, n, half, nr-half)
	right.SetNrEntries(nr - half)
	n.SetNrEntries(half)
	insertAt(parent, pidx+1, right.Key(0), u64(rb))
	if key >= right.Key(0) {
		return rb, right, nil
	}
	return b, n, nil
}
