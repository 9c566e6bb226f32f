package pack

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/thinmeta/thinmeta/transaction"
)

const bs = transaction.BlockSize

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
	case h.NrBlocks > 1<<52:
		return h, formatErr("%d blocks is beyond any device", h.NrBlocks)
	}
	return h, nil
}

// IsPacked reports whether the first bytes of a file are a pack header.
func IsPacked(prefix []byte) bool {
	return len(prefix) >= 8 && binary.LittleEndian.Uint64(prefix) == Magic
}

// Truncater is implemented by outputs that can be sized, such as *os.File.
type Truncater interface{ Truncate(size int64) error }

// Unpack reads a pack file from r and writes every block it holds to w at
// its place. If w is a Truncater it is first sized to the packed device's
// size; otherwise the caller must provide a zero-filled output that large.
// Blocks absent from the pack read as zeros. Every decoded block must carry
// a valid checksum of a known kind.
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
	chunks := make(chan []byte, 4)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for c := range chunks {
				if err := unpackChunk(c, h.NrBlocks, w); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		})
	}
	readErr := func() error {
		for {
			var lb [8]byte
			if _, err := io.ReadFull(br, lb[:]); err != nil {
				if err == io.EOF {
					return nil
				}
				return formatErr("reading chunk length: %v", err)
			}
			n := binary.LittleEndian.Uint64(lb[:])
			if n > 64<<20 {
				return formatErr("chunk of %d bytes", n)
			}
			c := make([]byte, n)
			if _, err := io.ReadFull(br, c); err != nil {
				return formatErr("reading chunk: %v", err)
			}
			select {
			case chunks <- c:
			case err := <-errc:
				return err
			}
		}
	}()
	close(chunks)
	wg.Wait()
	if readErr != nil {
		return h, readErr
	}
	select {
	case err := <-errc:
		return h, err
	default:
	}
	return h, nil
}

func unpackChunk(c []byte, nrBlocks uint64, w io.WriterAt) error {
	zr, err := zlib.NewReader(bytes.NewReader(c))
	if err != nil {
		return formatErr("chunk: %v", err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, BlocksPerChunk*(8+2*bs)))
	if err != nil {
		return formatErr("chunk: %v", err)
	}
	block := make([]byte, 0, bs)
	for pos := 0; len(data)-pos >= 8; {
		b := binary.LittleEndian.Uint64(data[pos:])
		if b >= nrBlocks {
			return formatErr("block %d beyond the %d-block device", b, nrBlocks)
		}
		m := vm{in: data[pos+8:]}
		out, err := m.run(block[:0], bs, bs)
		if err != nil {
			return fmt.Errorf("block %d: %w", b, err)
		}
		if _, ok := transaction.SaltOf(out); !ok {
			return formatErr("decoded block %d has no valid checksum", b)
		}
		if _, err := w.WriteAt(out, int64(b)*bs); err != nil {
			return err
		}
		pos += 8 + m.pos
	}
	return nil
}

// encodeBlock appends the encoding of a checksummed block of kind salt.
func encodeBlock(e *encoder, blk []byte, salt uint32) {
	if salt != transaction.SaltNode {
		e.literal(blk)
		return
	}
	le := binary.LittleEndian
	flags := le.Uint32(blk[4:])
	maxEntries := int(le.Uint32(blk[20:]))
	valueSize := int(le.Uint32(blk[24:]))
	keysEnd := 32 + 8*maxEntries
	if maxEntries >= 4096 || keysEnd > bs {
		e.literal(blk)
		return
	}
	u64 := func(b []byte) []uint64 {
		ns := make([]uint64, len(b)/8)
		for i := range ns {
			ns[i] = le.Uint64(b[8*i:])
		}
		return ns
	}
	e.literal(blk[:32])
	if maxEntries > 0 {
		e.u64s(u64(blk[32:keysEnd]))
	}
	valsEnd := keysEnd + 8*maxEntries
	switch {
	case flags == 2 && valueSize == 8 && maxEntries > 0:
		e.shifted(u64(blk[keysEnd:valsEnd]))
		e.literal(blk[valsEnd:])
	case flags == 2 || valsEnd > bs || maxEntries == 0:
		e.literal(blk[keysEnd:])
	default:
		e.u64s(u64(blk[keysEnd:valsEnd]))
		e.literal(blk[valsEnd:])
	}
}

// Pack writes the pack form of the first size bytes of r to w: every block
// whose checksum matches a known block kind, compressed. Blocks are read in
// segments and packed in parallel; the output is deterministic.
func Pack(r io.ReaderAt, size int64, w io.Writer) error {
	nrBlocks := uint64(size) / bs
	var hdr [HeaderSize]byte
	Header{Magic, Version, bs, nrBlocks}.encode(hdr[:])
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	const segBlocks = 4096
	nseg := (nrBlocks + segBlocks - 1) / segBlocks
	type result struct {
		chunks [][]byte
		err    error
	}
	workers := runtime.GOMAXPROCS(0)
	results := make([]chan result, nseg)
	for i := range results {
		results[i] = make(chan result, 1)
	}
	sem := make(chan struct{}, workers+1)
	go func() {
		for s := range nseg {
			sem <- struct{}{}
			go func() {
				chunks, err := packSegment(r, s*segBlocks, min(nrBlocks, (s+1)*segBlocks))
				results[s] <- result{chunks, err}
			}()
		}
	}()
	for s := range nseg {
		res := <-results[s]
		<-sem
		if res.err != nil {
			// Drain what is still running so no goroutine leaks.
			for t := s + 1; t < nseg; t++ {
				<-results[t]
				<-sem
			}
			return res.err
		}
		for _, c := range res.chunks {
			var lb [8]byte
			binary.LittleEndian.PutUint64(lb[:], uint64(len(c)))
			if _, err := w.Write(lb[:]); err != nil {
				return err
			}
			if _, err := w.Write(c); err != nil {
				return err
			}
		}
	}
	return nil
}

func packSegment(r io.ReaderAt, lo, hi uint64) ([][]byte, error) {
	buf := make([]byte, (hi-lo)*bs)
	n, err := r.ReadAt(buf, int64(lo)*bs)
	if n != len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("thinmeta: reading blocks %d..%d: %w", lo, hi-1, err)
	}
	var chunks [][]byte
	var e encoder
	records := 0
	flush := func() error {
		if records == 0 {
			return nil
		}
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		if _, err := zw.Write(e.out); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		chunks = append(chunks, z.Bytes())
		e.out = e.out[:0]
		records = 0
		return nil
	}
	for b := lo; b < hi; b++ {
		blk := buf[(b-lo)*bs : (b-lo+1)*bs]
		salt, ok := transaction.SaltOf(blk)
		if !ok {
			continue
		}
		e.out = binary.LittleEndian.AppendUint64(e.out, b)
		encodeBlock(&e, blk, salt)
		records++
		if records == BlocksPerChunk {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return chunks, nil
}
