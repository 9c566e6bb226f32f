package pack

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/thinmeta/thinmeta/transaction"
)

// maxChunkSize bounds the compressed size of one chunk. Writers put at
// most BlocksPerChunk blocks (under 9 MiB before compression) in a chunk.
const maxChunkSize = 256 << 20

// ReadHeader reads and checks the 32-byte file header.
func ReadHeader(r io.Reader) (Header, error) {
	var b [HeaderSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return Header{}, formatErr("reading header: %v", err)
	}
	h := decodeHeader(b[:])
	switch {
	case h.Magic != Magic:
		return h, formatErr("bad magic %#x", h.Magic)
	case h.Version != Version:
		return h, formatErr("unsupported version %d", h.Version)
	case h.BlockSize != bs:
		return h, formatErr("block size %d, only %d is supported", h.BlockSize, bs)
	case h.NrBlocks > math.MaxInt64/bs:
		return h, formatErr("%d blocks is beyond any device", h.NrBlocks)
	}
	return h, nil
}

// IsPacked reports whether the first bytes of a file are a pack header.
func IsPacked(prefix []byte) bool {
	return len(prefix) >= 8 && getU64(prefix) == Magic
}

// Truncater is implemented by outputs that can be sized, such as *os.File.
type Truncater interface{ Truncate(size int64) error }

// Unpack reads a pack file from r and writes every block it holds to w at
// its place. If w is a Truncater it is first sized to the packed device's
// size; otherwise the caller must provide a zero-filled output that large.
// Blocks absent from the pack read as zeros. Chunks are decoded in
// parallel, so w must allow concurrent WriteAt calls, as *os.File does.
//
// Every decoded block must expand to exactly 4096 bytes carrying a valid
// checksum of a known kind and lie within the device; a damaged or
// truncated pack file fails with an error wrapping ErrFormat (and what was
// decoded before stays written). Errors of r and w are returned as they
// are.
func Unpack(r io.Reader, w io.WriterAt) (Header, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	h, err := ReadHeader(br)
	if err != nil {
		return h, err
	}
	if t, ok := w.(Truncater); ok {
		if err := t.Truncate(int64(h.NrBlocks) * bs); err != nil {
			return h, err
		}
	}

	chunks := make(chan []byte, 2)
	var failed atomic.Bool
	var firstErr error
	var once sync.Once
	fail := func(err error) {
		once.Do(func() { firstErr = err })
		failed.Store(true)
	}
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for c := range chunks {
				if failed.Load() {
					continue
				}
				if err := unpackChunk(c, h.NrBlocks, w); err != nil {
					fail(err)
				}
			}
		})
	}
	for !failed.Load() {
		c, err := readChunk(br)
		if err != nil {
			fail(err)
			break
		}
		if c == nil {
			break
		}
		chunks <- c
	}
	close(chunks)
	wg.Wait()
	return h, firstErr
}

// readChunk reads the next chunk, or returns nil at the end of the file.
func readChunk(br *bufio.Reader) ([]byte, error) {
	var lb [chunkLengthSize]byte
	if _, err := io.ReadFull(br, lb[:]); err != nil {
		switch err {
		case io.EOF:
			return nil, nil
		case io.ErrUnexpectedEOF:
			return nil, formatErr("truncated chunk length")
		}
		return nil, err
	}
	n := getU64(lb[:])
	if n > maxChunkSize {
		return nil, formatErr("chunk of %d bytes (at most %d expected)", n, maxChunkSize)
	}
	// Grow the buffer as data arrives rather than trusting n.
	var c bytes.Buffer
	got, err := io.Copy(&c, io.LimitReader(br, int64(n)))
	if err != nil {
		return nil, err
	}
	if uint64(got) != n {
		return nil, formatErr("chunk truncated: %d of %d bytes", got, n)
	}
	if n == 0 {
		return []byte{}, nil
	}
	return c.Bytes(), nil
}

// zlibErrors marks errors of the decompressor (other than the end of the
// stream) as format errors, so that they are not mistaken for the end of
// the records.
type zlibErrors struct{ r io.Reader }

func (z zlibErrors) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	if err != nil && err != io.EOF {
		err = formatErr("chunk: %v", err)
	}
	return n, err
}

// unpackChunk decodes the records of one chunk and writes their blocks.
// The records end where fewer than 8 bytes remain.
func unpackChunk(c []byte, nrBlocks uint64, w io.WriterAt) error {
	if len(c) == 0 {
		return nil // thin_metadata_pack reads an empty chunk as no records
	}
	zr, err := zlib.NewReader(bytes.NewReader(c))
	if err != nil {
		return formatErr("chunk: %v", err)
	}
	src := bufio.NewReaderSize(zlibErrors{zr}, 64<<10)
	block := make([]byte, 0, bs)
	for {
		var nb [recordBlockSize]byte
		if _, err := io.ReadFull(src, nb[:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil
			}
			return err
		}
		b := getU64(nb[:])
		if b >= nrBlocks {
			return formatErr("block %d beyond the %d-block device", b, nrBlocks)
		}
		out, err := decodeBlock(src, block)
		if err != nil {
			return inBlock(b, err)
		}
		if _, ok := transaction.SaltOf(out); !ok {
			return formatErr("decoded block %d has no valid checksum", b)
		}
		if _, err := w.WriteAt(out, int64(b)*bs); err != nil {
			return fmt.Errorf("writing block %d: %w", b, err)
		}
	}
}
