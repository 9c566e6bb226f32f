package transaction

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// failingAt is a device whose reads fail on one block.
type failingAt struct {
	data []byte
	bad  int64
}

func (f failingAt) ReadAt(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	if off <= f.bad*BlockSize && f.bad*BlockSize < end {
		n := copy(p, f.data[off:f.bad*BlockSize+1000]) // and part of the bad block
		return n, errors.New("injected I/O error")
	}
	return bytes.NewReader(f.data).ReadAt(p, off)
}

// ReadAhead gives the same bytes and the same errors as Reader.ReadInto for
// sequential, scattered and mixed scans over a device with damaged blocks,
// a failing block and a partial last block.
func TestReadAheadMatchesReader(t *testing.T) {
	const nr = 300
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, nr*BlockSize+100) // partial block at the end
	v := &Validator{Kind: "test", Salt: SaltNode}
	for b := range uint64(nr) {
		blk := data[b*BlockSize : (b+1)*BlockSize]
		for i := 16; i < len(blk); i += 97 {
			blk[i] = byte(rng.Uint32())
		}
		Seal(blk, b, SaltNode)
	}
	data[17*BlockSize+500] ^= 1             // checksum
	Seal(data[40*BlockSize:], 41, SaltNode) // block number
	dev := failingAt{data: data, bad: 200}

	patterns := map[string][]uint64{}
	var seq, scattered, mixed []uint64
	for b := range uint64(nr + 3) {
		seq = append(seq, b)
	}
	for range 500 {
		scattered = append(scattered, rng.Uint64N(nr+5))
	}
	for i := range uint64(nr + 2) {
		mixed = append(mixed, i)
		if i%37 == 0 {
			mixed = append(mixed, rng.Uint64N(nr))
		}
		if i%50 == 0 {
			mixed = append(mixed, i-min(i, 20)) // go back
		}
	}
	patterns["sequential"], patterns["scattered"], patterns["mixed"] = seq, scattered, mixed
	for name, blocks := range patterns {
		for _, max := range []int{1, 2, 16, 256} {
			t.Run(fmt.Sprint(name, max), func(t *testing.T) {
				r := NewReader(dev, int64(len(data)))
				a := NewReadAhead(r, max)
				want, got := make([]byte, BlockSize), make([]byte, BlockSize)
				for i, b := range blocks {
					clear(want)
					clear(got)
					werr := r.ReadInto(b, want, v)
					gerr := a.ReadInto(b, got, v)
					if fmt.Sprint(werr) != fmt.Sprint(gerr) {
						t.Fatalf("read %d (block %d): Reader: %v; ReadAhead: %v", i, b, werr, gerr)
					}
					if werr == nil && !bytes.Equal(want, got) {
						t.Fatalf("read %d (block %d): different bytes", i, b)
					}
				}
			})
		}
	}
}

// A long sequential scan needs few device reads.
func TestReadAheadFewReads(t *testing.T) {
	const nr = 1000
	data := make([]byte, nr*BlockSize)
	for b := range uint64(nr) {
		Seal(data[b*BlockSize:], b, SaltNode)
	}
	c := &countingReaderAt{r: bytes.NewReader(data)}
	a := NewReadAhead(NewReader(c, int64(len(data))), 256)
	buf := make([]byte, BlockSize)
	v := &Validator{Kind: "test", Salt: SaltNode}
	for b := range uint64(nr) {
		if err := a.ReadInto(b, buf, v); err != nil {
			t.Fatal(err)
		}
	}
	if c.n > 15 {
		t.Errorf("%d device reads for %d sequential blocks", c.n, nr)
	}
}

type countingReaderAt struct {
	r io.ReaderAt
	n int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.n++
	return c.r.ReadAt(p, off)
}
