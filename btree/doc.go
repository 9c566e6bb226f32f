// Package btree is the B-tree of the kernel's persistent-data library as
// dm-thin stores it: 4 KiB nodes of a 32-byte header, then up to
// max_entries little-endian 64-bit keys, then as many fixed-size values
// (docs/FORMAT.md §3). Keys are unique and sorted; an internal node's
// values are child block numbers and its keys the lowest key of each
// child. A dm-thin mapping is two trees deep (device id, then virtual
// block), each level an ordinary tree of its own.
//
// Reading: a Tree (a BlockReader, a root and the leaves' value size) looks
// up one key (Lookup), walks a range of entries, leaves or nodes in key
// order (Walk, WalkLeaves, WalkNodes), or steps through entries with a
// Cursor. Every node read is validated (checksum, location, header,
// value size, keys strictly increasing and inside the range the parent
// gives) and a typed error names the block: errors.Is with ErrNodeHeader,
// ErrValueSize, ErrKeyOrder, ErrKeyRange, ErrDepth or the sentinels of
// package transaction, errors.As with *transaction.CorruptError.
//
// Writing goes through a *transaction.Manager, copy-on-write: Insert and
// Remove shadow the path from the root (a shared node is copied, and the
// references its children gain are counted through the ValueType), split
// and rebalance as the kernel does (§4.5, §4.6), and return the new root;
// Delete drops a whole tree's references (§4.7); Empty makes an empty
// tree; Builder writes a new tree bottom-up from sorted entries, each
// node once (as thin_restore does). A ValueType says how large a tree's
// values are and how to count the references they hold (a mapping holds
// a data block, a top-level entry a subtree).
//
// Trees read through a transaction.Reader are safe for concurrent use by
// any number of goroutines, as the Reader is; a Cursor is not (one
// goroutine steps it). Writes are not safe for concurrent use: the
// Manager they go through belongs to one goroutine.
package btree
