package walk

import (
	"io"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// Chunked reading: a walk reads one 4 KiB block at a time, and one system
// call per block dominates the cost of a walk. The trees of restored pools
// and most of those the kernel writes lie in runs of nearby blocks, so
// reading aligned chunks and keeping the last few serves most blocks from
// memory.
const (
	chunkSize = 64 << 10
	nrSlots   = 64 // 4 MiB per reader
)

type slot struct {
	idx int64 // chunk index, -1 when empty
	n   int   // valid bytes
	buf []byte
}

// chunkReader is an io.ReaderAt over the first size bytes of ra that reads
// in aligned chunks and caches them, direct-mapped. It is not safe for
// concurrent use.
type chunkReader struct {
	ra    io.ReaderAt
	size  int64
	slots [nrSlots]slot
}

func newChunkReader(ra io.ReaderAt, size int64) *chunkReader {
	c := &chunkReader{ra: ra, size: size}
	for i := range c.slots {
		c.slots[i].idx = -1
	}
	return c
}

// ReadAt implements io.ReaderAt. A read that spans chunks, or whose chunk
// cannot be read whole, goes to the device directly, so that errors are
// those of the bytes asked for.
func (c *chunkReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || len(p) == 0 || off >= c.size {
		return c.ra.ReadAt(p, off)
	}
	idx := off / chunkSize
	if (off+int64(len(p))-1)/chunkSize != idx {
		return c.ra.ReadAt(p, off)
	}
	s := &c.slots[idx%nrSlots]
	if s.idx != idx {
		base := idx * chunkSize
		n := int(min(chunkSize, c.size-base))
		if s.buf == nil {
			s.buf = make([]byte, chunkSize)
		}
		got, _ := c.ra.ReadAt(s.buf[:n], base)
		if got < n {
			s.idx = -1
			return c.ra.ReadAt(p, off)
		}
		s.idx, s.n = idx, n
	}
	o := int(off - idx*chunkSize)
	if o+len(p) > s.n {
		return c.ra.ReadAt(p, off)
	}
	return copy(p, s.buf[o:o+len(p)]), nil
}

// NewReader returns a block reader over p's device for one goroutine's
// walks. It reads ahead in chunks; use one per goroutine.
func NewReader(p *thin.Pool) *transaction.Reader {
	r := p.Reader()
	size := int64(r.NrBlocks()) * transaction.BlockSize
	return transaction.NewReader(newChunkReader(r.ReaderAt(), size), size)
}
