package main

import (
	"bytes"
	"encoding/binary"
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

// lz4Input decompresses the LZ4 frames of f (several frames, and skippable
// frames, are read as the lz4 tool reads them) into memory, or into an
// unlinked temporary file once the image is larger than memLimit.
func lz4Input(f *os.File) (*input, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	zr := lz4.NewReader(f)
	fail := func(err error) error { return fmt.Errorf("%s: lz4: %w", f.Name(), err) }
	// The first block tells the content size, when the frame records it.
	var mem bytes.Buffer
	if _, err := io.CopyN(&mem, zr, 4096); err != nil && err != io.EOF {
		return nil, fail(err)
	}
	if n := zr.Size(); n > mem.Len() && n <= memLimit {
		mem.Grow(n - mem.Len())
	}
	_, err := io.CopyN(&mem, zr, memLimit+1-int64(mem.Len()))
	if err == io.EOF {
		return imageInput(mem.Bytes(), f.Name())
	}
	if err != nil {
		return nil, fail(err)
	}
	tmp, err := os.CreateTemp("", "thinmeta-lz4-*")
	if err != nil {
		return nil, err
	}
	os.Remove(tmp.Name())
	n, err := io.Copy(tmp, io.MultiReader(&mem, zr))
	if err != nil {
		tmp.Close()
		return nil, fail(err)
	}
	if n%4096 != 0 {
		tmp.Close()
		return nil, fmt.Errorf("%s: lz4 frame holds %d bytes, not whole 4 KiB blocks", f.Name(), n)
	}
	return &input{ReaderAt: tmp, size: n, closer: tmp.Close}, nil
}

// imageInput serves an image held in memory.
func imageInput(b []byte, name string) (*input, error) {
	if len(b)%4096 != 0 {
		return nil, fmt.Errorf("%s: lz4 frame holds %d bytes, not whole 4 KiB blocks", name, len(b))
	}
	return &input{ReaderAt: bytes.NewReader(b), size: int64(len(b))}, nil
}

// writeLZ4 compresses the size bytes of r into one LZ4 frame on w, in the
// lz4 tool's default frame format (4 MiB independent blocks, content
// checksum), with the content size recorded. The output depends only on
// the input.
func writeLZ4(w io.Writer, r io.ReaderAt, size int64) error {
	zw := lz4.NewWriter(w)
	if err := zw.Apply(lz4.BlockSizeOption(lz4.Block4Mb), lz4.ChecksumOption(true), lz4.SizeOption(uint64(size))); err != nil {
		return err
	}
	if _, err := io.Copy(zw, io.NewSectionReader(r, 0, size)); err != nil {
		return err
	}
	return zw.Close()
}
