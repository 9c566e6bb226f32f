package superblock

import (
	"encoding/binary"

	"github.com/thinmeta/thinmeta/transaction"
)

// Superblock field offsets (FORMAT.md §2.1). Bytes 0..15 are the shared
// checksummed header (csum, flags, blocknr).
const (
	offFlags            = 4
	offBlocknr          = 8
	offUUID             = 16
	offMagic            = 32
	offVersion          = 40
	offTime             = 44
	offTransactionID    = 48
	offHeldRoot         = 56
	offDataSMRoot       = 64
	offMetadataSMRoot   = 192
	offDataMappingRoot  = 320
	offDeviceDetails    = 328
	offDataBlockSize    = 336
	offMetadataBlkSize  = 340
	offMetadataNrBlocks = 344
	offCompat           = 352
	offCompatRO         = 356
	offIncompat         = 360

	// Size is the size of the stock on-disk superblock structure; the kernel
	// requires it to fit the first 512-byte sector so that writing it is
	// atomic.
	Size = 364

	// Fields of the extended ("v2") format, after the stock structure and
	// still inside the first sector. They are zero in a stock superblock.
	offBlobSize      = 364 // u32: bytes of blob per thin
	offIndexBytes    = 368 // u32: leading blob bytes that form the lookup key (0: no index)
	offNextThinID    = 372 // u64: next thin id the pool hands out; never decreases
	offNrThins       = 380 // u64: number of thin devices
	offBlobIndexRoot = 388 // u64: root of the blob index tree (0: no index)

	// ExtendedSize is the size of the extended superblock structure.
	ExtendedSize = 396
)

// IncompatBlobs marks an extended pool (FORMAT: the dm-thin "v2"
// extension): device details carry a blob of BlobSize bytes after the
// stock 24, thin ids are 64-bit and never reused, and the superblock holds
// the fields from offset 364. Stock kernels and tools refuse any incompat
// bit, so they cannot misread such a pool.
const IncompatBlobs uint32 = 1 << 0

// Constants of the format.
const (
	// Location is the block that holds the superblock.
	Location = 0
	// Magic identifies a dm-thin superblock.
	Magic uint64 = 27022010
	// Version is the version thinmeta writes on format (FORMAT.md §2.2).
	Version uint32 = 2
	// SpaceMapRootSize is the size of each space-map root slot.
	SpaceMapRootSize = 128
	// FlagNeedsCheck is set by the kernel when the metadata needs an
	// offline check (FORMAT.md §2.3).
	FlagNeedsCheck uint32 = 1
)

// Superblock is the decoded dm-thin superblock: every field of the on-disk
// structure (FORMAT.md §2.1).
type Superblock struct {
	Flags   uint32   // bit 0: needs_check
	Blocknr uint64   // the block this superblock claims to be at
	UUID    [16]byte // unused; zero
	Magic   uint64
	Version uint32 // 1 or 2
	Time    uint32 // snapshot time counter
	// TransactionID is the userspace transaction id (set_transaction_id).
	TransactionID uint64
	// HeldRoot is the block of the metadata-snapshot copy, 0 if none.
	HeldRoot uint64
	// DataSpaceMapRoot and MetadataSpaceMapRoot are opaque slots that only
	// package spacemap decodes.
	DataSpaceMapRoot     [SpaceMapRootSize]byte
	MetadataSpaceMapRoot [SpaceMapRootSize]byte
	DataMappingRoot      uint64 // root of the two-level mapping tree
	DeviceDetailsRoot    uint64 // root of the device-details tree
	DataBlockSize        uint32 // in 512-byte sectors
	MetadataBlockSize    uint32 // in sectors; always 8
	MetadataNrBlocks     uint64 // metadata size at format time
	CompatFlags          uint32
	CompatROFlags        uint32
	IncompatFlags        uint32

	// Extended format only (IncompatBlobs); zero otherwise.
	BlobSize      uint32 // bytes of blob per thin
	IndexBytes    uint32 // leading blob bytes indexed for lookup
	NextThinID    uint64 // next id handed out
	NrThins       uint64 // thin devices in the pool
	BlobIndexRoot uint64 // root of the blob index tree, 0 if none
}

// Extended reports whether the superblock is of the extended format.
func (s *Superblock) Extended() bool { return s.IncompatFlags&IncompatBlobs != 0 }

// NeedsCheck reports whether the needs_check flag is set.
func (s *Superblock) NeedsCheck() bool { return s.Flags&FlagNeedsCheck != 0 }

// Decode decodes a superblock from the first Size bytes of block, without
// any validation.
func Decode(block []byte) Superblock {
	le := binary.LittleEndian
	s := Superblock{
		Flags:             le.Uint32(block[offFlags:]),
		Blocknr:           le.Uint64(block[offBlocknr:]),
		Magic:             le.Uint64(block[offMagic:]),
		Version:           le.Uint32(block[offVersion:]),
		Time:              le.Uint32(block[offTime:]),
		TransactionID:     le.Uint64(block[offTransactionID:]),
		HeldRoot:          le.Uint64(block[offHeldRoot:]),
		DataMappingRoot:   le.Uint64(block[offDataMappingRoot:]),
		DeviceDetailsRoot: le.Uint64(block[offDeviceDetails:]),
		DataBlockSize:     le.Uint32(block[offDataBlockSize:]),
		MetadataBlockSize: le.Uint32(block[offMetadataBlkSize:]),
		MetadataNrBlocks:  le.Uint64(block[offMetadataNrBlocks:]),
		CompatFlags:       le.Uint32(block[offCompat:]),
		CompatROFlags:     le.Uint32(block[offCompatRO:]),
		IncompatFlags:     le.Uint32(block[offIncompat:]),
		BlobSize:          le.Uint32(block[offBlobSize:]),
		IndexBytes:        le.Uint32(block[offIndexBytes:]),
		NextThinID:        le.Uint64(block[offNextThinID:]),
		NrThins:           le.Uint64(block[offNrThins:]),
		BlobIndexRoot:     le.Uint64(block[offBlobIndexRoot:]),
	}
	copy(s.UUID[:], block[offUUID:])
	copy(s.DataSpaceMapRoot[:], block[offDataSMRoot:])
	copy(s.MetadataSpaceMapRoot[:], block[offMetadataSMRoot:])
	return s
}

// Encode writes s into the first Size bytes of block and zeroes the rest of
// the block. It does not compute the checksum; see Validator.Prepare.
func (s *Superblock) Encode(block []byte) {
	le := binary.LittleEndian
	clear(block[:transaction.BlockSize])
	le.PutUint32(block[offFlags:], s.Flags)
	le.PutUint64(block[offBlocknr:], s.Blocknr)
	copy(block[offUUID:], s.UUID[:])
	le.PutUint64(block[offMagic:], s.Magic)
	le.PutUint32(block[offVersion:], s.Version)
	le.PutUint32(block[offTime:], s.Time)
	le.PutUint64(block[offTransactionID:], s.TransactionID)
	le.PutUint64(block[offHeldRoot:], s.HeldRoot)
	copy(block[offDataSMRoot:], s.DataSpaceMapRoot[:])
	copy(block[offMetadataSMRoot:], s.MetadataSpaceMapRoot[:])
	le.PutUint64(block[offDataMappingRoot:], s.DataMappingRoot)
	le.PutUint64(block[offDeviceDetails:], s.DeviceDetailsRoot)
	le.PutUint32(block[offDataBlockSize:], s.DataBlockSize)
	le.PutUint32(block[offMetadataBlkSize:], s.MetadataBlockSize)
	le.PutUint64(block[offMetadataNrBlocks:], s.MetadataNrBlocks)
	le.PutUint32(block[offCompat:], s.CompatFlags)
	le.PutUint32(block[offCompatRO:], s.CompatROFlags)
	le.PutUint32(block[offIncompat:], s.IncompatFlags)
	le.PutUint32(block[offBlobSize:], s.BlobSize)
	le.PutUint32(block[offIndexBytes:], s.IndexBytes)
	le.PutUint64(block[offNextThinID:], s.NextThinID)
	le.PutUint64(block[offNrThins:], s.NrThins)
	le.PutUint64(block[offBlobIndexRoot:], s.BlobIndexRoot)
}
