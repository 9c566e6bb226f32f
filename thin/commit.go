package thin

import (
	"fmt"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/blobindex"
	"github.com/thinmeta/thinmeta/internal/devfile"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// FormatOptions describe a new pool, for Format and CreateMetadata (and
// package blob's Format and Create). A nil *FormatOptions is the zero
// value: a stock pool with 64 KiB data blocks and no data blocks yet.
type FormatOptions struct {
	// Variant is the format variant: Stock (the zero value) or Extended.
	Variant Variant
	// DataBlockSize is the data block size in 512-byte sectors: a multiple
	// of 128 from 128 (64 KiB) to 2,097,152 (1 GiB); 0 means 128.
	DataBlockSize uint32
	// NrDataBlocks is the size of the data device in data blocks.
	NrDataBlocks uint64
	// MetadataBlocks is the number of metadata blocks to use; 0 means the
	// whole device, up to the most a metadata space map can track.
	MetadataBlocks uint64
	// BlobSize and IndexBytes are for the Extended variant: a blob of
	// BlobSize bytes per thin (1 to MaxBlobSize) and, if IndexBytes > 0,
	// an index of the thins by the first IndexBytes bytes of their blobs
	// (at most BlobSize). A Stock pool has neither.
	BlobSize   int
	IndexBytes int
	// Size, for CreateMetadata only, makes a regular file of at least
	// Size bytes: the file is created if it does not exist and grown if
	// it is shorter (under the writer's lock). 0 uses the file or block
	// device at its current size.
	Size int64
	// Wait, for CreateMetadata only, waits for other processes reading
	// or writing the file to finish instead of failing with ErrLocked.
	Wait bool
}

// MaxBlobSize is the largest blob an extended pool can hold: a
// device-details leaf must still fit three entries.
const MaxBlobSize = btree.MaxValueSize - DetailsSize

// ErrDataBlockSize means a data block size the kernel would refuse.
var ErrDataBlockSize = fmt.Errorf("data block size must be a multiple of 128 sectors from 128 to 2097152")

// ValidDataBlockSize reports whether the kernel accepts a data block size.
func ValidDataBlockSize(s uint32) bool { return s >= 128 && s <= 2097152 && s%128 == 0 }

// Format writes a new, empty pool to dev (size bytes), committed, and
// returns it open for changes. Nothing the device held before is kept: a
// superblock already there is zeroed (and flushed) first, so that a crash
// leaves the old pool, no pool or the new one, never the old superblock
// over the new pool's blocks.
func Format(dev transaction.Device, size int64, opts *FormatOptions) (*Metadata, error) {
	var o FormatOptions
	if opts != nil {
		o = *opts
	}
	if o.DataBlockSize == 0 {
		o.DataBlockSize = 128
	}
	if !ValidDataBlockSize(o.DataBlockSize) {
		return nil, fmt.Errorf("data block size %d: %w", o.DataBlockSize, ErrDataBlockSize)
	}
	nr := uint64(max(size, 0)) / transaction.BlockSize
	if o.MetadataBlocks != 0 {
		if o.MetadataBlocks > nr {
			return nil, fmt.Errorf("%w: %d metadata blocks asked, the device has %d", ErrMetadataTooSmall, o.MetadataBlocks, nr)
		}
		nr = o.MetadataBlocks
	}
	nr = min(nr, spacemap.MaxMetadataBlocks)
	if nr < 16 {
		return nil, fmt.Errorf("%w: %d blocks, where a pool needs at least 16", ErrMetadataTooSmall, nr)
	}
	if err := CheckDataSize(o.NrDataBlocks, nr); err != nil {
		return nil, err
	}
	if err := checkVariant(o.Variant, o.BlobSize, o.IndexBytes); err != nil {
		return nil, err
	}
	opts = &o
	if err := unformat(dev); err != nil {
		return nil, err
	}
	tm := transaction.NewManager(dev, size)
	m := &Metadata{dev: dev, tm: tm, gate: transaction.NewReader(dev, size), devices: make(map[uint64]*devState),
		blobSize: opts.BlobSize, indexBytes: opts.IndexBytes}
	m.initValueTypes()
	var err error
	if m.msm, err = spacemap.CreateMetadata(tm, nr); err != nil {
		return nil, err
	}
	if m.dsm, err = spacemap.CreateData(tm, opts.NrDataBlocks); err != nil {
		return nil, err
	}
	if m.mappingRoot, err = btree.Empty(tm, m.topVT); err != nil {
		return nil, err
	}
	if m.detailsRoot, err = btree.Empty(tm, m.detailsVT); err != nil {
		return nil, err
	}
	m.sb = superblock.Superblock{
		Magic:             superblock.Magic,
		Version:           superblock.Version,
		DataBlockSize:     opts.DataBlockSize,
		MetadataBlockSize: transaction.SectorsPerBlock,
		MetadataNrBlocks:  nr,
	}
	if opts.Variant == Extended {
		m.sb.IncompatFlags |= superblock.IncompatBlobs
		m.sb.BlobSize, m.sb.IndexBytes = uint32(opts.BlobSize), uint32(opts.IndexBytes)
		if opts.IndexBytes > 0 {
			if m.indexRoot, err = btree.Empty(tm, blobindex.VT); err != nil {
				return nil, err
			}
		}
	}
	if err := m.Commit(); err != nil {
		return nil, err
	}
	return m, nil
}

// WriteOptions tune OpenMetadata and NewMetadata (and package blob's
// OpenWriter and NewWriter). A nil *WriteOptions is the zero value.
type WriteOptions struct {
	// Force opens a pool whose needs_check flag is set.
	Force bool
	// Verify, if not nil, is called on a read-only view of the committed
	// pool before it is opened for changes, and an error refuses the
	// write: a damaged pool must not be made worse (check.Verifier checks
	// the pool). With OpenMetadata it runs under the writer's lock.
	Verify func(*Pool) error
	// Wait, for OpenMetadata, waits while another process reads or
	// writes the file (holds its lock) instead of failing at once with
	// ErrLocked.
	Wait bool
}

// NewMetadata opens the pool on dev (size bytes) for changes. It refuses a
// pool with needs_check set unless opts.Force, and one opts.Verify
// refuses. Without a Verify it does not check the pool's consistency.
func NewMetadata(dev transaction.Device, size int64, opts *WriteOptions) (*Metadata, error) {
	if opts == nil {
		opts = &WriteOptions{}
	}
	if opts.Verify != nil {
		p, err := NewPool(dev, size)
		if err == nil {
			err = opts.Verify(p)
		}
		if err != nil {
			return nil, err
		}
	}
	tm := transaction.NewManager(dev, size)
	sb, err := superblock.Read(tm.Reader(), superblock.Location, knownIncompat)
	if err != nil {
		return nil, err
	}
	if sb.NeedsCheck() && !opts.Force {
		return nil, ErrNeedsCheck
	}
	if sb.CompatROFlags != 0 {
		return nil, fmt.Errorf("superblock compat_ro_flags %#x: %w", sb.CompatROFlags, superblock.ErrIncompatible)
	}
	m := &Metadata{dev: dev, tm: tm, gate: transaction.NewReader(dev, size), sb: *sb, blobSize: int(sb.BlobSize)}
	m.initValueTypes()
	if err := m.begin(); err != nil {
		return nil, err
	}
	return m, nil
}

// begin starts a transaction from the committed superblock.
func (m *Metadata) begin() error {
	sb := &m.sb
	var err error
	if m.msm, err = spacemap.OpenWritable(m.tm, sb.MetadataSpaceMapRoot[:], true); err != nil {
		return err
	}
	m.tm.SetSpaceMap(m.msm)
	if m.dsm, err = spacemap.OpenWritable(m.tm, sb.DataSpaceMapRoot[:], false); err != nil {
		return err
	}
	m.time, m.transID, m.flags, m.heldRoot = sb.Time, sb.TransactionID, sb.Flags, sb.HeldRoot
	m.blobSize, m.indexBytes = int(sb.BlobSize), int(sb.IndexBytes)
	m.sizeDetails()
	m.nextID, m.nrThins, m.indexRoot = sb.NextThinID, sb.NrThins, sb.BlobIndexRoot
	m.mappingRoot, m.detailsRoot = sb.DataMappingRoot, sb.DeviceDetailsRoot
	m.devices = make(map[uint64]*devState)
	return nil
}

// Commit makes the transaction durable (FORMAT.md §6.2): changed device
// details go into their tree, the data then the metadata space map are
// committed, every changed block is written and flushed, and only then is
// the superblock written and flushed. A crash before the superblock write
// completes leaves the previous commit; one after leaves this one. If
// Commit fails the previous commit is intact; call Abort to continue.
func (m *Metadata) Commit() (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	if err := m.prepare(); err != nil {
		return err
	}
	if err := m.tm.Flush(); err != nil {
		return err
	}
	sb := m.currentSuperblock()
	buf := make([]byte, transaction.BlockSize)
	sb.Encode(buf)
	if err := m.tm.CommitSuperblock(buf, superblock.Validator); err != nil {
		return err
	}
	m.sb = sb
	m.dsm.EndTransaction()
	m.msm.EndTransaction()
	clear(m.devices)
	return nil
}

// Abort discards the transaction in progress and returns to the last
// commit.
func (m *Metadata) Abort() error {
	if err := m.usable(); err != nil {
		return err
	}
	m.tm.Abort()
	sb, err := superblock.Read(m.tm.Reader(), superblock.Location, knownIncompat)
	if err != nil {
		return err
	}
	m.sb = *sb
	return m.begin()
}

// ReleaseMetadataSnapshot drops the metadata snapshot: its trees lose a
// reference (what only it held is freed) and its block is freed.
func (m *Metadata) ReleaseMetadataSnapshot() (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	if m.heldRoot == 0 {
		return fmt.Errorf("%w", superblock.ErrNoMetadataSnapshot)
	}
	snap, err := m.heldSnapshot()
	if err != nil {
		return err
	}
	// A root beyond the space map: the superblock copy that holds it is
	// damaged.
	if err := btree.Delete(m.tm, snap.DataMappingRoot, m.topVT); err != nil {
		return transaction.RefError(err, m.heldRoot, "superblock", fmt.Sprintf("the metadata snapshot's data mapping root, block %d", snap.DataMappingRoot))
	}
	if err := btree.Delete(m.tm, snap.DeviceDetailsRoot, m.detailsVT); err != nil {
		return transaction.RefError(err, m.heldRoot, "superblock", fmt.Sprintf("the metadata snapshot's device details root, block %d", snap.DeviceDetailsRoot))
	}
	if err := m.msm.Dec(m.heldRoot); err != nil {
		return transaction.RefError(err, superblock.Location, "superblock", fmt.Sprintf("the held metadata snapshot, block %d", m.heldRoot))
	}
	m.heldRoot = 0
	return m.tm.Checkpoint()
}

// ResizeData grows the data device to n data blocks.
func (m *Metadata) ResizeData(n uint64) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	cur := m.dsm.NrBlocks()
	if n < cur {
		return fmt.Errorf("data from %d to %d blocks: %w", cur, n, ErrShrink)
	}
	if err := m.checkDataGrowth(n); err != nil {
		return err
	}
	return m.dsm.Extend(n - cur)
}

// ResizeMetadata grows the metadata space map to n blocks (the device must
// already be that large).
func (m *Metadata) ResizeMetadata(n uint64) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	cur := m.msm.NrBlocks()
	if n < cur {
		return fmt.Errorf("metadata from %d to %d blocks: %w", cur, n, ErrShrink)
	}
	if n > spacemap.MaxMetadataBlocks {
		return fmt.Errorf("%w: a metadata space map of %d blocks (it can track up to %d)", ErrRange, n, spacemap.MaxMetadataBlocks)
	}
	if n > m.tm.NrBlocks() {
		return fmt.Errorf("%w: a metadata space map of %d blocks on a device of %d", ErrMetadataTooSmall, n, m.tm.NrBlocks())
	}
	return m.msm.Extend(n - cur)
}

// OpenMetadata opens the metadata file or block device at path for
// changes: exclusively (O_EXCL for a block device, an advisory lock for a
// file), refusing needs_check unless opts.Force, and a pool opts.Verify
// refuses. A thin_metadata_pack file or an LZ4 image is refused with
// ErrPackedImage (Open reads them; only a plain image changes in place).
// Close releases the device.
func OpenMetadata(path string, opts *WriteOptions) (*Metadata, error) {
	var wait bool
	if opts != nil {
		wait = opts.Wait
	}
	dev, size, err := devfile.OpenWrite(path, &devfile.Options{Wait: wait})
	if err != nil {
		return nil, err
	}
	var head [8]byte
	if n, _ := dev.File.ReadAt(head[:], 0); isPacked(head[:n]) || isLZ4(head[:n]) {
		dev.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrPackedImage)
	}
	m, err := NewMetadata(dev, size, opts)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	release := registerWriter(dev.File, m)
	m.closer = func() error {
		release()
		return dev.Close()
	}
	return m, nil
}

// CreateMetadata formats the metadata file or block device at path (see
// FormatOptions.Size to create or grow a file) and returns it open for
// changes, exclusively as OpenMetadata does. Close releases the device.
func CreateMetadata(path string, opts *FormatOptions) (*Metadata, error) {
	var size int64
	var wait bool
	if opts != nil {
		size, wait = opts.Size, opts.Wait
	}
	dev, n, err := devfile.Create(path, size, &devfile.Options{Wait: wait})
	if err != nil {
		return nil, err
	}
	m, err := Format(dev, n, opts)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	release := registerWriter(dev.File, m)
	m.closer = func() error {
		release()
		return dev.Close()
	}
	return m, nil
}
