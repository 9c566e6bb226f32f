package memdev

import (
	"fmt"
	"sync"
)

// sparseBlock is the granularity of a Sparse device.
const sparseBlock = 4096

// Sparse is an in-memory device of any size, as a sparse file is: blocks
// never written read as zeros and take no memory. It is a
// transaction.Device, for tests of metadata on devices far larger than
// the pool they hold.
type Sparse struct {
	mu     sync.Mutex
	size   int64
	blocks map[int64][]byte
}

// NewSparse returns a device of size bytes holding image at its start.
func NewSparse(image []byte, size int64) *Sparse {
	s := &Sparse{size: size, blocks: make(map[int64][]byte)}
	for off := 0; off < len(image); off += sparseBlock {
		blk := make([]byte, sparseBlock)
		copy(blk, image[off:])
		s.blocks[int64(off/sparseBlock)] = blk
	}
	return s
}

// Size returns the device size in bytes.
func (s *Sparse) Size() int64 { return s.size }

// ReadAt implements io.ReaderAt.
func (s *Sparse) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off < 0 || off > s.size || int64(len(p)) > s.size-off {
		return 0, fmt.Errorf("memdev: read [%d, +%d) beyond %d", off, len(p), s.size)
	}
	for i := 0; i < len(p); {
		b, o := (off+int64(i))/sparseBlock, int((off+int64(i))%sparseBlock)
		k := min(sparseBlock-o, len(p)-i)
		if blk, ok := s.blocks[b]; ok {
			copy(p[i:i+k], blk[o:])
		} else {
			clear(p[i : i+k])
		}
		i += k
	}
	return len(p), nil
}

// WriteAt implements io.WriterAt.
func (s *Sparse) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off < 0 || off > s.size || int64(len(p)) > s.size-off {
		return 0, fmt.Errorf("memdev: write [%d, +%d) beyond %d", off, len(p), s.size)
	}
	for i := 0; i < len(p); {
		b, o := (off+int64(i))/sparseBlock, int((off+int64(i))%sparseBlock)
		k := min(sparseBlock-o, len(p)-i)
		blk, ok := s.blocks[b]
		if !ok {
			blk = make([]byte, sparseBlock)
			s.blocks[b] = blk
		}
		copy(blk[o:], p[i:i+k])
		i += k
	}
	return len(p), nil
}

// Flush implements transaction.Device.
func (s *Sparse) Flush() error { return nil }

// Block returns a copy of block b (4096 bytes).
func (s *Sparse) Block(b int64) []byte {
	out := make([]byte, sparseBlock)
	s.ReadAt(out, b*sparseBlock)
	return out
}
