package btree

import (
	"encoding/binary"

	"github.com/thinmeta/thinmeta/transaction"
)

// Node header layout (FORMAT.md §3.1). The first 16 bytes are the shared
// checksummed header of package transaction.
const (
	offFlags      = 4
	offNrEntries  = 16
	offMaxEntries = 20
	offValueSize  = 24
	// HeaderSize is the size of a node header; keys start right after it.
	HeaderSize = 32
)

// Node flags (FORMAT.md §3.3).
const (
	FlagInternal uint32 = 1
	FlagLeaf     uint32 = 2
)

// InternalValueSize is the value size of every internal node: a child
// block number.
const InternalValueSize = 8

// MaxEntries returns the capacity the kernel gives a node whose values are
// valueSize bytes: as many entries as fit, rounded down to a multiple of 3
// (FORMAT.md §3.4). It returns 0 for values too large to fit three entries.
func MaxEntries(valueSize int) int {
	if valueSize < 0 {
		return 0
	}
	n := (transaction.BlockSize - HeaderSize) / (8 + valueSize)
	return n / 3 * 3
}

// MaxValueSize is the largest value size for which a node holds at least
// three entries.
const MaxValueSize = (transaction.BlockSize-HeaderSize)/3 - 8

// Node is a read view of a 4096-byte B-tree node block. Accessors do not
// check bounds against nr_entries; read the block through Validator (and
// CheckNode it) first.
type Node []byte

// Flags returns the raw flags word.
func (n Node) Flags() uint32 { return binary.LittleEndian.Uint32(n[offFlags:]) }

// Blocknr returns the location the node claims for itself.
func (n Node) Blocknr() uint64 { return binary.LittleEndian.Uint64(n[8:]) }

// NrEntries returns the number of valid entries.
func (n Node) NrEntries() int { return int(binary.LittleEndian.Uint32(n[offNrEntries:])) }

// MaxEntries returns the node's capacity.
func (n Node) MaxEntries() int { return int(binary.LittleEndian.Uint32(n[offMaxEntries:])) }

// ValueSize returns the size of each value in bytes.
func (n Node) ValueSize() int { return int(binary.LittleEndian.Uint32(n[offValueSize:])) }

// IsInternal reports whether the flags word is exactly FlagInternal.
func (n Node) IsInternal() bool { return n.Flags() == FlagInternal }

// IsLeaf reports whether the flags word is exactly FlagLeaf.
func (n Node) IsLeaf() bool { return n.Flags() == FlagLeaf }

// Key returns key i.
func (n Node) Key(i int) uint64 { return binary.LittleEndian.Uint64(n[HeaderSize+8*i:]) }

func (n Node) valueOffset(i int) int { return HeaderSize + 8*n.MaxEntries() + i*n.ValueSize() }

// Value returns value i; the slice aliases the node.
func (n Node) Value(i int) []byte {
	off := n.valueOffset(i)
	return n[off : off+n.ValueSize()]
}

// Uint64Value returns value i of a node whose values are 8 bytes (internal
// nodes, mapping leaves).
func (n Node) Uint64Value(i int) uint64 {
	return binary.LittleEndian.Uint64(n[HeaderSize+8*n.MaxEntries()+8*i:])
}

// ValueBytes returns the raw bytes of the first NrEntries values.
func (n Node) ValueBytes() []byte {
	off := HeaderSize + 8*n.MaxEntries()
	return n[off : off+n.NrEntries()*n.ValueSize()]
}

// Init turns block into an empty node with the given flags and value size and
// the kernel's capacity for that value size. The rest of the block is zeroed.
func Init(block []byte, flags uint32, valueSize int) {
	clear(block[:transaction.BlockSize])
	binary.LittleEndian.PutUint32(block[offFlags:], flags)
	binary.LittleEndian.PutUint32(block[offMaxEntries:], uint32(MaxEntries(valueSize)))
	binary.LittleEndian.PutUint32(block[offValueSize:], uint32(valueSize))
}

// maxUint64Entries is MaxEntries of nodes whose values are 8 bytes.
var maxUint64Entries = MaxEntries(8)

// InitUint64 turns block into a node with the given flags, 8-byte values
// and the entries keys[i], values[i], the kernel's capacity, and zeros
// everywhere else, as Init followed by SetKey, SetUint64Value and
// SetNrEntries would, but writing each byte once: block need not be zeroed
// first. It panics if there are more entries than fit, or keys and values
// differ in length.
func InitUint64(block []byte, flags uint32, keys, values []uint64) {
	n, max := len(keys), maxUint64Entries
	if len(values) != n || n > max {
		panic("btree.InitUint64: bad entries")
	}
	block = block[:transaction.BlockSize]
	clear(block[:HeaderSize])
	le := binary.LittleEndian
	le.PutUint32(block[offFlags:], flags)
	le.PutUint32(block[offNrEntries:], uint32(n))
	le.PutUint32(block[offMaxEntries:], uint32(max))
	le.PutUint32(block[offValueSize:], 8)
	kb := block[HeaderSize : HeaderSize+8*max]
	for i, k := range keys {
		le.PutUint64(kb[8*i:], k)
	}
	clear(kb[8*n:])
	vb := block[HeaderSize+8*max : HeaderSize+16*max]
	for i, v := range values {
		le.PutUint64(vb[8*i:], v)
	}
	clear(vb[8*n:])
	clear(block[HeaderSize+16*max:])
}

// SetNrEntries sets the number of valid entries.
func (n Node) SetNrEntries(nr int) { binary.LittleEndian.PutUint32(n[offNrEntries:], uint32(nr)) }

// SetFlags sets the flags word.
func (n Node) SetFlags(f uint32) { binary.LittleEndian.PutUint32(n[offFlags:], f) }

// SetMaxEntries sets the capacity; it moves where the values start.
func (n Node) SetMaxEntries(m int) { binary.LittleEndian.PutUint32(n[offMaxEntries:], uint32(m)) }

// SetValueSize sets the value size.
func (n Node) SetValueSize(s int) { binary.LittleEndian.PutUint32(n[offValueSize:], uint32(s)) }

// SetKey sets key i.
func (n Node) SetKey(i int, k uint64) { binary.LittleEndian.PutUint64(n[HeaderSize+8*i:], k) }

// SetValue copies v into value slot i.
func (n Node) SetValue(i int, v []byte) { copy(n.Value(i), v) }

// SetUint64Value sets value i of a node whose values are 8 bytes.
func (n Node) SetUint64Value(i int, v uint64) {
	binary.LittleEndian.PutUint64(n[HeaderSize+8*n.MaxEntries()+8*i:], v)
}

// LowerBound returns the index of the last key ≤ key, or -1 if every key is
// greater (FORMAT.md §4.1).
func (n Node) LowerBound(key uint64) int {
	lo, hi := 0, n.NrEntries() // invariant: keys[<lo] ≤ key, keys[≥hi] > key
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.Key(m) <= key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// UpperBound returns the index of the first key ≥ key, or NrEntries if none.
func (n Node) UpperBound(key uint64) int {
	lo, hi := 0, n.NrEntries()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.Key(m) < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// u64 encodes an 8-byte value (a child block number).
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// decodeU64 decodes an 8-byte value.
func decodeU64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
