package pack

import "encoding/binary"

// File header of thin_metadata_pack version 3 (FORMAT.md §8.4).
const (
	// Magic starts every pack file.
	Magic uint64 = 0xA537A0AA6309EF77
	// Version is the only pack version thinmeta reads and writes.
	Version uint64 = 3
	// HeaderSize is the size of the file header.
	HeaderSize = 32
	// BlocksPerChunk is the most block records one zlib chunk holds.
	BlocksPerChunk = 1024
)

// Header is the decoded file header.
type Header struct {
	Magic     uint64
	Version   uint64
	BlockSize uint64
	NrBlocks  uint64 // size of the packed device in blocks
}

func decodeHeader(b []byte) Header {
	le := binary.LittleEndian
	return Header{le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:])}
}

func (h Header) encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], h.Magic)
	le.PutUint64(b[8:], h.Version)
	le.PutUint64(b[16:], h.BlockSize)
	le.PutUint64(b[24:], h.NrBlocks)
}

// Instruction tags of the block-encoding virtual machine: the high nibble
// of an instruction byte; the low nibble is its operand or operand width.
const (
	tagSet        = 0
	tagPos        = 1
	tagPosW       = 2
	tagNeg        = 3
	tagNegW       = 4
	tagConst      = 5
	tagConst8     = 6
	tagCount      = 7
	tagCount8     = 8
	tagLit        = 9
	tagLitW       = 10
	tagShiftedRun = 11
)

// shiftBits splits a mapping value into its data block (high part) and its
// 24-bit time (low part) for a ShiftedRun.
const shiftBits = 24
