package thin

import (
	"fmt"
	"io"
	"iter"
	"math"
	"sync"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// Pool is a read-only view of a dm-thin pool's metadata: either the live
// state (block 0) or the metadata snapshot (the held root). It is safe for
// concurrent readers: nothing in a Pool changes after it is opened, its
// blocks come through a transaction.Reader (safe for concurrent use), and
// each iterator has state of its own (TestPoolConcurrentReaders holds this
// under -race). A view of a writer's transaction (Metadata.View) must not
// be read while the writer changes it, and Close must not race the reads.
//
// Lifetime. A view reads one state of the metadata and stays exactly that
// state until it is closed:
//   - NewPool over an io.ReaderAt reads what the ReaderAt holds; whoever
//     changes those bytes underneath it (another process writing the
//     device) makes its answers wrong. It outlives nothing, holds nothing.
//   - Open (by path) reads the file under a shared lock, so no writer of
//     another process that takes the locks changes it while the view is
//     open; a writer that does not is detected (Stale, ErrStale). If a
//     writer of this process holds the file, Open returns that writer's
//     Committed view (below).
//   - Metadata.Committed (and blob.Writer.Committed) is pinned the same
//     way, and ends with the writer: once the writer is closed its reads
//     fail with ErrClosed.
//   - Metadata.View reads the transaction in progress. It is good until
//     the transaction next changes; then its reads fail with
//     ErrTransactionChanged. It ends with the writer too.
//   - MetadataSnapshot and SnapshotAt return views of a superblock copy
//     that end when the view they were taken from is closed; that view's
//     pin (if any) holds their blocks. Closing them is optional.
//
// After Close, every method that reads returns ErrClosed (iterators yield
// it); the accessors of what the view read when it was opened (Superblock,
// Variant, BlobSize, ...) keep answering. Close is idempotent.
type Pool struct {
	r    *transaction.Reader
	live *superblock.Superblock // block 0
	sb   *superblock.Superblock // what this view reads: live or snapshot copy
	snap bool
	// base is the device under r, and watch what the view depends on
	// there (nil for a private copy or a writer's view): see Stale.
	base  io.ReaderAt
	watch *watch

	mu     sync.Mutex
	closed bool
	pin    *transaction.Pin // released at Close
	closer func() error     // run at the first Close
}

// NewPool opens a read-only view of the metadata in the first size bytes of
// ra. It reads and validates the superblock and refuses unknown incompatible
// features; it reads nothing else until asked.
//
// The view watches block 0 of ra: if it changes while the view is read (a
// writer that does not take the locks), reads fail with ErrStale, and so
// does Stale. An Image carries its own watch (see Image.Stale).
func NewPool(ra io.ReaderAt, size int64) (*Pool, error) {
	var w *watch
	dev := ra
	if im, ok := ra.(*Image); ok {
		w = im.watch
	} else {
		w = &watch{ra: ra}
		dev = &watchedReader{ra: ra, w: w}
	}
	r := transaction.NewReader(dev, size)
	// The superblock is read once: the view and its watch begin on the
	// same bytes.
	raw := w.begun()
	if raw == nil && size < transaction.BlockSize {
		// An empty or cut-short file: say so rather than that block 0 is
		// "beyond the end" of a device of 0 blocks.
		return nil, transaction.Corruptf(superblock.Location, "superblock", transaction.ErrOutOfRange,
			"the metadata is %d bytes, less than one %d-byte block", max(size, 0), transaction.BlockSize)
	}
	if raw == nil {
		raw = make([]byte, transaction.BlockSize)
		if err := r.ReadRaw(superblock.Location, raw); err != nil {
			return nil, err
		}
	}
	sb, err := superblockFrom(raw, superblock.Location, size)
	if err != nil {
		return nil, err
	}
	if w != nil && w.block0 == nil {
		w.block0 = raw
	}
	return &Pool{r: r, live: sb, sb: sb, base: ra, watch: w}, nil
}

// newPool opens the view that r reads.
func newPool(r *transaction.Reader) (*Pool, error) {
	sb, err := superblock.Read(r, superblock.Location, knownIncompat)
	if err != nil {
		return nil, err
	}
	return &Pool{r: r, live: sb, sb: sb}, nil
}

// Close ends the view: it releases its pin and the device if the pool was
// opened with Open. Views taken from it (MetadataSnapshot) end too. A
// second Close does nothing and returns nil.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.r.Close()
	p.pin.Release()
	if p.closer != nil {
		return p.closer()
	}
	return nil
}

// usable returns ErrClosed once the view (or what it was taken from) is
// closed.
func (p *Pool) usable() error {
	if p.r.Closed() {
		return ErrClosed
	}
	return nil
}

// Reader returns the block reader underneath the pool.
func (p *Pool) Reader() *transaction.Reader { return p.r }

// Superblock returns the superblock of this view: block 0 for the live view,
// the metadata-snapshot copy for a snapshot view. It must not be modified.
func (p *Pool) Superblock() *superblock.Superblock { return p.sb }

// LiveSuperblock returns block 0's superblock, for either view.
func (p *Pool) LiveSuperblock() *superblock.Superblock { return p.live }

// IsSnapshot reports whether this is a metadata-snapshot view.
func (p *Pool) IsSnapshot() bool { return p.snap }

// HasMetadataSnapshot reports whether a metadata snapshot is held.
func (p *Pool) HasMetadataSnapshot() bool { return p.live.HeldRoot != 0 }

// MetadataSnapshot returns a view of the metadata snapshot (the held root).
// It fails with superblock.ErrNoMetadataSnapshot if none is held.
func (p *Pool) MetadataSnapshot() (*Pool, error) {
	if err := p.usable(); err != nil {
		return nil, err
	}
	if p.live.HeldRoot == 0 {
		return nil, &transaction.CorruptError{Block: 0, Kind: superblock.Kind, Err: superblock.ErrNoMetadataSnapshot}
	}
	return p.SnapshotAt(p.live.HeldRoot)
}

// SnapshotAt returns a view of a superblock copy at block b (normally the
// held root).
func (p *Pool) SnapshotAt(b uint64) (*Pool, error) {
	if err := p.usable(); err != nil {
		return nil, err
	}
	size := int64(p.r.NrBlocks()) * transaction.BlockSize
	if p.watch != nil && !p.watch.snapshot {
		// A view of its own, whose reads are checked against the
		// snapshot rather than block 0, which the live pool changes;
		// the copy is read once, for the view and its watch.
		w := &watch{ra: p.base, block0: p.watch.block0, snapshot: true, held: b}
		r := p.r.Derive(&watchedReader{ra: p.base, w: w}, size)
		raw := make([]byte, transaction.BlockSize)
		if err := r.ReadRaw(b, raw); err != nil {
			return nil, err
		}
		sb, err := superblockFrom(raw, b, size)
		if err != nil {
			return nil, err
		}
		w.copy = raw
		return &Pool{r: r, live: p.live, sb: sb, snap: true, base: p.base, watch: w}, nil
	}
	// No pin of its own: it ends when p does, and p's pin holds its
	// commit, the snapshot included.
	r := p.r.Derive(nil, size)
	var sb *superblock.Superblock
	var err error
	if w := p.watch; w != nil && w.snapshot && w.held == b && w.copy != nil {
		sb, err = superblockFrom(w.copy, b, size) // what the watch began on
	} else {
		sb, err = superblock.Read(r, b, knownIncompat)
	}
	if err != nil {
		return nil, err
	}
	return &Pool{r: r, live: p.live, sb: sb, snap: true, base: p.base, watch: p.watch}, nil
}

// MappingTree returns the top level of the two-level mapping tree: device
// id → root of that device's tree.
func (p *Pool) MappingTree() btree.Tree {
	return btree.Tree{R: p.r, Root: p.sb.DataMappingRoot, ValueSize: MappingValueSize}
}

// DetailsTree returns the device-details tree.
func (p *Pool) DetailsTree() btree.Tree {
	return btree.Tree{R: p.r, Root: p.sb.DeviceDetailsRoot, ValueSize: p.DetailsSize()}
}

// Variant returns the pool's format variant.
func (p *Pool) Variant() Variant { return variantOf(p.sb) }

// BlobSize returns the size of each thin's blob (0 for a stock pool).
func (p *Pool) BlobSize() int { return int(p.sb.BlobSize) }

// DetailsSize returns the size of a device-details value: 24 bytes, plus
// the blob in an extended pool.
func (p *Pool) DetailsSize() int { return DetailsSize + int(p.sb.BlobSize) }

// DeviceTree returns the mapping tree of one device given its root.
func (p *Pool) DeviceTree(root uint64) btree.Tree {
	return btree.Tree{R: p.r, Root: root, ValueSize: MappingValueSize}
}

// Device is a thin device as the device-details tree records it.
type Device struct {
	ID uint64
	Details
	// Blob is the device's blob in an extended pool (nil in a stock pool).
	Blob []byte
}

func (p *Pool) device(id uint64, v []byte) Device {
	d := Device{ID: id, Details: DecodeDetails(v)}
	if len(v) > DetailsSize {
		d.Blob = append([]byte(nil), v[DetailsSize:]...)
	}
	return d
}

// Devices yields every device of the details tree in id order. An error
// ends the sequence.
func (p *Pool) Devices() iter.Seq2[Device, error] {
	return func(yield func(Device, error) bool) {
		err := p.DetailsTree().Walk(0, math.MaxUint64, func(k uint64, v []byte) error {
			if !yield(p.device(k, v), nil) {
				return btree.ErrStop
			}
			return nil
		})
		if err != nil {
			yield(Device{}, p.staleOr(err))
		}
	}
}

// Device returns one device's details.
func (p *Pool) Device(id uint64) (Device, error) {
	v, ok, err := p.DetailsTree().Lookup(id)
	if err != nil {
		return Device{}, p.staleOr(err)
	}
	if !ok {
		return Device{}, fmt.Errorf("device %d: %w", id, ErrNoDevice)
	}
	return p.device(id, v), nil
}

// DeviceRoot is an entry of the top level of the mapping tree.
type DeviceRoot struct {
	ID   uint64
	Root uint64 // root block of the device's mapping tree
}

// DeviceRoots yields the top level of the mapping tree in id order.
func (p *Pool) DeviceRoots() iter.Seq2[DeviceRoot, error] {
	return func(yield func(DeviceRoot, error) bool) {
		err := p.MappingTree().Walk(0, math.MaxUint64, func(k uint64, v []byte) error {
			if !yield(DeviceRoot{ID: k, Root: decodeU64(v)}, nil) {
				return btree.ErrStop
			}
			return nil
		})
		if err != nil {
			yield(DeviceRoot{}, p.staleOr(err))
		}
	}
}

// Root returns the root of one device's mapping tree.
func (p *Pool) Root(id uint64) (uint64, error) {
	v, ok, err := p.MappingTree().Lookup(id)
	if err != nil {
		return 0, p.staleOr(err)
	}
	if !ok {
		return 0, fmt.Errorf("device %d: %w", id, ErrNoDevice)
	}
	return decodeU64(v), nil
}

// Mapping maps one virtual block of a thin device to a data block.
type Mapping struct {
	VBlock uint64 // virtual block on the thin device
	Block  uint64 // data block on the data device
	Time   uint32 // pool time when the mapping was made
}

// Run is a run of consecutive virtual blocks mapped to consecutive data
// blocks with the same time, as thin_dump merges them.
type Run struct {
	VBlock uint64 // first virtual block
	Block  uint64 // first data block
	Len    uint64
	Time   uint32
}

// Lookup returns the mapping of one virtual block of a device.
func (p *Pool) Lookup(id, vblock uint64) (Mapping, bool, error) {
	root, err := p.Root(id)
	if err != nil {
		return Mapping{}, false, err
	}
	v, ok, err := p.DeviceTree(root).Lookup(vblock)
	if err != nil || !ok {
		return Mapping{}, false, p.staleOr(err)
	}
	b, t := UnpackBlockTime(decodeU64(v))
	return Mapping{VBlock: vblock, Block: b, Time: t}, true, nil
}

// Mappings yields the mappings of device id with lo ≤ virtual block < hi,
// in order.
func (p *Pool) Mappings(id, lo, hi uint64) iter.Seq2[Mapping, error] {
	return func(yield func(Mapping, error) bool) {
		root, err := p.Root(id)
		if err != nil {
			yield(Mapping{}, err)
			return
		}
		for m, err := range MappingsOf(p.DeviceTree(root), lo, hi) {
			if !yield(m, p.staleOr(err)) {
				return
			}
		}
	}
}

// MappingsOf yields the mappings of one device tree in [lo, hi).
func MappingsOf(t btree.Tree, lo, hi uint64) iter.Seq2[Mapping, error] {
	return func(yield func(Mapping, error) bool) {
		err := t.Walk(lo, hi, func(k uint64, v []byte) error {
			b, tm := UnpackBlockTime(decodeU64(v))
			if !yield(Mapping{VBlock: k, Block: b, Time: tm}, nil) {
				return btree.ErrStop
			}
			return nil
		})
		if err != nil {
			yield(Mapping{}, err)
		}
	}
}

// Runs yields the mappings of device id in [lo, hi) merged into runs.
func (p *Pool) Runs(id, lo, hi uint64) iter.Seq2[Run, error] {
	return RunsOf(p.Mappings(id, lo, hi))
}

// RunsOf merges a sequence of mappings in virtual-block order into runs.
func RunsOf(ms iter.Seq2[Mapping, error]) iter.Seq2[Run, error] {
	return func(yield func(Run, error) bool) {
		var cur Run
		for m, err := range ms {
			if err != nil {
				if cur.Len > 0 && !yield(cur, nil) {
					return
				}
				yield(Run{}, err)
				return
			}
			if cur.Len > 0 && m.VBlock == cur.VBlock+cur.Len && m.Block == cur.Block+cur.Len && m.Time == cur.Time {
				cur.Len++
				continue
			}
			if cur.Len > 0 && !yield(cur, nil) {
				return
			}
			cur = Run{VBlock: m.VBlock, Block: m.Block, Len: 1, Time: m.Time}
		}
		if cur.Len > 0 {
			yield(cur, nil)
		}
	}
}

// DataSpaceMap opens the data space map. A metadata-snapshot view has none
// (its root slots are zero): it returns ErrNoSpaceMaps there.
func (p *Pool) DataSpaceMap() (*spacemap.Map, error) {
	if err := p.usable(); err != nil {
		return nil, err
	}
	if p.snap {
		return nil, fmt.Errorf("data space map: %w", ErrNoSpaceMaps)
	}
	return spacemap.OpenData(p.r, p.sb.DataSpaceMapRoot[:])
}

// MetadataSpaceMap opens the metadata space map. A metadata-snapshot view
// has none: it returns ErrNoSpaceMaps there.
func (p *Pool) MetadataSpaceMap() (*spacemap.Map, error) {
	if err := p.usable(); err != nil {
		return nil, err
	}
	if p.snap {
		return nil, fmt.Errorf("metadata space map: %w", ErrNoSpaceMaps)
	}
	return spacemap.OpenMetadata(p.r, p.sb.MetadataSpaceMapRoot[:])
}

// NrDataBlocks returns the data device size in blocks as the data space-map
// root records it (0 for a metadata-snapshot view, whose slots are zero).
func (p *Pool) NrDataBlocks() uint64 {
	return spacemap.DecodeRoot(p.sb.DataSpaceMapRoot[:]).NrBlocks
}
