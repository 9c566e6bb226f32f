package thin

import (
	"cmp"
	"fmt"

	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// Build is a new pool whose trees the caller constructs bottom-up (with
// btree.Builder, writing nodes through Manager) instead of through
// operations, as restoring a dump does. Everything is written in one
// transaction: block 0 is zeroed when the build starts and the superblock
// is written only by Commit, so a build that fails or is abandoned leaves
// no pool behind (as thin_restore leaves none after a failure). A Build is
// not safe for concurrent use.
type Build struct {
	dev transaction.Device
	tm  *transaction.Manager
	msm *spacemap.Writable
}

// NewBuild starts building a pool on dev (size bytes). The metadata space
// map covers the whole device, up to the most it can track
// (spacemap.MaxMetadataBlocks), or metadataBlocks if that is not 0. Block 0
// is zeroed and flushed first.
func NewBuild(dev transaction.Device, size int64, metadataBlocks uint64) (*Build, error) {
	nr := uint64(max(size, 0)) / transaction.BlockSize
	if metadataBlocks != 0 {
		if metadataBlocks > nr {
			return nil, fmt.Errorf("%w: %d metadata blocks asked, the device has %d", ErrMetadataTooSmall, metadataBlocks, nr)
		}
		nr = metadataBlocks
	}
	nr = min(nr, spacemap.MaxMetadataBlocks)
	if nr < 16 {
		return nil, fmt.Errorf("%w: %d blocks, where a pool needs at least 16", ErrMetadataTooSmall, nr)
	}
	// The old superblock goes first, durably: once blocks of the new pool
	// may overwrite the old pool's, nothing must point at them.
	zero := make([]byte, transaction.BlockSize)
	if _, err := dev.WriteAt(zero, int64(superblock.Location)*transaction.BlockSize); err != nil {
		return nil, &transaction.IOError{Block: superblock.Location, Op: "write", Err: err}
	}
	if err := dev.Flush(); err != nil {
		return nil, &transaction.IOError{Block: superblock.Location, Op: "flush", Err: err}
	}
	tm := transaction.NewManager(dev, size)
	msm, err := spacemap.CreateMetadata(tm, nr)
	if err != nil {
		return nil, err
	}
	return &Build{dev: dev, tm: tm, msm: msm}, nil
}

// Manager returns the transaction manager every block of the pool is
// allocated and written through.
func (b *Build) Manager() *transaction.Manager { return b.tm }

// MetadataSpaceMap returns the metadata space map (the manager's).
func (b *Build) MetadataSpaceMap() *spacemap.Writable { return b.msm }

// BuildRoots is what Commit writes in the superblock.
type BuildRoots struct {
	Time          uint32 // pool time
	TransactionID uint64 // userspace transaction id
	Flags         uint32 // superblock flags (bit 0: needs_check)
	Version       uint32 // superblock version; 0 means 2
	DataBlockSize uint32 // in 512-byte sectors
	// MappingRoot and DetailsRoot are the roots of the top-level mapping
	// tree and of the device-details tree.
	MappingRoot, DetailsRoot uint64
	// DataSpaceMap is the root of a data space map built in this
	// transaction.
	DataSpaceMap spacemap.Root
	// Extension, if not nil, makes the pool of the extended format: the
	// details tree's values carry its BlobSize bytes of blob, and the
	// superblock its fields (IncompatBlobs is set).
	Extension *Extension
}

// Commit commits the metadata space map, writes every block and flushes,
// then writes the superblock (version 2, no metadata snapshot) and flushes
// again. The build is over afterwards; open the pool with Open or
// OpenMetadata to use it.
func (b *Build) Commit(r BuildRoots) error {
	if !ValidDataBlockSize(r.DataBlockSize) {
		return fmt.Errorf("data block size %d: %w", r.DataBlockSize, ErrDataBlockSize)
	}
	if err := b.msm.Commit(); err != nil {
		return err
	}
	if err := b.tm.Flush(); err != nil {
		return err
	}
	sb := superblock.Superblock{
		Flags:             r.Flags,
		Magic:             superblock.Magic,
		Version:           cmp.Or(r.Version, superblock.Version),
		Time:              r.Time,
		TransactionID:     r.TransactionID,
		DataMappingRoot:   r.MappingRoot,
		DeviceDetailsRoot: r.DetailsRoot,
		DataBlockSize:     r.DataBlockSize,
		MetadataBlockSize: transaction.SectorsPerBlock,
		MetadataNrBlocks:  b.msm.NrBlocks(),
	}
	if x := r.Extension; x != nil {
		sb.IncompatFlags |= superblock.IncompatBlobs
		sb.BlobSize, sb.IndexBytes = x.BlobSize, x.IndexBytes
		sb.NextThinID, sb.NrThins, sb.BlobIndexRoot = x.NextThinID, x.NrThins, x.BlobIndexRoot
	}
	r.DataSpaceMap.Encode(sb.DataSpaceMapRoot[:])
	b.msm.Root().Encode(sb.MetadataSpaceMapRoot[:])
	buf := make([]byte, transaction.BlockSize)
	sb.Encode(buf)
	if err := b.tm.CommitSuperblock(buf, superblock.Validator); err != nil {
		return err
	}
	b.msm.EndTransaction()
	return nil
}
