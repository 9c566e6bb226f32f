package main

import (
	"io"

	"github.com/pierrec/lz4/v4"
)

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
