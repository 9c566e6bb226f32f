package spacemap

import (
	"errors"
	"fmt"
	"iter"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/transaction"
)

// Block kinds used in errors.
const (
	KindBitmap = "space map bitmap"
	KindIndex  = "metadata space map index"
)

// BitmapValidator checks a bitmap block.
var BitmapValidator = &transaction.Validator{Kind: KindBitmap, Salt: transaction.SaltBitmap}

// IndexValidator checks the metadata space map's index block.
var IndexValidator = &transaction.Validator{Kind: KindIndex, Salt: transaction.SaltIndex}

// Sentinels for damaged space maps.
var (
	// ErrIndex means the bitmap index is inconsistent with the root: wrong
	// number of entries, keys not 0..n-1, or too many bitmaps.
	ErrIndex = errors.New("bad space map index")
	// ErrOverflow means a bitmap entry says 3 but the overflow tree has no
	// count (or a count below 3) for the block.
	ErrOverflow = errors.New("bad overflow reference count")
	// ErrBlockRange means a block number at or beyond the space map's size
	// was asked for. It is transaction.ErrBlockRange (one value, so the
	// B-tree writer, below this package, can recognise it).
	ErrBlockRange = transaction.ErrBlockRange
)

// IndexEntryValueSize is the value size of the data space map's index tree.
const IndexEntryValueSize = IndexEntrySize

// Map is a read view of a data or metadata space map. It is safe for
// concurrent use: nothing in it changes after it is opened, and its blocks
// come through a transaction.Reader.
type Map struct {
	r        *transaction.Reader
	root     Root
	metadata bool
	index    []IndexEntry
}

// NrBitmaps returns the number of bitmaps needed to track nrBlocks blocks.
func NrBitmaps(nrBlocks uint64) uint64 {
	return nrBlocks/EntriesPerBitmap + min(nrBlocks%EntriesPerBitmap, 1)
}

// OpenData opens the data space map whose root is in slot (a superblock's
// data space-map root slot).
func OpenData(r *transaction.Reader, slot []byte) (*Map, error) {
	m := &Map{r: r, root: DecodeRoot(slot)}
	want := NrBitmaps(m.root.NrBlocks)
	t := btree.Tree{R: r, Root: m.root.BitmapRoot, ValueSize: IndexEntrySize}
	err := t.Walk(0, ^uint64(0), func(k uint64, v []byte) error {
		if k != uint64(len(m.index)) || k >= want {
			return transaction.Corruptf(m.root.BitmapRoot, "data space map index", ErrIndex,
				"index key %d where %d expected (space map of %d blocks needs %d bitmaps)", k, len(m.index), m.root.NrBlocks, want)
		}
		m.index = append(m.index, DecodeIndexEntry(v))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if uint64(len(m.index)) != want {
		return nil, transaction.Corruptf(m.root.BitmapRoot, "data space map index", ErrIndex,
			"%d index entries, %d needed for %d blocks", len(m.index), want, m.root.NrBlocks)
	}
	return m, nil
}

// OpenMetadata opens the metadata space map whose root is in slot.
func OpenMetadata(r *transaction.Reader, slot []byte) (*Map, error) {
	m := &Map{r: r, root: DecodeRoot(slot), metadata: true}
	want := NrBitmaps(m.root.NrBlocks)
	if want > MaxMetadataBitmaps {
		return nil, transaction.Corruptf(m.root.BitmapRoot, KindIndex, ErrIndex,
			"%d metadata blocks need %d bitmaps, more than the index holds", m.root.NrBlocks, want)
	}
	blk, err := r.Read(m.root.BitmapRoot, IndexValidator)
	if err != nil {
		return nil, err
	}
	m.index = make([]IndexEntry, want)
	for i := range m.index {
		m.index[i] = MetadataIndexEntry(blk, i)
	}
	return m, nil
}

// Root returns the space map's root.
func (m *Map) Root() Root { return m.root }

// NrBlocks returns the number of blocks tracked.
func (m *Map) NrBlocks() uint64 { return m.root.NrBlocks }

// NrAllocated returns the number of blocks the root says have a non-zero
// count.
func (m *Map) NrAllocated() uint64 { return m.root.NrAllocated }

// IsMetadata reports whether this is a metadata space map.
func (m *Map) IsMetadata() bool { return m.metadata }

// Index returns the bitmap index entries. The slice must not be modified.
func (m *Map) Index() []IndexEntry { return m.index }

func (m *Map) overflow() btree.Tree {
	return btree.Tree{R: m.r, Root: m.root.RefCountRoot, ValueSize: RefCountValueSize}
}

// Count returns the reference count of block b.
func (m *Map) Count(b uint64) (uint32, error) {
	if b >= m.root.NrBlocks {
		return 0, fmt.Errorf("count of block %d: %w (%d blocks)", b, ErrBlockRange, m.root.NrBlocks)
	}
	ie := m.index[b/EntriesPerBitmap]
	blk, err := m.r.Read(ie.Blocknr, BitmapValidator)
	if err != nil {
		return 0, err
	}
	c := BitmapEntry(blk, int(b%EntriesPerBitmap))
	if c < 3 {
		return c, nil
	}
	v, ok, err := m.overflow().Lookup(b)
	if err != nil {
		return 0, err
	}
	if !ok || DecodeRefCount(v) < 3 {
		return 0, transaction.Corruptf(m.root.RefCountRoot, "space map overflow tree", ErrOverflow,
			"block %d is marked 3+ in its bitmap but has no overflow count", b)
	}
	return DecodeRefCount(v), nil
}

// Counts yields every block with a non-zero count and its count, in block
// order, reading each bitmap once and the overflow tree once. A damaged
// block ends the sequence with a non-nil error (and block 0, count 0).
func (m *Map) Counts() iter.Seq2[BlockCount, error] {
	return func(yield func(BlockCount, error) bool) {
		next, stop := iter.Pull2(m.overflowSeq())
		defer stop()
		var ovKey uint64
		var ovVal uint32
		ovOK := false
		var ovErr error
		advance := func() {
			var e entryOrErr
			e, ovErr, ovOK = next()
			ovKey, ovVal = e.k, e.v
		}
		advance()
		buf := make([]byte, transaction.BlockSize)
		for i, ie := range m.index {
			if err := m.r.ReadInto(ie.Blocknr, buf, BitmapValidator); err != nil {
				yield(BlockCount{}, err)
				return
			}
			base := uint64(i) * EntriesPerBitmap
			for w := range wordsPerBitmap {
				word := BitmapWord(buf, w)
				if word == 0 {
					continue
				}
				for j := range 32 {
					raw := (word >> (2 * j)) & 3
					if raw == 0 {
						continue
					}
					b := base + uint64(32*w+j)
					if b >= m.root.NrBlocks {
						break
					}
					c := uint32((raw&1)<<1 | raw>>1)
					if c == 3 {
						for ovOK && ovErr == nil && ovKey < b {
							advance()
						}
						if ovErr != nil {
							yield(BlockCount{}, ovErr)
							return
						}
						if !ovOK || ovKey != b || ovVal < 3 {
							yield(BlockCount{}, transaction.Corruptf(m.root.RefCountRoot, "space map overflow tree", ErrOverflow,
								"block %d is marked 3+ in its bitmap but has no overflow count", b))
							return
						}
						c = ovVal
					}
					if !yield(BlockCount{Block: b, Count: c}, nil) {
						return
					}
				}
			}
		}
	}
}

// BlockCount is a block number and its reference count.
type BlockCount struct {
	Block uint64
	Count uint32
}

type entryOrErr struct {
	k uint64
	v uint32
}

func (m *Map) overflowSeq() iter.Seq2[entryOrErr, error] {
	return func(yield func(entryOrErr, error) bool) {
		err := m.overflow().Walk(0, ^uint64(0), func(k uint64, v []byte) error {
			if !yield(entryOrErr{k, DecodeRefCount(v)}, nil) {
				return btree.ErrStop
			}
			return nil
		})
		if err != nil {
			yield(entryOrErr{}, err)
		}
	}
}

// MetadataBlocks calls fn for every metadata block the space map itself
// occupies: its index (the index block, or the index tree's nodes), its
// bitmaps and its overflow tree's nodes. A block is reported once per
// reference, so a damaged map may report a block twice.
func (m *Map) MetadataBlocks(fn func(b uint64) error) error {
	if m.metadata {
		if err := fn(m.root.BitmapRoot); err != nil {
			return err
		}
	} else {
		t := btree.Tree{R: m.r, Root: m.root.BitmapRoot, ValueSize: IndexEntrySize}
		if err := t.WalkNodes(func(b uint64, _ btree.Node) error { return fn(b) }); err != nil {
			return err
		}
	}
	for _, ie := range m.index {
		if err := fn(ie.Blocknr); err != nil {
			return err
		}
	}
	return m.overflow().WalkNodes(func(b uint64, _ btree.Node) error { return fn(b) })
}
