package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/thinmeta/thinmeta/pack"
)

var unpackCommand = &command{
	name:    "unpack",
	summary: "unpack a thin_metadata_pack file (as thin_metadata_unpack)",
	usage: `Usage: thinmeta unpack [options] -i INPUT -o OUTPUT

Restore the metadata image stored in INPUT, a file written by
thin_metadata_pack or "thinmeta pack" (format version 3), to OUTPUT. Every
block stored in INPUT is written at its place; every other block of the
image is zero. The result is byte-for-byte the image that was packed,
except for blocks that were left out because they had no valid checksum.

If OUTPUT is a regular file (or does not exist), it is written under a
temporary name and renamed into place when complete, so a failed unpack
leaves an existing OUTPUT as it was; the new file is exactly as large as
the packed image. If OUTPUT is a block device (-f is required), it is
opened exclusively and written in place: it must be at least as large as
the packed image, the blocks of the image that the pack does not hold are
zeroed, and anything on the device beyond the image is left untouched.

Every stored block is checked while it is decoded: it must expand to
exactly 4096 bytes, carry a valid checksum and lie within the image. A
damaged or truncated INPUT stops the unpack with an error.

Options:
  -i, --input FILE    the pack file to read (required)
  -o, --output FILE   the image file or metadata device to write (required)
  -f, --force         replace OUTPUT if it already exists, or write to a
                      block device
  -q, --quiet         show no progress line
  -h, --help          show this help

While unpacking, a progress line is shown on standard error if it is a
terminal (not with -q).

Exit status: 0 success, 1 failure (damaged or truncated INPUT, OUTPUT
exists and -f was not given, device too small, I/O error), 2 bad usage.
`,
}

func init() { unpackCommand.run = runUnpack }

func runUnpack(e *env, args []string) int {
	c := unpackCommand
	o, code, ok := e.parseInOut(c, args)
	if !ok {
		return code
	}
	in, size, err := openMetadata(o.input)
	if err != nil {
		return e.fail(c, err)
	}
	defer in.Close()
	h, err := pack.ReadHeader(in)
	if err != nil {
		return e.fail(c, inFile(o.input, err))
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return e.fail(c, err)
	}
	out, err := createOutput(o.output, o.force, true, in)
	if err != nil {
		return e.fail(c, err)
	}
	imageSize := int64(h.NrBlocks) * 4096
	if out.device && out.size < imageSize {
		out.abort()
		return e.fail(c, fmt.Errorf("%s: device of %d bytes is smaller than the packed image (%d bytes)",
			o.output, out.size, imageSize))
	}
	update, end := e.progress("unpack", o.quiet)
	r := &countingReader{r: bufio.NewReaderSize(in, 1<<20), total: uint64(size), report: update}
	if out.device {
		err = unpackToDevice(r, out, h.NrBlocks)
	} else {
		_, err = pack.Unpack(r, out.f)
	}
	end()
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		out.abort()
		if errors.Is(err, pack.ErrFormat) {
			err = inFile(o.input, err)
		}
		return e.fail(c, err)
	}
	return exitOK
}

// unpackToDevice unpacks into a device, which cannot be truncated, and
// then zeroes the blocks of the image the pack did not hold.
func unpackToDevice(r io.Reader, out *output, nrBlocks uint64) error {
	t := &blockTracker{w: out.f, written: make([]uint64, (nrBlocks+63)/64)}
	if _, err := pack.Unpack(r, t); err != nil {
		return err
	}
	const batch = 256
	zeros := make([]byte, batch*4096)
	for b := uint64(0); b < nrBlocks; {
		if t.has(b) {
			b++
			continue
		}
		n := uint64(1)
		for n < batch && b+n < nrBlocks && !t.has(b+n) {
			n++
		}
		if _, err := out.f.WriteAt(zeros[:n*4096], int64(b)*4096); err != nil {
			return err
		}
		b += n
	}
	return nil
}

// blockTracker is an io.WriterAt (without Truncate) that records which
// blocks were written.
type blockTracker struct {
	w       io.WriterAt
	mu      sync.Mutex
	written []uint64 // bitmap
}

func (t *blockTracker) WriteAt(p []byte, off int64) (int, error) {
	n, err := t.w.WriteAt(p, off)
	t.mu.Lock()
	for b := uint64(off) / 4096; b < uint64(off+int64(n))/4096; b++ {
		if b/64 < uint64(len(t.written)) {
			t.written[b/64] |= 1 << (b % 64)
		}
	}
	t.mu.Unlock()
	return n, err
}

func (t *blockTracker) has(b uint64) bool { return t.written[b/64]&(1<<(b%64)) != 0 }

// countingReader reports how many bytes have been read.
type countingReader struct {
	r      io.Reader
	n      uint64
	total  uint64
	report func(done, total uint64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	c.report(c.n, c.total)
	return n, err
}

// inFile prefixes an error with the file it is about.
func inFile(path string, err error) error {
	return fmt.Errorf("%s: %w", path, err)
}
