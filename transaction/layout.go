package transaction

import (
	"encoding/binary"
	"hash/crc32"
)

// BlockSize is the size of every metadata block, in bytes (FORMAT.md §1.1).
const BlockSize = 4096

// SectorsPerBlock is BlockSize in 512-byte sectors; the superblock stores
// this value as metadata_block_size.
const SectorsPerBlock = BlockSize / 512

// Checksum salts, one per checksummed block kind (FORMAT.md §1.2). The stored
// checksum of a block is crc32c(block[4:]) XOR 0xFFFFFFFF XOR salt.
const (
	SaltSuperblock uint32 = 160774 // thin superblock and its metadata-snapshot copy
	SaltNode       uint32 = 121107 // B-tree node
	SaltBitmap     uint32 = 240779 // space-map bitmap
	SaltIndex      uint32 = 160478 // metadata space-map index

	// Salts of block kinds the pack format recognises but dm-thin does not use.
	SaltCacheSuperblock uint32 = 9031977
	SaltEraSuperblock   uint32 = 146538381
	SaltArrayBlock      uint32 = 595846735
)

// Every checksummed block starts with the same 16-byte header: the checksum
// at offset 0, a 4-byte word whose meaning depends on the block kind (flags,
// padding) at 4, and the block's own location at 8.
const (
	offCsum    = 0
	offBlocknr = 8
	// HeaderSize is the size of the shared checksummed header.
	HeaderSize = 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum computes the checksum of a 4096-byte block for the given salt.
// Only bytes 4 and later are covered.
func Checksum(block []byte, salt uint32) uint32 {
	return crc32.Checksum(block[4:BlockSize], castagnoli) ^ 0xFFFFFFFF ^ salt
}

// StoredChecksum returns the checksum stored in a block.
func StoredChecksum(block []byte) uint32 {
	return binary.LittleEndian.Uint32(block[offCsum:])
}

// StoredBlocknr returns the location a block claims for itself.
func StoredBlocknr(block []byte) uint64 {
	return binary.LittleEndian.Uint64(block[offBlocknr:])
}

// Seal stamps a block with its location and its checksum for salt, as every
// writer must do just before a block goes to disk (FORMAT.md §1.3).
func Seal(block []byte, location uint64, salt uint32) {
	binary.LittleEndian.PutUint64(block[offBlocknr:], location)
	binary.LittleEndian.PutUint32(block[offCsum:], Checksum(block, salt))
}

// SaltOf returns the salt for which block's stored checksum is valid, by
// computing the checksum once and comparing it with every known salt. It
// reports false when the block matches none of them.
func SaltOf(block []byte) (uint32, bool) {
	x := crc32.Checksum(block[4:BlockSize], castagnoli) ^ 0xFFFFFFFF ^ StoredChecksum(block)
	switch x {
	case SaltSuperblock, SaltNode, SaltBitmap, SaltIndex,
		SaltCacheSuperblock, SaltEraSuperblock, SaltArrayBlock:
		return x, true
	}
	return 0, false
}
