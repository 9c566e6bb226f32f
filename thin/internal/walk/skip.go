package walk

import (
	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
)

// MappingsSkipping is Mappings, except that skip is asked about every node
// block before the node is read: a node for which it returns true is
// neither read nor descended into. Both levels of the mapping tree hold
// 8-byte values, so it walks the top level (device id → root) too.
//
// Nodes are checked as Mappings checks them.
func MappingsSkipping(r btree.BlockReader, root uint64, skip func(b uint64) bool, fn func(b uint64, l Leaf) error) error {
	w := walker(r, root, thin.MappingValueSize)
	w.Enter = func(b uint64, _ btree.Place) bool { return !skip(b) }
	return leaves(w, func(b uint64, n btree.Node) error { return fn(b, leafOf(n)) })
}
