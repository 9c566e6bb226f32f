package pack

import (
	"bytes"
	"compress/zlib"
	"io"
)

// Record is one block of a pack file as the writer encoded it.
type Record struct {
	Block        uint64
	Instructions []byte // the block's encoding, exactly as stored
	Data         []byte // the decoded block
}

// Records lists every record of every chunk of a pack file, in file
// order, for tests.
func Records(file []byte) ([]Record, error) {
	if _, err := ReadHeader(bytes.NewReader(file)); err != nil {
		return nil, err
	}
	var recs []Record
	rest := file[HeaderSize:]
	for len(rest) >= 8 {
		n := getU64(rest)
		c := rest[8 : 8+n]
		rest = rest[8+n:]
		zr, err := zlib.NewReader(bytes.NewReader(c))
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(zr)
		if err != nil {
			return nil, err
		}
		for len(data) >= 8 {
			in := bytes.NewReader(data[8:])
			out, err := decodeBlock(in, nil)
			if err != nil {
				return nil, err
			}
			used := len(data) - 8 - in.Len()
			recs = append(recs, Record{getU64(data), data[8 : 8+used], out})
			data = data[8+used:]
		}
	}
	return recs, nil
}

// EncodeBlock returns the encoding thinmeta gives a checksummed block.
func EncodeBlock(blk []byte, salt uint32) []byte {
	var e encoder
	encodeBlock(&e, blk, salt)
	return e.out
}
