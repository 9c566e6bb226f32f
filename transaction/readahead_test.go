package transaction

import (
	"bytes"
	"encoding/binary"
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
	data := sealedNodes(nr)
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

// With plans, View and ReadInto give the same bytes and errors as
// Reader.ReadInto, whatever the plan says (right, partly wrong, or
// nothing about the block asked for).
func TestReadAheadPlannedMatchesReader(t *testing.T) {
	const nr = 300
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, nr*BlockSize+100)
	v := &Validator{Kind: "test", Salt: SaltNode}
	for b := range uint64(nr) {
		blk := data[b*BlockSize : (b+1)*BlockSize]
		for i := 16; i < len(blk); i += 89 {
			blk[i] = byte(rng.Uint32())
		}
		Seal(blk, b, SaltNode)
	}
	data[23*BlockSize+700] ^= 1
	Seal(data[60*BlockSize:], 61, SaltNode)
	dev := failingAt{data: data, bad: 150}
	for _, max := range []int{1, 4, 64} {
		r := NewReader(dev, int64(len(data)))
		a := NewReadAhead(r, max)
		want, got := make([]byte, BlockSize), make([]byte, BlockSize)
		for round := range 200 {
			// A plan of runs with gaps, then reads of most of it in order,
			// some skipped, some not planned.
			var plan []uint64
			b := rng.Uint64N(nr + 5)
			for range 1 + rng.IntN(40) {
				plan = append(plan, b)
				b += 1 + uint64(rng.IntN(3))*uint64(rng.IntN(12))
			}
			raw := make([]byte, 8*len(plan))
			for i, p := range plan {
				binary.LittleEndian.PutUint64(raw[8*i:], p)
			}
			a.Plan(raw)
			for _, p := range plan {
				switch rng.IntN(10) {
				case 0:
					continue
				case 1:
					p = rng.Uint64N(nr + 5)
				}
				clear(want)
				werr := r.ReadInto(p, want, v)
				var gerr error
				if rng.IntN(2) == 0 {
					clear(got)
					gerr = a.ReadInto(p, got, v)
				} else {
					var view []byte
					view, gerr = a.View(p, v)
					if gerr == nil {
						copy(got, view)
					}
				}
				if fmt.Sprint(werr) != fmt.Sprint(gerr) {
					t.Fatalf("max %d round %d block %d: Reader: %v; ReadAhead: %v", max, round, p, werr, gerr)
				}
				if werr == nil && !bytes.Equal(want, got) {
					t.Fatalf("max %d round %d block %d: different bytes", max, round, p)
				}
			}
		}
	}
}

// A planned scan reads the planned runs in one read each and nothing
// else: a plan of 3 runs (the last two 5 blocks apart, within planGap)
// costs 2 reads, and an unplanned block costs 1 read of one block.
func TestReadAheadPlannedReads(t *testing.T) {
	const nr = 1000
	data := sealedNodes(nr)
	c := &countingReaderAt{r: bytes.NewReader(data)}
	a := NewReadAhead(NewReader(c, int64(len(data))), 256)
	v := &Validator{Kind: "test", Salt: SaltNode}
	var plan []uint64
	for b := uint64(100); b < 150; b++ {
		plan = append(plan, b)
	}
	for b := uint64(400); b < 420; b++ {
		plan = append(plan, b)
	}
	for b := uint64(425); b < 430; b++ {
		plan = append(plan, b)
	}
	raw := make([]byte, 8*len(plan))
	for i, p := range plan {
		binary.LittleEndian.PutUint64(raw[8*i:], p)
	}
	a.Plan(raw)
	for _, b := range plan {
		if _, err := a.View(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if c.n != 2 {
		t.Errorf("%d device reads for a plan of 3 runs, 2 of them near", c.n)
	}
	if _, err := a.View(700, v); err != nil {
		t.Fatal(err)
	}
	if _, err := a.View(429, v); err != nil { // the window is kept
		t.Fatal(err)
	}
	if c.n != 3 {
		t.Errorf("%d device reads after an unplanned block; want 3", c.n)
	}
}

// sealedNodes returns an image of nr blocks, each sealed as a node at its
// own block number.
func sealedNodes(nr int) []byte {
	data := make([]byte, nr*BlockSize)
	for b := range uint64(nr) {
		Seal(data[b*BlockSize:], b, SaltNode)
	}
	return data
}
