package thin

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pierrec/lz4/v4"
)

// lz4Magic starts an LZ4 frame (the format of the lz4 command-line tool).
const lz4Magic = 0x184D2204

// isLZ4 reports whether a file starting with head is an LZ4 frame, or a
// skippable frame (which the lz4 tool skips to the frames after it).
func isLZ4(head []byte) bool {
	if len(head) < 4 {
		return false
	}
	m := binary.LittleEndian.Uint32(head)
	return m == lz4Magic || isSkippable(m)
}

// isSkippable reports whether m is the magic number of a skippable frame.
func isSkippable(m uint32) bool { return m&0xFFFFFFF0 == 0x184D2A50 }

// ErrLZ4 means an LZ4 image is not a complete, well-formed set of frames
// (truncated, or damaged in its structure), or does not hold a metadata
// image.
var ErrLZ4 = errors.New("bad lz4 image")

// lz4Image decompresses the LZ4 frames of f (several frames, and skippable
// frames, as the lz4 tool reads them) into a sparse private copy: blocks
// of zeros cost nothing, and more than maxImageSize bytes is refused as
// no metadata device's. The frames' structure is checked first, to their
// end marks, so a truncated frame is an error (as "lz4 -t" says) rather
// than a shorter image. With sbCheck set (a caller that needs a pool),
// block 0 is validated as soon as it is decompressed and a block 0 that
// is not a superblock stops the work there.
func lz4Image(f *os.File, sbCheck func([]byte) error) (*Image, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", f.Name(), ErrLZ4, fmt.Sprintf(format, args...))
	}
	if err := checkLZ4Frames(f); err != nil {
		return nil, fail("%v", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	zr := lz4.NewReader(bufio.NewReaderSize(f, 1<<20))
	img := newSparseImage(maxImageSize)
	buf := make([]byte, 1<<20)
	var size int64
	for {
		n, err := io.ReadFull(zr, buf)
		if n > 0 {
			if size+int64(n) > maxImageSize {
				img.Close()
				return nil, fail("it holds more than %d bytes, more than any metadata device", maxImageSize)
			}
			if size == 0 && sbCheck != nil && n >= imageBlock {
				if serr := sbCheck(buf[:imageBlock]); serr != nil {
					img.Close()
					return nil, fmt.Errorf("%s: %w", f.Name(), serr)
				}
			}
			img.WriteAt(buf[:n], size)
			size += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			img.Close()
			return nil, fail("%v", err)
		}
	}
	switch {
	case size == 0:
		img.Close()
		return nil, fail("the frames hold no data")
	case size%imageBlock != 0:
		img.Close()
		return nil, fail("the frames hold %d bytes, not whole 4 KiB blocks", size)
	}
	img.size = size
	return &Image{ra: img, size: size, closer: img.Close}, nil
}

// checkLZ4Frames reads the structure of the LZ4 frames in f (without
// decompressing): every frame's descriptor, its block sizes and data to
// its end mark and checksum, and skippable frames. It fails on a
// truncated or malformed frame.
func checkLZ4Frames(f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, 1<<16)
	var off int64
	need := func(n int, what string) ([]byte, error) {
		b := make([]byte, n)
		k, err := io.ReadFull(r, b)
		off += int64(k)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("truncated at byte %d, in the %s (unfinished stream)", off, what)
		}
		return b, err
	}
	skip := func(n int64, what string) error {
		k, err := io.CopyN(io.Discard, r, n)
		off += k
		if err == io.EOF {
			return fmt.Errorf("truncated at byte %d, in the %s (unfinished stream)", off, what)
		}
		return err
	}
	for frames := 0; ; frames++ {
		if frames > 0 {
			if _, err := r.Peek(1); err == io.EOF {
				return nil
			}
		}
		m, err := need(4, "frame magic")
		if err != nil {
			return err
		}
		magic := binary.LittleEndian.Uint32(m)
		if isSkippable(magic) {
			sz, err := need(4, "skippable frame's size")
			if err != nil {
				return err
			}
			if err := skip(int64(binary.LittleEndian.Uint32(sz)), "skippable frame"); err != nil {
				return err
			}
			continue
		}
		if magic != lz4Magic {
			return fmt.Errorf("byte %d: %#x is not the magic number of an LZ4 frame", off-4, magic)
		}
		d, err := need(2, "frame descriptor")
		if err != nil {
			return err
		}
		flg, bd := d[0], d[1]
		if flg>>6 != 1 {
			return fmt.Errorf("byte %d: frame version %d (only 1 exists)", off-2, flg>>6)
		}
		blockMax := int64(0)
		switch (bd >> 4) & 7 {
		case 4:
			blockMax = 64 << 10
		case 5:
			blockMax = 256 << 10
		case 6:
			blockMax = 1 << 20
		case 7:
			blockMax = 4 << 20
		default:
			return fmt.Errorf("byte %d: bad maximum block size code %d", off-1, (bd>>4)&7)
		}
		blockSum, contentSize, contentSum, dictID := flg&0x10 != 0, flg&0x08 != 0, flg&0x04 != 0, flg&0x01 != 0
		rest := 1 // the header checksum
		if contentSize {
			rest += 8
		}
		if dictID {
			rest += 4
		}
		if _, err := need(rest, "frame descriptor"); err != nil {
			return err
		}
		for {
			h, err := need(4, "block size (no end mark)")
			if err != nil {
				return err
			}
			n := int64(binary.LittleEndian.Uint32(h) &^ (1 << 31))
			if binary.LittleEndian.Uint32(h) == 0 {
				break // end mark
			}
			if n > blockMax {
				return fmt.Errorf("byte %d: a block of %d bytes in a frame of blocks up to %d", off-4, n, blockMax)
			}
			if blockSum {
				n += 4
			}
			if err := skip(n, "block"); err != nil {
				return err
			}
		}
		if contentSum {
			if _, err := need(4, "content checksum"); err != nil {
				return err
			}
		}
	}
}
