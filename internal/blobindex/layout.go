package blobindex

import "encoding/binary"

// ValueSize is the value size of the blob index: the thin id, then the
// home hash (the hash of the thin's key, where its probe run starts).
const ValueSize = 16

// encodeValue encodes an index value.
func encodeValue(id, home uint64) []byte {
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, id), home)
}

// DecodeValue splits an index value into thin id and home hash.
func DecodeValue(v []byte) (id, home uint64) {
	return binary.LittleEndian.Uint64(v), binary.LittleEndian.Uint64(v[8:])
}
