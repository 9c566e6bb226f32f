package check

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/blobindex"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// Sentinels for the extended format.
var (
	// ErrExtendedCounters means the superblock's thin count or next id
	// disagrees with the devices (a next id at or below a used id would let
	// an id be used twice).
	ErrExtendedCounters = errors.New("extended superblock counters disagree with the devices")
	// ErrBlobIndex means the blob index does not match the blobs: a thin
	// missing or listed twice, an entry naming no thin or with the wrong
	// hash, or an entry its lookups cannot reach.
	ErrBlobIndex = errors.New("blob index does not match the blobs")
)

type idHash struct{ id, hash uint64 }

type indexEntry struct{ key, id, home uint64 }

// checkExtended checks what the extended format adds: the thin count, the
// next id, and the blob index against the blobs.
func (c *checker) checkExtended(sb *superblock.Superblock) {
	const area = "extended superblock"
	if n := uint64(len(c.details)); sb.NrThins != n {
		c.fatalf(area, nil, fmt.Errorf("%w: thin count %d, the details tree holds %d", ErrExtendedCounters, sb.NrThins, n))
	}
	for id := range c.details {
		if id >= sb.NextThinID {
			dev := id
			c.fatalf(area, &dev, fmt.Errorf("%w: thin %d is at or above the next id %d", ErrExtendedCounters, id, sb.NextThinID))
		}
	}
	if sb.IndexBytes > sb.BlobSize {
		c.fatalf(area, nil, fmt.Errorf("%w: index of %d bytes of a %d-byte blob", ErrBlobIndex, sb.IndexBytes, sb.BlobSize))
		return
	}
	if (sb.IndexBytes == 0) != (sb.BlobIndexRoot == 0) {
		c.fatalf(area, nil, fmt.Errorf("%w: index width %d with index root %d", ErrBlobIndex, sb.IndexBytes, sb.BlobIndexRoot))
		return
	}
	if sb.BlobIndexRoot == 0 {
		return
	}
	const iarea = "blob index"
	var entries []indexEntry
	_, ok := c.walk(sb.BlobIndexRoot, &walkCtx{
		kind: kindBlobIndex, area: iarea, valueSize: blobindex.ValueSize,
		leaf: func(_ uint64, n btree.Node) {
			for i := range n.NrEntries() {
				id, home := blobindex.DecodeValue(n.Value(i))
				entries = append(entries, indexEntry{n.Key(i), id, home})
			}
		},
	})
	if !ok {
		return
	}
	bad := func(format string, args ...any) {
		c.fatalf(iarea, nil, transaction.Corruptf(sb.BlobIndexRoot, "blob index", ErrBlobIndex, format, args...))
	}
	// Every indexed thin appears once, under its own hash.
	byID := slices.Clone(entries)
	slices.SortFunc(byID, func(a, b indexEntry) int { return cmp.Compare(a.id, b.id) })
	for i, e := range byID {
		if i > 0 && byID[i-1].id == e.id {
			bad("thin %d is listed twice", e.id)
			continue
		}
		j := sort.Search(len(c.blobKeys), func(j int) bool { return c.blobKeys[j].id >= e.id })
		if j == len(c.blobKeys) || c.blobKeys[j].id != e.id {
			bad("entry %d names thin %d, which has no indexed key", e.key, e.id)
			continue
		}
		if c.blobKeys[j].hash != e.home {
			bad("entry %d of thin %d has hash %#x, its key hashes to %#x", e.key, e.id, e.home, c.blobKeys[j].hash)
		}
	}
	if len(byID) < len(c.blobKeys) {
		for _, k := range c.blobKeys {
			if _, found := slices.BinarySearchFunc(byID, k.id, func(e indexEntry, id uint64) int { return cmp.Compare(e.id, id) }); !found {
				bad("thin %d is missing", k.id)
			}
		}
	}
	// Lookups probe from an entry's home to the first free key: every key
	// between the home and the entry must be in use. Entries come in key
	// order from the walk.
	for i, e := range entries {
		// Count the keys in [home, key]; with no gaps there are key-home+1.
		lo := sort.Search(len(entries), func(j int) bool { return entries[j].key >= e.home })
		if e.home > e.key || uint64(i-lo) != e.key-e.home {
			bad("entry %d (thin %d, home %#x) is unreachable: a free key lies between its home and it", e.key, e.id, e.home)
		}
	}
}
