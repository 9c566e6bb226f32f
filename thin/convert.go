package thin

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/blobindex"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// ConvertOptions describe the format Convert rewrites a pool to.
type ConvertOptions struct {
	// Variant is the format to convert to. Extended needs blobs of
	// BlobSize bytes (1 to MaxBlobSize) and, if IndexBytes > 0, makes an
	// index of the thins by the first IndexBytes bytes of their blobs.
	Variant    Variant
	BlobSize   int
	IndexBytes int
	// NewIDs renumbers thins: a thin whose id is a key gets the value as
	// its new id. Nil keeps every id.
	NewIDs map[uint64]uint64
}

// ErrConvert means a pool cannot be converted as asked.
var ErrConvert = fmt.Errorf("pool cannot be converted")

// Convert rewrites the pool, in the transaction in progress, in the format
// opts describes. The device-details tree is written anew with values of
// the new size: each blob keeps its first bytes up to the new size and is
// padded with zeros (a stock pool's thins get zero blobs); the blob index
// is rebuilt; the superblock's format fields (incompat flag, blob size,
// index bytes, thin count, next id) are set. The next id is one above the
// largest thin id, or kept if the pool was extended already and its
// counter is higher. Renumbered thins keep their mapping trees: only the
// top-level key changes, so every mapping and all sharing stay as they
// were. Convert commits nothing: a crash before the next Commit leaves the
// pool in its old format.
//
// A held metadata snapshot refuses the conversion (its superblock copy
// would keep the old format while sharing the trees); so does an id that
// does not fit the stock format's 24 bits when converting to stock.
//
// A conversion refused for what it asks (an error wrapping ErrSnapshotHeld,
// ErrBlobSize, ErrIDRange, ErrExists or ErrNoDevice) changes nothing; any
// other error ends the transaction, as for every change (see Metadata).
func (m *Metadata) Convert(opts ConvertOptions) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	if m.heldRoot != 0 {
		return fmt.Errorf("%w: %w; release it first", ErrConvert, ErrSnapshotHeld)
	}
	if err := checkVariant(opts.Variant, opts.BlobSize, opts.IndexBytes); err != nil {
		return err
	}
	if err := m.flushDetails(); err != nil {
		return err
	}
	if err := m.vetConvert(opts); err != nil {
		return err
	}
	wasExtended := m.sb.Extended()
	oldRoot, oldVT, oldIndex := m.detailsRoot, m.detailsVT, m.indexRoot
	newVT := &btree.ValueType{Size: DetailsSize + opts.BlobSize}

	// The new blob index, filled as the details are copied.
	m.indexRoot, m.indexBytes = 0, 0
	if opts.Variant == Extended && opts.IndexBytes > 0 {
		root, err := btree.Empty(m.tm, blobindex.VT)
		if err != nil {
			return err
		}
		m.indexRoot, m.indexBytes = root, opts.IndexBytes
	}

	var moved []detailsEntry // renumbered thins, written after the walk in id order
	var count, maxID uint64
	b := btree.NewBuilder(m.tm, newVT)
	walkErr := btree.Tree{R: m.tm, Root: oldRoot, ValueSize: oldVT.Size}.Walk(0, math.MaxUint64, func(id uint64, v []byte) error {
		nv := make([]byte, newVT.Size)
		copy(nv[:DetailsSize], v)
		copy(nv[DetailsSize:], v[DetailsSize:])
		nid := id
		if n, ok := opts.NewIDs[id]; ok {
			nid = n
		}
		count++
		maxID = max(maxID, nid)
		if err := m.indexAdd(nid, nv[DetailsSize:]); err != nil {
			return err
		}
		if nid != id {
			moved = append(moved, detailsEntry{nid, nv})
			return nil
		}
		return b.Add(nid, nv)
	})
	if walkErr != nil {
		return walkErr
	}
	if len(moved) > 0 {
		// Kept ids were added in order; the renumbered ones must join
		// them in order, so the tree is built again from both.
		root, err := b.Finish()
		if err != nil {
			return err
		}
		if root, err = m.renumberDetails(root, newVT, moved); err != nil {
			return err
		}
		b = nil
		m.detailsRoot = root
	}
	if b != nil {
		root, err := b.Finish()
		if err != nil {
			return err
		}
		m.detailsRoot = root
	}
	if err := m.renumberMappings(opts.NewIDs); err != nil {
		return err
	}
	if err := btree.Delete(m.tm, oldRoot, oldVT); err != nil {
		return transaction.RefError(err, superblock.Location, "superblock", fmt.Sprintf("the device details root, block %d", oldRoot))
	}
	if oldIndex != 0 {
		if err := btree.Delete(m.tm, oldIndex, blobindex.VT); err != nil {
			return transaction.RefError(err, superblock.Location, "superblock", fmt.Sprintf("the blob index root, block %d", oldIndex))
		}
	}

	m.blobSize = opts.BlobSize
	m.detailsVT = newVT
	m.sb.BlobSize, m.sb.IndexBytes = uint32(opts.BlobSize), uint32(m.indexBytes)
	if opts.Variant == Extended {
		m.sb.IncompatFlags |= superblock.IncompatBlobs
		next := uint64(0)
		if count > 0 {
			next = maxID + 1
		}
		if wasExtended {
			next = max(next, m.nextID)
		}
		m.nextID, m.nrThins = next, count
	} else {
		m.sb.IncompatFlags &^= superblock.IncompatBlobs
		m.nextID, m.nrThins = 0, 0
	}
	// Every device's details are in the new tree now.
	clear(m.devices)
	return m.tm.Checkpoint()
}

// vetConvert refuses, before anything changes, a conversion whose ids do
// not work out: a thin to renumber that does not exist, two thins given
// one id or a thin given one in use, an id the stock format cannot hold.
// The details tree holds every device (flushDetails has run).
func (m *Metadata) vetConvert(opts ConvertOptions) error {
	var ids []uint64
	err := btree.Tree{R: m.tm, Root: m.detailsRoot, ValueSize: m.detailsVT.Size}.Walk(0, math.MaxUint64, func(id uint64, _ []byte) error {
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return err
	}
	for _, old := range slices.Sorted(maps.Keys(opts.NewIDs)) {
		if _, found := slices.BinarySearch(ids, old); !found {
			return fmt.Errorf("thin %d, to be renumbered: %w", old, ErrNoDevice)
		}
		// Its mapping tree moves too: a thin with details and no tree
		// (a damaged pool) is found before anything changes.
		if _, err := m.root(old); errors.Is(err, ErrNoDevice) {
			return fmt.Errorf("thin %d, to be renumbered: %w: it has details but no mapping tree", old, ErrDetailsMismatch)
		} else if err != nil {
			return err
		}
	}
	taken := make(map[uint64]uint64, len(ids)) // new id -> the thin that has it
	for _, id := range ids {
		nid := id
		if n, ok := opts.NewIDs[id]; ok {
			nid = n
		}
		if opts.Variant != Extended && nid > MaxStockDeviceID {
			return fmt.Errorf("thin %d: %w (the stock format allows ids up to %d)", nid, ErrIDRange, MaxStockDeviceID)
		}
		if nid == math.MaxUint64 {
			// The extended pool's next id, one above its largest, would
			// wrap around to 0 (as CreateThin refuses it).
			return fmt.Errorf("thin %d: %w (the largest id is %d)", nid, ErrIDRange, uint64(math.MaxUint64-1))
		}
		if other, dup := taken[nid]; dup {
			return fmt.Errorf("thins %d and %d would both be thin %d: %w", other, id, nid, ErrExists)
		}
		taken[nid] = id
	}
	return nil
}

// detailsEntry is a device-details value and its key.
type detailsEntry struct {
	id uint64
	v  []byte
}

// renumberDetails merges renumbered entries into the details tree at root
// (which holds the kept ones), refusing an id used twice.
func (m *Metadata) renumberDetails(root uint64, vt *btree.ValueType, moved []detailsEntry) (uint64, error) {
	slices.SortFunc(moved, func(a, b detailsEntry) int { return cmp.Compare(a.id, b.id) })
	for i, e := range moved {
		if i > 0 && moved[i-1].id == e.id { // vetConvert refused this: the tree changed under it
			return root, fmt.Errorf("two thins renumbered to %d: %w", e.id, ErrDetailsMismatch)
		}
		var inserted bool
		var err error
		if root, inserted, err = btree.Insert(m.tm, root, vt, e.id, e.v); err != nil {
			return root, err
		}
		if !inserted {
			return root, fmt.Errorf("thin renumbered to %d, which is in use: %w", e.id, ErrDetailsMismatch)
		}
	}
	return root, nil
}

// renumberMappings moves renumbered devices' mapping trees to their new
// keys in the top level. The reference each entry holds moves with it.
func (m *Metadata) renumberMappings(newIDs map[uint64]uint64) error {
	moveVT := &btree.ValueType{Size: MappingValueSize, Inc: m.topPatchVT.Inc} // no Dec: the reference moves
	roots := make(map[uint64]uint64)
	for _, old := range slices.Sorted(maps.Keys(newIDs)) {
		if newIDs[old] == old {
			continue
		}
		root, err := m.root(old)
		if err != nil {
			return err
		}
		var removed bool
		if m.mappingRoot, removed, err = btree.Remove(m.tm, m.mappingRoot, moveVT, old); err != nil {
			return err
		}
		if !removed {
			return fmt.Errorf("device %d: %w", old, ErrDetailsMismatch)
		}
		roots[newIDs[old]] = root
	}
	for _, id := range slices.Sorted(maps.Keys(roots)) {
		var inserted bool
		var err error
		if m.mappingRoot, inserted, err = btree.Insert(m.tm, m.mappingRoot, moveVT, id, u64(roots[id])); err != nil {
			return err
		}
		if !inserted {
			return fmt.Errorf("device renumbered to %d, which is in use: %w", id, ErrDetailsMismatch) // details had it free
		}
	}
	return nil
}

// flushDetails writes the details changed in this transaction into the
// details tree, in id order: the order of insertion decides the tree's
// shape and block numbers, and commits must be reproducible.
func (m *Metadata) flushDetails() error {
	for _, id := range slices.Sorted(maps.Keys(m.devices)) {
		d := m.devices[id]
		if !d.changed || d.deleted {
			continue
		}
		v := make([]byte, DetailsSize+m.blobSize)
		d.Encode(v)
		copy(v[DetailsSize:], d.blob)
		var err error
		if m.detailsRoot, _, err = btree.Insert(m.tm, m.detailsRoot, m.detailsVT, id, v); err != nil {
			return err
		}
		d.changed = false
	}
	return nil
}

// Extension holds the superblock fields of an extended pool, for
// BuildRoots.
type Extension struct {
	BlobSize, IndexBytes uint32
	NextThinID, NrThins  uint64
	BlobIndexRoot        uint64 // 0 if IndexBytes is 0
}
