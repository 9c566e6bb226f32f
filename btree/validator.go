package btree

import (
	"github.com/thinmeta/thinmeta/transaction"
)

// Kind is the block kind name used in errors about B-tree nodes.
const Kind = "btree node"

// Validator checks a B-tree node as the kernel does when it reads one
// (FORMAT.md §1.3): location, checksum, a capacity that fits the block,
// nr_entries within capacity, and exactly one of the internal and leaf flags.
var Validator = &transaction.Validator{
	Kind:  Kind,
	Salt:  transaction.SaltNode,
	Check: checkHeader,
}

func checkHeader(block []byte, location uint64) error {
	n := Node(block)
	if !n.IsInternal() && !n.IsLeaf() {
		return transaction.Corruptf(location, Kind, ErrNodeHeader, "flags %#x name neither an internal node nor a leaf", n.Flags())
	}
	vs, me, nr := uint64(n.ValueSize()), uint64(n.MaxEntries()), uint64(n.NrEntries())
	if HeaderSize+(8+vs)*me > transaction.BlockSize {
		return transaction.Corruptf(location, Kind, ErrNodeHeader, "max_entries %d with value size %d does not fit a block", me, vs)
	}
	if nr > me {
		return transaction.Corruptf(location, Kind, ErrNodeHeader, "nr_entries %d exceeds max_entries %d", nr, me)
	}
	return nil
}

// CheckKeys verifies that node n (at location) has strictly increasing keys.
func CheckKeys(n Node, location uint64) error {
	nr := n.NrEntries()
	if nr == 0 {
		return nil
	}
	prev := n.Key(0)
	for i := 1; i < nr; i++ {
		k := n.Key(i)
		if k <= prev {
			return transaction.Corruptf(location, Kind, ErrKeyOrder, "key %d (%d) follows %d", i, k, prev)
		}
		prev = k
	}
	return nil
}
