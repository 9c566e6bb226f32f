package thin

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// Errors of the write path.
var (
	// ErrExists means a thin device id is already in use.
	ErrExists = errors.New("thin device already exists")
	// ErrTransactionID means a set_transaction_id's expected current id
	// did not match.
	ErrTransactionID = errors.New("transaction id does not match")
	// ErrIDRange means a device id is beyond what the format allows.
	ErrIDRange = errors.New("thin device id out of range")
	// ErrSnapshotHeld means a metadata snapshot already exists.
	ErrSnapshotHeld = errors.New("a metadata snapshot is already held")
	// ErrNeedsCheck means the pool's needs_check flag is set: it must be
	// checked (and the flag cleared) before it is written.
	ErrNeedsCheck = errors.New("pool has needs_check set; check it before writing")
	// ErrShrink means a space map was asked to shrink.
	ErrShrink = errors.New("space maps cannot shrink")
	// ErrMapped means a virtual block is already mapped (MapNew).
	ErrMapped = errors.New("virtual block already mapped")
	// ErrMappedTwice means a device would map two virtual blocks to one
	// data block (MapTo). The kernel never writes that (each write to a
	// thin gets a data block of its own, and a snapshot shares its
	// origin's at the same virtual blocks), and thin_check 1.1.0 counts a
	// data block's references as if no thin does it, so it rejects such a
	// pool.
	ErrMappedTwice = errors.New("the device already maps that data block at another virtual block")
	// ErrUnmapped means a virtual block has no mapping.
	ErrUnmapped = errors.New("virtual block not mapped")
	// ErrIDReused means an extended pool was asked to create a device with
	// an id that may have been used before.
	ErrIDReused = errors.New("thin device id may have been used before")
	// ErrNotExtended means a blob operation on a stock pool.
	ErrNotExtended = errors.New("pool is not of the extended format (no blobs)")
	// ErrBlobSize means a blob, key or index of a size the pool cannot
	// take; the error wrapping it says which and why (a blob longer than
	// the pool's, an index wider than the blob, ...).
	ErrBlobSize = errors.New("bad blob size")
)

// MaxStockDeviceID is the largest thin id the kernel accepts (24 bits).
const MaxStockDeviceID = 1<<24 - 1

// Metadata is a pool's metadata opened for changes. Changes are made in a
// transaction that Commit makes durable atomically and Abort discards; a
// crash at any point leaves the previous or the new commit. It is not safe
// for concurrent use (the views it hands out are safe for concurrent
// readers, but not while it changes the transaction they read).
//
// After Close every method with an error result returns ErrClosed, and
// the views taken from it (View, Committed) end; the accessors without
// one (Superblock, Time, NextID, ...) keep answering with the last
// values, and SetNeedsCheck does nothing. Close is idempotent.
//
// After a failed call the transaction is in one of two states. A call
// refused for what it was asked — an error wrapping ErrNoDevice,
// ErrExists, ErrIDRange, ErrIDReused, ErrNotExtended, ErrBlobSize,
// ErrMapped, ErrMappedTwice, ErrUnmapped, ErrTransactionID, ErrShrink,
// ErrRange, ErrMetadataTooSmall, ErrSnapshotHeld, ErrNoDataSpace or
// superblock.ErrNoMetadataSnapshot — changed nothing (MapRange keeps the
// blocks it mapped before the data device filled up): the transaction
// goes on and can be committed. Any other error of a call that changes
// the transaction — ErrNoMetadataSpace, an I/O error, damage found while
// changing a tree (a *transaction.CorruptError), ErrDetailsMismatch — may
// have left a change half made, so it ends the transaction: every later
// change and Commit then fail with an error wrapping
// transaction.ErrFailed (and the first failure) until Abort returns to the
// last commit. FreeMetadataBlocks says how much room a batch has.
type Metadata struct {
	dev    transaction.Device
	tm     *transaction.Manager
	msm    *spacemap.Writable
	dsm    *spacemap.Writable
	sb     superblock.Superblock // the committed superblock, updated at commit
	closer func() error
	// gate is the Reader the views taken from the writer derive from:
	// Close closes it, and so ends them.
	gate   *transaction.Reader
	closed atomic.Bool // read by Committed from other goroutines (Open)

	// State of the transaction in progress.
	time        uint32
	transID     uint64
	flags       uint32
	heldRoot    uint64
	mappingRoot uint64
	detailsRoot uint64
	devices     map[uint64]*devState // details of devices touched this transaction
	snapTaken   bool

	// Extended format (zero for a stock pool).
	blobSize   int
	indexBytes int
	nextID     uint64
	nrThins    uint64
	indexRoot  uint64

	bottomVT, topVT, topPatchVT, detailsVT *btree.ValueType
}

type devState struct {
	Details
	blob []byte // extended pools: the blob (blobSize bytes)
	// changed: the details entry is written at commit. Like the kernel's
	// td->changed it is set by creation, by a snapshot of the device and
	// by every edit of its mappings, whatever the values end up being: the
	// details leaf is then shadowed in every transaction that shadows the
	// device's mapping tree, so a held metadata snapshot never shares the
	// details of a device whose mappings moved (thin_check 1.1.0 requires
	// that).
	changed bool
	deleted bool
	// reserved: the id was handed out by AllocateID in this transaction
	// and no device has it yet (deleted is set too).
	reserved bool
	// root, when rootKnown, is the device's mapping-tree root in this
	// transaction, and its path through the top level has been shadowed
	// (it stays writable until the commit).
	root      uint64
	rootKnown bool
}

func (m *Metadata) initValueTypes() {
	m.bottomVT = &btree.ValueType{
		Size: MappingValueSize,
		Inc: func(v []byte) error {
			b, _ := UnpackBlockTime(decodeU64(v))
			return m.dsm.Inc(b)
		},
		Dec: func(v []byte) error {
			b, _ := UnpackBlockTime(decodeU64(v))
			return m.dsm.Dec(b)
		},
		// No Equal: MapTo's caller always hands over a reference, so
		// the replaced value's is dropped even when it names the same
		// data block (else that block would keep one count too many).
	}
	incRoot := func(v []byte) error { return m.msm.Inc(decodeU64(v)) }
	m.topVT = &btree.ValueType{
		Size: MappingValueSize,
		Inc:  incRoot,
		Dec: func(v []byte) error {
			return btree.Delete(m.tm, decodeU64(v), m.bottomVT)
		},
		Equal: func(a, b []byte) bool { return string(a) == string(b) },
	}
	// Patching a device's root after its tree was shadowed: the old root's
	// reference was already dropped by the shadowing.
	m.topPatchVT = &btree.ValueType{Size: MappingValueSize, Inc: incRoot}
	m.sizeDetails()
}

// sizeDetails sets the details' value type from the blob size (at open,
// and at each begin: after an aborted Convert, the committed size).
func (m *Metadata) sizeDetails() {
	m.detailsVT = &btree.ValueType{Size: DetailsSize + m.blobSize}
}

// Manager returns the transaction manager (for statistics and tests).
func (m *Metadata) Manager() *transaction.Manager { return m.tm }

// Close ends the writer: uncommitted changes are lost, the views taken
// from it end (their reads fail with ErrClosed) and the device is closed
// if Metadata opened it. A second Close does nothing and returns nil.
func (m *Metadata) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	m.gate.Close()
	if m.closer == nil {
		return nil
	}
	return m.closer()
}

// refusals are the errors of a call refused for what it was asked, which
// changes nothing (see Metadata).
var refusals = []error{ErrNoDevice, ErrExists, ErrIDRange, ErrIDReused, ErrNotExtended, ErrBlobSize,
	ErrMapped, ErrMappedTwice, ErrUnmapped, ErrTransactionID, ErrShrink, ErrRange, ErrMetadataTooSmall,
	ErrSnapshotHeld, ErrNoDataSpace, superblock.ErrNoMetadataSnapshot, ErrClosed}

// ended is deferred by every call that changes the transaction: an error
// that is not a refusal may have left a change half made (damage found in
// a tree part way through, a reference count that cannot be dropped), so
// it ends the transaction (transaction.Manager.Fail) until Abort.
func (m *Metadata) ended(err *error) {
	if *err == nil {
		return
	}
	for _, r := range refusals {
		if errors.Is(*err, r) {
			return
		}
	}
	m.tm.Fail(*err)
}

// usable returns ErrClosed once the writer is closed.
func (m *Metadata) usable() error {
	if m.closed.Load() {
		return ErrClosed
	}
	return nil
}

// size returns the size of the metadata device in bytes.
func (m *Metadata) size() int64 { return int64(m.tm.NrBlocks()) * transaction.BlockSize }

// Superblock returns the last committed superblock.
func (m *Metadata) Superblock() superblock.Superblock { return m.sb }

// Time returns the pool's snapshot time counter in this transaction.
func (m *Metadata) Time() uint32 { return m.time }

// TransactionID returns the transaction id in this transaction.
func (m *Metadata) TransactionID() uint64 { return m.transID }

// NeedsCheck reports whether the needs_check flag is set.
func (m *Metadata) NeedsCheck() bool { return m.flags&superblock.FlagNeedsCheck != 0 }

// DataSpaceMap returns the data space map (counts of data blocks) of the
// transaction. It belongs to the writer and must not be used after Close.
func (m *Metadata) DataSpaceMap() *spacemap.Writable { return m.dsm }

// MetadataSpaceMap returns the metadata space map of the transaction. It
// belongs to the writer and must not be used after Close.
func (m *Metadata) MetadataSpaceMap() *spacemap.Writable { return m.msm }

// FreeMetadataBlocks returns how many metadata blocks the transaction can
// still allocate: free now and at the last commit, and not held by an
// open view of an earlier commit. A change takes a few blocks (a new
// mapping about one per tree level it shadows, a new thin a handful),
// and Commit some more for the space maps; a batch that would need more
// fails with ErrNoMetadataSpace.
func (m *Metadata) FreeMetadataBlocks() (uint64, error) {
	if err := m.usable(); err != nil {
		return 0, err
	}
	return m.msm.Allocatable()
}

// FreeDataBlocks returns how many data blocks Map can still allocate in
// this transaction (free now and at the last commit).
func (m *Metadata) FreeDataBlocks() (uint64, error) {
	if err := m.usable(); err != nil {
		return 0, err
	}
	return m.dsm.Allocatable()
}

// View returns a read-only view of the transaction in progress, as Commit
// would write it: the device details and the space maps are brought up to
// date in the transaction first (as Commit does), so everything that
// reads a pool (check.Pool, dump, the space maps, ...) reads the same
// content through it as through a view of the commit. It is good until
// the transaction next changes (any change, Commit or Abort): then its
// reads fail with ErrTransactionChanged. It ends when the writer is
// closed. If the transaction cannot be brought up to date (no metadata
// space, a failed read), the view's reads fail with that error.
func (m *Metadata) View() *Pool {
	err := m.usable()
	if err == nil {
		err = m.prepare()
	}
	sb := m.currentSuperblock()
	at := m.tm.Changes()
	r := m.gate.Derive(m.tm.Overlay(), m.size())
	r.Guard(func() error {
		if err != nil {
			return err
		}
		if m.tm.Changes() != at {
			return ErrTransactionChanged
		}
		return nil
	})
	return &Pool{r: r, live: &sb, sb: &sb}
}

// prepare writes into the transaction what Commit writes before the
// superblock: the changed device details, then the data and metadata
// space maps.
func (m *Metadata) prepare() error {
	if err := m.flushDetails(); err != nil {
		return err
	}
	if err := m.dsm.Commit(); err != nil {
		return err
	}
	return m.msm.Commit()
}

// Committed returns a view of the last commit. Until it is closed, the
// writer reuses no block it can reach: it stays exactly that commit
// however many commits follow (blocks later commits free are kept out of
// the metadata space map's reach while it is open, as bbolt keeps pages
// freed after its oldest reader). Close it when done. It ends when the
// writer is closed.
func (m *Metadata) Committed() (*Pool, error) {
	if err := m.usable(); err != nil {
		return nil, err
	}
	pin := m.tm.Pin()
	p, err := newPool(m.gate.Derive(m.dev, m.size()))
	if err != nil {
		pin.Release()
		return nil, err
	}
	p.pin = pin
	return p, nil
}

func (m *Metadata) currentSuperblock() superblock.Superblock {
	sb := m.sb
	sb.Time = m.time
	sb.TransactionID = m.transID
	sb.Flags = m.flags
	sb.HeldRoot = m.heldRoot
	sb.DataMappingRoot = m.mappingRoot
	sb.DeviceDetailsRoot = m.detailsRoot
	sb.NextThinID, sb.NrThins, sb.BlobIndexRoot = m.nextID, m.nrThins, m.indexRoot
	m.dsm.Root().Encode(sb.DataSpaceMapRoot[:])
	m.msm.Root().Encode(sb.MetadataSpaceMapRoot[:])
	return sb
}

func (m *Metadata) topTree() btree.Tree {
	return btree.Tree{R: m.tm, Root: m.mappingRoot, ValueSize: MappingValueSize}
}

func (m *Metadata) detailsTree() btree.Tree {
	return btree.Tree{R: m.tm, Root: m.detailsRoot, ValueSize: DetailsSize + m.blobSize}
}

// device returns the in-core state of a device, loading its details.
func (m *Metadata) device(id uint64) (*devState, error) {
	if d, ok := m.devices[id]; ok {
		if d.deleted {
			return nil, fmt.Errorf("device %d: %w", id, ErrNoDevice)
		}
		return d, nil
	}
	v, ok, err := m.detailsTree().Lookup(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("device %d: %w", id, ErrNoDevice)
	}
	d := &devState{Details: DecodeDetails(v)}
	if m.blobSize > 0 {
		d.blob = append([]byte(nil), v[DetailsSize:]...)
	}
	m.devices[id] = d
	return d, nil
}

// Details returns a device's details as of this transaction.
func (m *Metadata) Details(id uint64) (Details, error) {
	if err := m.usable(); err != nil {
		return Details{}, err
	}
	d, err := m.device(id)
	if err != nil {
		return Details{}, err
	}
	return d.Details, nil
}

// SetDetails replaces a device's details (mapped_blocks is kept by the
// pool itself; setting it wrongly makes the pool inconsistent).
func (m *Metadata) SetDetails(id uint64, det Details) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	d, err := m.device(id)
	if err != nil {
		return err
	}
	d.Details, d.changed = det, true
	return nil
}

func (m *Metadata) exists(id uint64) (bool, error) {
	_, err := m.device(id)
	if errors.Is(err, ErrNoDevice) {
		return false, nil
	}
	return err == nil, err
}

// checkID vets the id of a new device: at most 24 bits in a stock pool (the
// kernel's limit); in an extended pool, not below the next id the pool
// hands out, so that no id is ever used twice.
func (m *Metadata) checkID(id uint64) error {
	if m.blobSize == 0 && !m.sb.Extended() {
		if id > MaxStockDeviceID {
			return fmt.Errorf("device %d: %w (the kernel accepts ids up to %d)", id, ErrIDRange, MaxStockDeviceID)
		}
		return nil
	}
	if d, ok := m.devices[id]; ok && d.reserved {
		return nil
	}
	if id == math.MaxUint64 {
		// The next id would wrap around to ids used before.
		return fmt.Errorf("device %d: %w (the largest id is %d)", id, ErrIDRange, uint64(math.MaxUint64-1))
	}
	if id < m.nextID {
		return fmt.Errorf("device %d: %w (ids below %d may have been used before)", id, ErrIDReused, m.nextID)
	}
	return nil
}

// created records a new device in the extended-format bookkeeping.
func (m *Metadata) created(id uint64, d *devState) error {
	if !m.sb.Extended() {
		return nil
	}
	m.nextID = max(m.nextID, id+1)
	m.nrThins++
	if d.blob == nil {
		d.blob = make([]byte, m.blobSize)
	}
	return m.indexAdd(id, d.blob)
}

// root returns the root of a device's mapping tree.
func (m *Metadata) root(id uint64) (uint64, error) {
	v, ok, err := m.topTree().Lookup(id)
	if err != nil {
		return 0, err
	}
	if !ok {
		if d, known := m.devices[id]; known && !d.deleted {
			// Its details were found (Metadata.device): the pool is
			// damaged, not the call wrong.
			return 0, fmt.Errorf("device %d: %w: it has details but no mapping tree", id, ErrDetailsMismatch)
		}
		return 0, fmt.Errorf("device %d: %w", id, ErrNoDevice)
	}
	return decodeU64(v), nil
}

// CreateThin creates an empty thin device (FORMAT.md §7.6).
func (m *Metadata) CreateThin(id uint64) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	if err := m.vetNewID(id); err != nil {
		return err
	}
	root, err := btree.Empty(m.tm, m.bottomVT)
	if err != nil {
		return err
	}
	return m.addDevice(id, root, Details{TransactionID: m.transID, CreationTime: m.time, SnapshottedTime: m.time})
}

// vetNewID checks that id may be given to a new device.
func (m *Metadata) vetNewID(id uint64) error {
	if err := m.checkID(id); err != nil {
		return err
	}
	if ok, err := m.exists(id); err != nil || ok {
		if ok {
			err = fmt.Errorf("device %d: %w", id, ErrExists)
		}
		return err
	}
	return nil
}

// addDevice records a new device with mapping-tree root (whose reference
// it takes over) and details.
func (m *Metadata) addDevice(id, root uint64, det Details) error {
	var err error
	if m.mappingRoot, _, err = btree.Insert(m.tm, m.mappingRoot, m.topVT, id, u64(root)); err != nil {
		return err
	}
	d := &devState{Details: det, changed: true}
	m.devices[id] = d
	if err := m.created(id, d); err != nil {
		return err
	}
	return m.tm.Checkpoint()
}

// CreateSnapshot creates device id as a snapshot of origin: it shares the
// origin's whole mapping tree, and the pool time advances (FORMAT.md §7.4).
func (m *Metadata) CreateSnapshot(id, origin uint64) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	if err := m.vetNewID(id); err != nil {
		return err
	}
	o, err := m.device(origin)
	if err != nil {
		return err
	}
	root, err := m.root(origin)
	if err != nil {
		return err
	}
	if err := m.msm.Inc(root); err != nil {
		// The origin's entry in the top level names a block beyond the
		// space map: name the leaf that holds it.
		at := m.mappingRoot
		m.topTree().WalkLeaves(origin, origin, func(b uint64, _ btree.Node) error { at = b; return nil })
		return transaction.RefError(err, at, btree.Kind, fmt.Sprintf("the root of device %d, block %d", origin, root))
	}
	// The origin's root is shared now: its next edit shadows it. Taking a
	// snapshot advances the pool's time (FORMAT.md §7.4).
	t := m.time + 1
	if err := m.addDevice(id, root, Details{MappedBlocks: o.MappedBlocks, TransactionID: m.transID,
		CreationTime: t, SnapshottedTime: t}); err != nil {
		return err
	}
	m.time = t
	o.SnapshottedTime, o.changed = t, true
	return nil
}

// Delete deletes a thin device: nodes it shared lose a reference, nodes it
// owned are freed with their data blocks.
func (m *Metadata) Delete(id uint64) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	d, err := m.device(id)
	if err != nil {
		return err
	}
	var removed bool
	if m.detailsRoot, removed, err = btree.Remove(m.tm, m.detailsRoot, m.detailsVT, id); err != nil {
		return err
	}
	_ = removed // a device created in this transaction has no details entry yet
	if m.mappingRoot, removed, err = btree.Remove(m.tm, m.mappingRoot, m.topVT, id); err != nil {
		return err
	}
	if !removed {
		return fmt.Errorf("device %d has details but no mapping tree: %w", id, ErrDetailsMismatch)
	}
	d.deleted, d.changed = true, false
	if m.sb.Extended() {
		m.nrThins--
		if err := m.indexRemove(id, d.blob); err != nil {
			return err
		}
	}
	return m.tm.Checkpoint()
}

// editTree runs fn on a device's mapping tree with the path through the top
// level shadowed first (top-down, as the kernel does, so references of a
// shared top-level node are counted before the device tree is shadowed),
// then stores the new root. Once a device's top-level path is shadowed in a
// transaction it stays writable, so later edits of the same device skip the
// top level unless the root moves.
func (m *Metadata) editTree(d *devState, id uint64, fn func(root uint64) (uint64, error)) error {
	root := d.root
	if !d.rootKnown {
		var err error
		if root, err = m.root(id); err != nil {
			return err
		}
		if m.mappingRoot, _, err = btree.Insert(m.tm, m.mappingRoot, m.topPatchVT, id, u64(root)); err != nil {
			return err
		}
		d.root, d.rootKnown = root, true
	}
	nr, err := fn(root)
	if nr != 0 && nr != root {
		var perr error
		m.mappingRoot, _, perr = btree.Insert(m.tm, m.mappingRoot, m.topPatchVT, id, u64(nr))
		if err == nil {
			err = perr
		}
		d.root = nr
	}
	if err != nil {
		d.rootKnown = false
		return err
	}
	return m.tm.Checkpoint()
}

// MapTo maps virtual block vblock of device id to data block dblock (whose
// reference is taken: the caller has allocated it or added a reference),
// with the current pool time. It replaces an existing mapping, dropping the
// old data block's reference (also when it is dblock itself). It refuses
// (ErrMappedTwice) a data block the device maps at another virtual block;
// on any error the caller keeps its reference.
func (m *Metadata) MapTo(id, vblock, dblock uint64) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	d, err := m.device(id)
	if err != nil {
		return err
	}
	if dblock > MaxDataBlock {
		return fmt.Errorf("%w: data block %d beyond the format's limit of %d", ErrRange, dblock, uint64(MaxDataBlock))
	}
	if n := m.dsm.NrBlocks(); dblock >= n {
		return fmt.Errorf("%w: data block %d beyond the data device's %d blocks", ErrRange, dblock, n)
	}
	// Only a block someone else references too can be mapped already.
	if n, err := m.dsm.Count(dblock); err != nil {
		return err
	} else if n > 1 {
		root, err := m.root(id)
		if err != nil {
			return err
		}
		for mp, err := range MappingsOf(m.deviceTree(root), 0, math.MaxUint64) {
			if err != nil {
				return err
			}
			if mp.Block == dblock && mp.VBlock != vblock {
				return fmt.Errorf("device %d, virtual block %d to data block %d (mapped at %d): %w",
					id, vblock, dblock, mp.VBlock, ErrMappedTwice)
			}
		}
	}
	return m.editTree(d, id, func(root uint64) (uint64, error) {
		nr, inserted, err := btree.Insert(m.tm, root, m.bottomVT, vblock, u64(PackBlockTime(dblock, m.time)))
		if inserted {
			d.MappedBlocks++
		}
		// As the kernel's __insert: the details entry is rewritten at
		// commit even when only the mapping changed (see devState.changed).
		d.changed = true
		return nr, err
	})
}

// Map allocates a data block and maps vblock of device id to it, as a write
// to an unmapped (or shared) block does in the kernel. It returns the data
// block.
func (m *Metadata) Map(id, vblock uint64) (_ uint64, err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return 0, err
	}
	if _, err := m.device(id); err != nil {
		return 0, err
	}
	b, err := m.dsm.NewBlock()
	if err != nil {
		return 0, fmt.Errorf("device %d, virtual block %d: %w", id, vblock, err)
	}
	if err := m.MapTo(id, vblock, b); err != nil {
		return 0, err
	}
	return b, nil
}

// Unmap removes the mappings of device id in [begin, end), dropping their
// data blocks' references. It returns how many were removed. A range that
// ends before it starts is refused (ErrRange).
func (m *Metadata) Unmap(id, begin, end uint64) (_ uint64, err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return 0, err
	}
	if err := checkUnmapRange(id, begin, end); err != nil {
		return 0, err
	}
	d, err := m.device(id)
	if err != nil {
		return 0, err
	}
	var keys []uint64
	root := d.root
	if !d.rootKnown {
		if root, err = m.root(id); err != nil {
			return 0, err
		}
	}
	err = btree.Tree{R: m.tm, Root: root, ValueSize: MappingValueSize}.Walk(begin, end, func(k uint64, _ []byte) error {
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		return 0, err
	}
	// The kernel's range removal marks the device changed even when the
	// range holds no mappings.
	d.changed = true
	if len(keys) == 0 {
		return 0, nil
	}
	var n uint64
	err = m.editTree(d, id, func(root uint64) (uint64, error) {
		for _, k := range keys {
			nr, removed, err := btree.Remove(m.tm, root, m.bottomVT, k)
			root = nr
			if err != nil {
				return root, err
			}
			if removed {
				n++
			}
		}
		return root, nil
	})
	d.MappedBlocks -= n
	d.changed = true
	return n, err
}

// Lookup returns the mapping of one virtual block, including uncommitted
// changes.
func (m *Metadata) Lookup(id, vblock uint64) (Mapping, bool, error) {
	if err := m.usable(); err != nil {
		return Mapping{}, false, err
	}
	root, err := m.root(id)
	if err != nil {
		return Mapping{}, false, err
	}
	v, ok, err := m.deviceTree(root).Lookup(vblock)
	if err != nil || !ok {
		return Mapping{}, false, err
	}
	b, t := UnpackBlockTime(decodeU64(v))
	return Mapping{VBlock: vblock, Block: b, Time: t}, true, nil
}

// deviceTree is a device's mapping tree as the transaction has it.
func (m *Metadata) deviceTree(root uint64) btree.Tree {
	return btree.Tree{R: m.tm, Root: root, ValueSize: MappingValueSize}
}

// SetTransactionID sets the userspace transaction id to new if it is
// currently old (set_transaction_id, FORMAT.md §7.5).
func (m *Metadata) SetTransactionID(old, new uint64) error {
	if err := m.usable(); err != nil {
		return err
	}
	if m.transID != old {
		return fmt.Errorf("%w: current %d, expected %d", ErrTransactionID, m.transID, old)
	}
	m.transID = new
	return nil
}

// SetNeedsCheck sets or clears the needs_check flag (written at commit).
func (m *Metadata) SetNeedsCheck(on bool) {
	if m.closed.Load() {
		return
	}
	if on {
		m.flags |= superblock.FlagNeedsCheck
	} else {
		m.flags &^= superblock.FlagNeedsCheck
	}
}
