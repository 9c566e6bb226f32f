package thin

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/thinmeta/thinmeta/pack"
)

func isPacked(head []byte) bool { return len(head) >= 8 && pack.IsPacked(head) }

// memLimit is the largest packed image unpacked into memory; larger ones go
// to an unlinked temporary file.
const memLimit = 1 << 30

func unpackImage(f *os.File) (*Image, error) {
	h, err := pack.ReadHeader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	size := int64(h.NrBlocks) * 4096
	if size <= memLimit {
		buf := &memImage{b: make([]byte, size)}
		if _, err := pack.Unpack(f, buf); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
		return &Image{ra: bytes.NewReader(buf.b), size: size}, nil
	}
	tmp, err := os.CreateTemp("", "thinmeta-unpacked-*")
	if err != nil {
		return nil, err
	}
	os.Remove(tmp.Name())
	if _, err := pack.Unpack(f, tmp); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return &Image{ra: tmp, size: size, closer: tmp.Close}, nil
}

// memImage is an in-memory io.WriterAt of fixed size, safe for the
// concurrent writes of pack.Unpack.
type memImage struct {
	mu sync.Mutex
	b  []byte
}

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, fmt.Errorf("write beyond image end")
	}
	return copy(m.b[off:], p), nil
}
