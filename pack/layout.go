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
	// BlocksPerChunk is the most block records one zlib chunk holds when
	// thinmeta (or thin_metadata_pack) writes it. Readers accept any number.
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
	return Header{getU64(b[0:]), getU64(b[8:]), getU64(b[16:]), getU64(b[24:])}
}

func (h Header) encode(b []byte) {
	putU64(b[0:], h.Magic)
	putU64(b[8:], h.Version)
	putU64(b[16:], h.BlockSize)
	putU64(b[24:], h.NrBlocks)
}

// A chunk is a u64 length L followed by L bytes of a zlib stream; the
// stream holds records of a u64 block number followed by the block's
// instructions.
const (
	chunkLengthSize = 8
	recordBlockSize = 8
)

// Instruction tags of the block-encoding virtual machine: the high nibble
// of an instruction byte; the low nibble is its operand or operand width.
const (
	tagSet        = 0  // width-nibble value: base = value; emit (× count)
	tagPos        = 1  // × count: base += nibble; emit
	tagPosW       = 2  // width-nibble delta; × count: base += delta; emit
	tagNeg        = 3  // × count: base -= nibble; emit
	tagNegW       = 4  // width-nibble delta; × count: base -= delta; emit
	tagConst      = 5  // emit nibble times
	tagConst8     = 6  // 1 byte lo: emit (nibble<<8 | lo) times
	tagCount      = 7  // the next instruction runs nibble times
	tagCount8     = 8  // 1 byte lo: the next instruction runs (nibble<<8 | lo) times
	tagLit        = 9  // nibble raw bytes follow
	tagLitW       = 10 // width-nibble length, then that many raw bytes
	tagShiftedRun = 11 // 1 byte lo: n = nibble<<8 | lo; two runs of n u64s
)

// instruction assembles an instruction byte.
func instruction(tag, nibble byte) byte { return tag<<4 | nibble&0xF }

// splitInstruction takes an instruction byte apart.
func splitInstruction(b byte) (tag, nibble byte) { return b >> 4, b & 0xF }

// maxCount is the largest repeat count (Count8, Const8) or run length
// (ShiftedRun) an instruction can hold: twelve bits.
const maxCount = 1<<12 - 1

// shiftBits splits a mapping value into its data block (high part) and its
// 24-bit time (low part) for a ShiftedRun.
const shiftBits = 24

// B-tree node fields the encoder looks at (FORMAT.md §3.1).
const (
	nodeHeaderSize    = 32
	nodeOffFlags      = 4
	nodeOffMaxEntries = 20
	nodeOffValueSize  = 24
	// nodeFlagsLeaf is the flags value thin_metadata_pack treats as a leaf;
	// every other value is encoded as an internal node.
	nodeFlagsLeaf = 2
)

type nodeSummary struct {
	flags      uint32
	maxEntries uint64
	valueSize  uint64
}

func summariseNode(blk []byte) nodeSummary {
	le := binary.LittleEndian
	return nodeSummary{
		flags:      le.Uint32(blk[nodeOffFlags:]),
		maxEntries: uint64(le.Uint32(blk[nodeOffMaxEntries:])),
		valueSize:  uint64(le.Uint32(blk[nodeOffValueSize:])),
	}
}

func getU64(b []byte) uint64              { return binary.LittleEndian.Uint64(b) }
func putU64(b []byte, v uint64)           { binary.LittleEndian.PutUint64(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// getU64s decodes a run of little-endian u64s.
func getU64s(b []byte) []uint64 {
	ns := make([]uint64, len(b)/8)
	for i := range ns {
		ns[i] = getU64(b[8*i:])
	}
	return ns
}

// appendOperand appends v as a little-endian operand of width bytes
// (1, 2, 4 or 8).
func appendOperand(b []byte, v uint64, width byte) []byte {
	switch width {
	case 1:
		return append(b, byte(v))
	case 2:
		return binary.LittleEndian.AppendUint16(b, uint16(v))
	case 4:
		return binary.LittleEndian.AppendUint32(b, uint32(v))
	default:
		return binary.LittleEndian.AppendUint64(b, v)
	}
}

// operandWidth returns the smallest operand width that holds v.
func operandWidth(v uint64) byte {
	switch {
	case v <= 0xFF:
		return 1
	case v <= 0xFFFF:
		return 2
	case v <= 0xFFFFFFFF:
		return 4
	default:
		return 8
	}
}

// decodeOperand decodes a little-endian operand of len(b) ≤ 8 bytes.
func decodeOperand(b []byte) uint64 {
	var buf [8]byte
	copy(buf[:], b)
	return binary.LittleEndian.Uint64(buf[:])
}
