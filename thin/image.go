package thin

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/thinmeta/thinmeta/pack"
)

func isPacked(head []byte) bool { return len(head) >= 8 && pack.IsPacked(head) }

// unpackImage unpacks the pack file f into a sparse private copy. Memory
// follows the blocks the pack really holds: the header's device size
// allocates nothing, so a hostile header claiming a huge device costs
// nothing before its data is read (and the data is bounded by the file).
func unpackImage(f *os.File) (*Image, error) {
	h, err := pack.ReadHeader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	img := newSparseImage(int64(h.NrBlocks) * imageBlock)
	if _, err := pack.Unpack(bufio.NewReaderSize(f, 1<<20), img); err != nil {
		img.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return &Image{ra: img, size: img.size, closer: img.Close}, nil
}
