package btree

import (
	"errors"
	"fmt"
)

// Sentinels for damaged B-tree nodes; *transaction.CorruptError unwraps to
// them.
var (
	// ErrStop, returned by a walk callback, ends the walk without error.
	ErrStop = errors.New("stop walking")
	// ErrNodeHeader means a node header is impossible: unknown node type,
	// capacity that does not fit the block, more entries than capacity.
	ErrNodeHeader = errors.New("bad btree node header")
	// ErrNodeFlags means a node's flags word is not exactly the internal
	// flag or exactly the leaf flag. It wraps ErrNodeHeader.
	ErrNodeFlags = fmt.Errorf("%w: flags name no single node type", ErrNodeHeader)
	// ErrValueSize means a node's value size differs from the tree's.
	ErrValueSize = errors.New("unexpected value size")
	// ErrKeyOrder means keys within a node are not strictly increasing.
	ErrKeyOrder = errors.New("keys out of order")
	// ErrKeyRange means a node's keys fall outside the range its parent
	// gives it, or overlap the keys of the previous leaf.
	ErrKeyRange = errors.New("keys outside the range given by the parent")
	// ErrNextKey means a node holds keys at or above its parent's next
	// key, where lookups never go. It wraps ErrKeyRange.
	ErrNextKey = fmt.Errorf("%w: reaching the parent's next key", ErrKeyRange)
	// ErrUnderfull means a non-root node has fewer than max_entries/3
	// entries. The kernel can read such a tree; thin_check reports it.
	ErrUnderfull = errors.New("too few entries in non-root node")
	// ErrMaxEntries means max_entries is not a multiple of 3.
	ErrMaxEntries = errors.New("max_entries not a multiple of 3")
	// ErrDepth means the tree is deeper than any valid tree can be, or a
	// cycle was found.
	ErrDepth = errors.New("tree too deep or cyclic")
)
