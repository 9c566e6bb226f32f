package btree

import (
	"github.com/thinmeta/thinmeta/transaction"
)

// Kind is the block kind name used in errors about B-tree nodes.
const Kind = "btree node"

// Validator checks a B-tree node's header when it is read (part 1 of the
// definition of a sound node in node.go; FORMAT.md §1.3, §3.1): location,
// checksum, a flags word that is exactly FlagInternal or exactly FlagLeaf,
// a capacity that fits the block, and nr_entries within capacity.
var Validator = &transaction.Validator{
	Kind:  Kind,
	Salt:  transaction.SaltNode,
	Check: checkHeader,
}

func checkHeader(block []byte, location uint64) error {
	n := Node(block)
	if f := n.Flags(); f != FlagInternal && f != FlagLeaf {
		// The kernel only asks for one of the two bits; thin_check 1.1.0
		// takes any word but the leaf flag alone for an internal node, and
		// 0.9.0 ignores the other bits. A word with other bits was not
		// written by any of them: refuse it.
		return transaction.Corruptf(location, Kind, ErrNodeFlags, "flags %#x", f)
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
