package thin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/thinmeta/thinmeta/transaction"
)

// memLimit is how many bytes of non-zero blocks an unpacked or
// decompressed image keeps in memory; past it they move to an unlinked
// temporary file.
const memLimit = 1 << 30

// maxImageSize bounds a decompressed image: no metadata device is larger
// (the kernel uses at most spacemap.MaxMetadataBlocks blocks, under 16
// GiB), so a frame that holds more is not a metadata image. (A variable
// for tests.)
var maxImageSize int64 = 16 << 30

// sparseImage is a private copy of an image of size bytes that stores only
// the blocks written to it and are not all zeros: the others read as
// zeros and cost nothing, so an image's memory follows what it holds, not
// the size its header or frame claims. Non-zero blocks are kept in memory
// up to memLimit bytes, then in an unlinked temporary file. It is safe for
// concurrent use.
type sparseImage struct {
	mu     sync.RWMutex
	size   int64
	blocks map[int64][]byte // by block number
	held   int64            // bytes in blocks
	spill  *os.File         // once held would pass memLimit; holds every block
}

func newSparseImage(size int64) *sparseImage {
	return &sparseImage{size: size, blocks: map[int64][]byte{}}
}

const imageBlock = transaction.BlockSize

// WriteAt stores whole blocks (as pack.Unpack and the decompressor write
// them); a partial block is merged with what is stored.
func (s *sparseImage) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > s.size {
		return 0, fmt.Errorf("write of %d bytes at %d beyond the %d-byte image", len(p), off, s.size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for len(p) > 0 {
		b, in := off/imageBlock, int(off%imageBlock)
		k := min(len(p), imageBlock-in)
		if err := s.put(b, in, p[:k]); err != nil {
			return n, err
		}
		p, off, n = p[k:], off+int64(k), n+k
	}
	return n, nil
}

// put writes data at offset in of block b.
func (s *sparseImage) put(b int64, in int, data []byte) error {
	if s.spill != nil {
		_, err := s.spill.WriteAt(data, b*imageBlock+int64(in))
		return err
	}
	blk, ok := s.blocks[b]
	if !ok {
		if allZero(data) {
			return nil
		}
		if s.held+imageBlock > memLimit {
			if err := s.spillToFile(); err != nil {
				return err
			}
			return s.put(b, in, data)
		}
		blk = make([]byte, imageBlock)
		s.blocks[b] = blk
		s.held += imageBlock
	}
	copy(blk[in:], data)
	return nil
}

// spillToFile moves the blocks to an unlinked temporary file (sparse: the
// zeros are holes).
func (s *sparseImage) spillToFile() error {
	f, err := os.CreateTemp("", "thinmeta-image-*")
	if err != nil {
		return err
	}
	os.Remove(f.Name())
	if err := f.Truncate(s.size); err != nil {
		f.Close()
		return err
	}
	for b, blk := range s.blocks {
		if _, err := f.WriteAt(blk, b*imageBlock); err != nil {
			f.Close()
			return err
		}
	}
	s.spill, s.blocks, s.held = f, nil, 0
	return nil
}

// ReadAt implements io.ReaderAt.
func (s *sparseImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.spill != nil {
		if off >= s.size {
			return 0, io.EOF
		}
		want := len(p)
		if int64(want) > s.size-off {
			p = p[:s.size-off]
		}
		n, err := s.spill.ReadAt(p, off)
		if err == nil && n < want {
			err = io.EOF
		}
		return n, err
	}
	n := 0
	for len(p) > 0 {
		if off >= s.size {
			return n, io.EOF
		}
		b, in := off/imageBlock, int(off%imageBlock)
		k := int(min(int64(min(len(p), imageBlock-in)), s.size-off))
		if blk, ok := s.blocks[b]; ok {
			copy(p[:k], blk[in:])
		} else {
			clear(p[:k])
		}
		p, off, n = p[k:], off+int64(k), n+k
	}
	return n, nil
}

// Close releases the temporary file, if any.
func (s *sparseImage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocks = nil
	if s.spill != nil {
		return s.spill.Close()
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
