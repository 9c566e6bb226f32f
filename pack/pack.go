package pack

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/thinmeta/thinmeta/transaction"
)

const bs = transaction.BlockSize

// segmentBlocks is how many consecutive blocks one worker reads and packs
// at a time (16 MiB).
const segmentBlocks = 4096

// Pack writes the pack form of the first size bytes of r to w: a header
// giving size/4096 blocks, then every block whose checksum matches a known
// block kind (FORMAT.md §1.2), encoded and compressed. Other blocks are
// left out; unpacking restores them as zeros. Blocks are read in segments
// and packed in parallel; the output is deterministic. r must allow
// concurrent ReadAt calls, as *os.File does.
func Pack(r io.ReaderAt, size int64, w io.Writer) error {
	if size < 0 {
		return fmt.Errorf("pack: negative size %d", size)
	}
	nrBlocks := uint64(size) / bs
	var hdr [HeaderSize]byte
	Header{Magic, Version, bs, nrBlocks}.encode(hdr[:])
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	nseg := (nrBlocks + segmentBlocks - 1) / segmentBlocks
	if nseg == 0 {
		return nil
	}

	// Workers pack segments in any order; the writer takes their results
	// in segment order. At most window segments are between being handed
	// out and being written, which bounds memory and lets segment s use
	// result slot s % window.
	type result struct {
		chunks [][]byte
		err    error
	}
	workers := runtime.GOMAXPROCS(0)
	window := uint64(workers + 1)
	slots := make([]chan result, window)
	for i := range slots {
		slots[i] = make(chan result, 1)
	}
	tokens := make(chan struct{}, window)
	next := make(chan uint64)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(next)
		for s := range nseg {
			select {
			case tokens <- struct{}{}:
			case <-quit:
				return
			}
			select {
			case next <- s:
			case <-quit:
				return
			}
		}
	})
	for range workers {
		wg.Go(func() {
			for s := range next {
				chunks, err := packSegment(r, s*segmentBlocks, min(nrBlocks, (s+1)*segmentBlocks))
				slots[s%window] <- result{chunks, err}
			}
		})
	}
	defer wg.Wait()
	defer close(quit)
	for s := range nseg {
		res := <-slots[s%window]
		<-tokens
		if res.err != nil {
			return res.err
		}
		for _, c := range res.chunks {
			var lb [chunkLengthSize]byte
			putU64(lb[:], uint64(len(c)))
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

// packSegment packs blocks lo..hi-1 into chunks of at most BlocksPerChunk
// records each.
func packSegment(r io.ReaderAt, lo, hi uint64) ([][]byte, error) {
	buf := make([]byte, (hi-lo)*bs)
	n, err := r.ReadAt(buf, int64(lo)*bs)
	if n != len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading blocks %d..%d: %w", lo, hi-1, err)
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
		e.out = appendU64(e.out, b)
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
