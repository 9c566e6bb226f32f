package thin

import "encoding/binary"

// DetailsSize is the size of a stock device-details value (FORMAT.md §7.1).
const DetailsSize = 24

// Details are the per-device fields of the device-details tree.
type Details struct {
	MappedBlocks    uint64 // mappings in the device's tree
	TransactionID   uint64 // pool transaction id when the device was created
	CreationTime    uint32 // pool time when created
	SnapshottedTime uint32 // pool time when last snapshotted (or created)
}

// DecodeDetails decodes the first DetailsSize bytes of v.
func DecodeDetails(v []byte) Details {
	le := binary.LittleEndian
	return Details{
		MappedBlocks:    le.Uint64(v[0:]),
		TransactionID:   le.Uint64(v[8:]),
		CreationTime:    le.Uint32(v[16:]),
		SnapshottedTime: le.Uint32(v[20:]),
	}
}

// Encode writes d into the first DetailsSize bytes of v.
func (d Details) Encode(v []byte) {
	le := binary.LittleEndian
	le.PutUint64(v[0:], d.MappedBlocks)
	le.PutUint64(v[8:], d.TransactionID)
	le.PutUint32(v[16:], d.CreationTime)
	le.PutUint32(v[20:], d.SnapshottedTime)
}

// A mapping value packs the data block in the high 40 bits and the time in
// the low 24 (FORMAT.md §7.2).
const (
	timeBits = 24
	timeMask = 1<<timeBits - 1
	// MaxTime is the largest mapping time.
	MaxTime = timeMask
	// MaxDataBlock is the largest data block a mapping can name.
	MaxDataBlock = 1<<40 - 1
	// MappingValueSize is the value size of both levels of the mapping tree.
	MappingValueSize = 8
)

// PackBlockTime packs a data block and a time into a mapping value. The time
// is masked to 24 bits.
func PackBlockTime(block uint64, time uint32) uint64 {
	return block<<timeBits | uint64(time)&timeMask
}

// UnpackBlockTime splits a mapping value.
func UnpackBlockTime(v uint64) (block uint64, time uint32) {
	return v >> timeBits, uint32(v & timeMask)
}

func decodeU64(v []byte) uint64 { return binary.LittleEndian.Uint64(v) }

// u64 encodes an 8-byte value (a subtree root, a mapping value).
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
