package btree

import (
	"fmt"

	"github.com/thinmeta/thinmeta/transaction"
)

// ValueType tells the B-tree what the values of a tree's leaves are: their
// size and how to manage the references they hold (FORMAT.md §3.6). Any of
// the functions may be nil.
type ValueType struct {
	Size int
	// Inc adds a reference to whatever value v refers to; it is called for
	// every value of a leaf copied while shared.
	Inc func(v []byte) error
	// Dec drops the reference held by v; it is called for values removed
	// or overwritten, and for every value of a tree being deleted.
	Dec func(v []byte) error
	// Equal reports whether overwriting a with b keeps the same reference
	// (so neither Dec nor anything else is needed).
	Equal func(a, b []byte) bool
}

// shadow returns a writable copy of node b of a tree with value type vt,
// adding references to the node's children if b was shared.
func shadow(tm *transaction.Manager, b uint64, vt *ValueType) (uint64, Node, error) {
	// A node shadowed earlier in this transaction was checked then and
	// has been changed only by this package since.
	fresh := !tm.IsShadow(b)
	nb, buf, shared, err := tm.Shadow(b, Validator)
	if err != nil {
		return 0, nil, err
	}
	n := Node(buf)
	// The shadow is made (the copy allocated, the original's reference
	// dropped): a failure from here on leaves the change half made, and
	// ends the transaction.
	if fresh {
		if err := checkWritable(n, b, vt); err != nil {
			return 0, nil, tm.Fail(err)
		}
	}
	if shared {
		if err := incChildren(tm, n, b, vt); err != nil {
			return 0, nil, tm.Fail(err)
		}
	}
	return nb, n, nil
}

// checkWritable holds a node about to be changed or freed to CheckNode.
// Writers do not track where a node sits (the key range its parent gives
// it, whether it is the root), so the node is held to the rules that do
// not depend on its place, and must have room to split. So an empty node
// below a parent, which readers refuse, is accepted: insertions fill it and
// rebalancing merges it away, with right results (fuzz's
// TestWriteEmptyNonRootLeaf), and the writer never makes one (a non-root
// node keeps at least one entry even at three entries a node).
func checkWritable(n Node, b uint64, vt *ValueType) error {
	return CheckNode(n, b, RootPlace(vt.Size), CheckRoom)
}

// incChildren adds a reference to everything node n (block b) points at.
func incChildren(tm *transaction.Manager, n Node, b uint64, vt *ValueType) error {
	nr := n.NrEntries()
	if n.IsInternal() {
		sm := tm.SpaceMap()
		for i := range nr {
			if err := sm.Inc(n.Uint64Value(i)); err != nil {
				return refError(err, b, n, i)
			}
		}
		return nil
	}
	if vt.Inc == nil {
		return nil
	}
	for i := range nr {
		if err := vt.Inc(n.Value(i)); err != nil {
			return refError(err, b, n, i)
		}
	}
	return nil
}

// origin names block b of tm's transaction in an error: the block of the
// last commit it copies (what is on the device), or b if it is new.
func origin(tm *transaction.Manager, b uint64) uint64 {
	if o := tm.Origin(b); o != 0 {
		return o
	}
	return b
}

// refError is transaction.RefError for the reference entry i of node n
// (block b) holds: a child or a value.
func refError(err error, b uint64, n Node, i int) error {
	what := "value"
	if n.IsInternal() {
		what = "child"
	}
	return transaction.RefError(err, b, Kind, fmt.Sprintf("the %s of entry %d (key %d)", what, i, n.Key(i)))
}

// Empty creates an empty tree (a leaf with no entries) and returns its root.
func Empty(tm *transaction.Manager, vt *ValueType) (uint64, error) {
	b, buf, err := tm.New(Validator)
	if err != nil {
		return 0, err
	}
	Init(buf, FlagLeaf, vt.Size)
	return b, nil
}

// newNode allocates a node with the given flags and value size.
func newNode(tm *transaction.Manager, flags uint32, valueSize int) (uint64, Node, error) {
	b, buf, err := tm.New(Validator)
	if err != nil {
		return 0, nil, err
	}
	Init(buf, flags, valueSize)
	return b, Node(buf), nil
}

// copyEntries copies n entries from src[si:] to dst[di:] (both nodes of the
// same value size); the ranges may overlap within one node.
func copyEntries(dst Node, di int, src Node, si int, n int) {
	if n <= 0 {
		return
	}
	copy(dst[HeaderSize+8*di:HeaderSize+8*(di+n)], src[HeaderSize+8*si:HeaderSize+8*(si+n)])
	vs := src.ValueSize()
	copy(dst[dst.valueOffset(di):dst.valueOffset(di)+n*vs], src[src.valueOffset(si):src.valueOffset(si)+n*vs])
}

// insertAt opens slot i of n (shifting entries right) and stores key and
// value there.
func insertAt(n Node, i int, key uint64, value []byte) {
	nr := n.NrEntries()
	copyEntries(n, i+1, n, i, nr-i)
	n.SetKey(i, key)
	n.SetValue(i, value)
	n.SetNrEntries(nr + 1)
}

// deleteAt removes entry i of n, shifting later entries left. Stale bytes
// are left beyond the new end, as the kernel leaves them.
func deleteAt(n Node, i int) {
	nr := n.NrEntries()
	copyEntries(n, i, n, i+1, nr-i-1)
	n.SetNrEntries(nr - 1)
}
