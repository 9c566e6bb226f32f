package thin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pierrec/lz4/v4"
)

// lz4Magic starts an LZ4 frame (the format of the lz4 command-line tool).
const lz4Magic = 0x184D2204

// isLZ4 reports whether a file starting with head is an LZ4 frame.
func isLZ4(head []byte) bool {
	return len(head) >= 4 && binary.LittleEndian.Uint32(head) == lz4Magic
}

// lz4Image decompresses the LZ4 frames of f (several frames, and skippable
// frames, are read as the lz4 tool reads them) into memory, or into an
// unlinked temporary file once the image is larger than memLimit.
func lz4Image(f *os.File) (*Image, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	zr := lz4.NewReader(f)
	fail := func(err error) error { return fmt.Errorf("%s: lz4: %w", f.Name(), err) }
	// In chunks, so the image is never copied to grow a buffer.
	img := &chunkedImage{}
	for img.size <= memLimit {
		c := make([]byte, chunkSize)
		n, err := io.ReadFull(zr, c)
		if n > 0 {
			img.chunks = append(img.chunks, c[:n])
			img.size += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if img.size%4096 != 0 {
				return nil, fmt.Errorf("%s: lz4 frame holds %d bytes, not whole 4 KiB blocks", f.Name(), img.size)
			}
			return &Image{ra: img, size: img.size}, nil
		}
		if err != nil {
			return nil, fail(err)
		}
	}
	tmp, err := os.CreateTemp("", "thinmeta-lz4-*")
	if err != nil {
		return nil, err
	}
	os.Remove(tmp.Name())
	for _, c := range img.chunks {
		if _, err := tmp.Write(c); err != nil {
			tmp.Close()
			return nil, err
		}
	}
	img.chunks = nil
	n, err := io.Copy(tmp, zr)
	if err != nil {
		tmp.Close()
		return nil, fail(err)
	}
	if n += img.size; n%4096 != 0 {
		tmp.Close()
		return nil, fmt.Errorf("%s: lz4 frame holds %d bytes, not whole 4 KiB blocks", f.Name(), n)
	}
	return &Image{ra: tmp, size: n, closer: tmp.Close}, nil
}

// chunkSize is the size of the chunks of a decompressed image in memory.
const chunkSize = 4 << 20

// chunkedImage is an image in memory in chunks of chunkSize bytes (the
// last may be shorter).
type chunkedImage struct {
	chunks [][]byte
	size   int64
}

// ReadAt implements io.ReaderAt.
func (c *chunkedImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	for len(p) > 0 {
		if off >= c.size {
			return n, io.EOF
		}
		k := copy(p, c.chunks[off/chunkSize][off%chunkSize:])
		p, off, n = p[k:], off+int64(k), n+k
	}
	return n, nil
}
