package restore

import "encoding/binary"

// Little-endian encodings of the B-tree values restore writes whose types
// have no encoder of their own: a device's mapping-tree root in the
// top-level mapping tree (FORMAT.md §3.6) and a reference count in a space
// map's overflow tree (§5.4).

// encodeU64 encodes an 8-byte value.
func encodeU64(buf *[8]byte, v uint64) []byte {
	binary.LittleEndian.PutUint64(buf[:], v)
	return buf[:]
}

// encodeU32 encodes a 4-byte value.
func encodeU32(buf *[8]byte, v uint32) []byte {
	binary.LittleEndian.PutUint32(buf[:], v)
	return buf[:4]
}
