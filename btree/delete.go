package btree

import (
	"github.com/thinmeta/thinmeta/transaction"
)

// Delete drops one reference to the tree rooted at root (FORMAT.md §4.7): a
// node still referenced elsewhere just loses the reference; a node owned
// only by this tree is freed after its children (and, for leaves, the
// values' references, through vt.Dec) are released.
//
// An error ends tm's transaction (Manager.Fail): the tree may be half
// released.
func Delete(tm *transaction.Manager, root uint64, vt *ValueType) error {
	return tm.Fail(del(tm, root, vt, 0))
}

func del(tm *transaction.Manager, b uint64, vt *ValueType, depth int) error {
	if depth > MaxDepth {
		return transaction.Corruptf(b, Kind, ErrDepth, "delete deeper than %d levels", MaxDepth)
	}
	sm := tm.SpaceMap()
	c, err := sm.Count(b)
	if err != nil {
		return err
	}
	if c > 1 {
		return sm.Dec(b)
	}
	blk, err := tm.Read(b, Validator)
	if err != nil {
		return err
	}
	if err := checkWritable(Node(blk), b, vt); err != nil {
		return err
	}
	// Copy what we need: deeper calls may evict or rewrite buffers.
	n := Node(append([]byte(nil), blk...))
	nr := n.NrEntries()
	if n.IsInternal() {
		for i := range nr {
			if err := del(tm, n.Uint64Value(i), vt, depth+1); err != nil {
				return refError(err, b, n, i)
			}
		}
	} else if vt.Dec != nil {
		for i := range nr {
			if err := vt.Dec(n.Value(i)); err != nil {
				return refError(err, b, n, i)
			}
		}
	}
	return sm.Dec(b)
}
