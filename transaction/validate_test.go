package transaction

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// validateDevice is a 64-block device for the read-path tests: every block
// sealed for its location with the node salt and marked good, except those
// damaged below; block 50 fails to read.
func validateDevice(t *testing.T) (dev failingAt, size int64) {
	t.Helper()
	const nr = 64
	data := make([]byte, nr*BlockSize)
	for b := range uint64(nr) {
		blk := data[b*BlockSize : (b+1)*BlockSize]
		blk[100] = 'g'
		Seal(blk, b, SaltNode)
	}
	data[10*BlockSize+700] ^= 0x40          // 10: checksum
	Seal(data[20*BlockSize:], 21, SaltNode) // 20: claims block 21
	data[30*BlockSize+100] = 'x'            // 30: fails the validator's own check
	Seal(data[30*BlockSize:], 30, SaltNode)
	return failingAt{data: data, bad: 50}, int64(len(data))
}

// markValidator checks the mark byte, as a structural check would.
func markValidator(kind string) *Validator {
	return &Validator{Kind: kind, Salt: SaltNode, Check: func(block []byte, location uint64) error {
		if block[100] != 'g' {
			return Corruptf(location, kind, ErrCorrupt, "mark %q", block[100])
		}
		return nil
	}}
}

// readPath is one way of reading a validated block.
type readPath struct {
	name string
	read func(b uint64, v *Validator) ([]byte, error)
}

// readPaths returns every read path over one Reader: Reader.Read and
// ReadInto, ReadAhead's ReadInto (windows of 1 and 16 blocks) and Read, and
// a read-only Manager's Read and ReadInto.
func readPaths(r *Reader) []readPath {
	into := func(f func(uint64, []byte, *Validator) error) func(uint64, *Validator) ([]byte, error) {
		return func(b uint64, v *Validator) ([]byte, error) {
			buf := make([]byte, BlockSize)
			if err := f(b, buf, v); err != nil {
				return nil, err
			}
			return buf, nil
		}
	}
	a1, a16 := NewReadAhead(r, 1), NewReadAhead(r, 16)
	m := &Manager{r: r, dirty: map[uint64]*dirtyBlock{}}
	return []readPath{
		{"Reader.Read", r.Read},
		{"Reader.ReadInto", into(r.ReadInto)},
		{"ReadAhead(1).ReadInto", into(a1.ReadInto)},
		{"ReadAhead(16).ReadInto", into(a16.ReadInto)},
		{"ReadAhead.Read", a16.Read},
		{"Manager.Read", m.Read},
		{"Manager.ReadInto", into(m.ReadInto)},
	}
}

// wantErr is what the device's damage must give, worked out from how the
// device was made rather than from any read path.
func wantErr(b uint64) (sentinel error, ioErr bool) {
	switch b {
	case 10:
		return ErrChecksum, false
	case 20:
		return ErrBlockNumber, false
	case 30:
		return ErrCorrupt, false
	case 50:
		return nil, true
	case 64, 1000:
		return ErrOutOfRange, false
	}
	return nil, false
}

// Every read path gives the same verdict on every block, good or damaged:
// the same bytes, or the same typed error naming the block and the kind it
// was read as.
func TestReadPathsValidateAlike(t *testing.T) {
	dev, size := validateDevice(t)
	v := markValidator("test node")
	blocks := []uint64{0, 10, 11, 20, 30, 31, 49, 50, 51, 63, 64, 1000}
	// Each path runs in a scan order of its own (forwards, backwards,
	// twice) over a fresh Reader, then again after Read filled the cache.
	for _, cached := range []bool{false, true} {
		for pi := range readPaths(NewReader(dev, size)) {
			r := NewReader(dev, size)
			if cached {
				for b := range uint64(64) {
					r.Read(b, v)
				}
			}
			p := readPaths(r)[pi]
			order := append(append(append([]uint64(nil), blocks...), blocks...), blocks[:5]...)
			for i := len(blocks) - 1; i >= 0; i-- {
				order = append(order, blocks[i])
			}
			for _, b := range order {
				name := fmt.Sprintf("%s (cache filled: %v), block %d", p.name, cached, b)
				got, err := p.read(b, v)
				sentinel, ioErr := wantErr(b)
				switch {
				case ioErr:
					var ie *IOError
					if !errors.As(err, &ie) || ie.Block != b || ie.Op != "read" {
						t.Fatalf("%s: %v, want an IOError reading block %d", name, err, b)
					}
				case sentinel != nil:
					var ce *CorruptError
					if !errors.As(err, &ce) || !errors.Is(err, sentinel) || ce.Block != b || ce.Kind != v.Kind {
						t.Fatalf("%s: %v, want a CorruptError of %q at block %d: %v", name, err, v.Kind, b, sentinel)
					}
				default:
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if want := dev.data[b*BlockSize : (b+1)*BlockSize]; !bytes.Equal(got[:BlockSize], want) {
						t.Fatalf("%s: wrong bytes", name)
					}
				}
			}
			// A block that failed validation never entered the cache.
			for _, b := range []uint64{10, 20, 30} {
				if r.peek(b, v) != nil {
					t.Errorf("%s: damaged block %d is cached", p.name, b)
				}
			}
		}
	}
}

// A block read as one kind is refused as another by every read path, as
// Read refuses it, even when it would pass the other validator (same salt)
// and even when the read-ahead window holds it.
func TestReadPathsRefuseAnotherKind(t *testing.T) {
	dev, size := validateDevice(t)
	node, other := markValidator("test node"), markValidator("other kind")
	for pi := range readPaths(NewReader(dev, size)) {
		r := NewReader(dev, size)
		p := readPaths(r)[pi]
		// Fill a read-ahead window over blocks 0..15 first.
		if _, err := p.read(0, node); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(5, node); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			_, err := p.read(5, other)
			var ce *CorruptError
			if !errors.Is(err, ErrValidatorMismatch) || !errors.As(err, &ce) || ce.Block != 5 || ce.Kind != other.Kind {
				t.Errorf("%s: block 5 read as %q after Read as %q: %v, want ErrValidatorMismatch", p.name, other.Kind, node.Kind, err)
			}
		}
		if _, err := p.read(5, node); err != nil {
			t.Errorf("%s: block 5 as its own kind: %v", p.name, err)
		}
	}
}

// A read-ahead window that held a block while it failed validation never
// serves the block as valid later, whatever else was read in between.
func TestReadAheadNeverServesAFailedBlock(t *testing.T) {
	dev, size := validateDevice(t)
	v := markValidator("test node")
	r := NewReader(dev, size)
	a := NewReadAhead(r, 64)
	buf := make([]byte, BlockSize)
	for round := range 3 {
		for b := uint64(0); b < 40; b++ {
			err := a.ReadInto(b, buf, v)
			sentinel, _ := wantErr(b)
			if sentinel == nil && err != nil {
				t.Fatalf("round %d, block %d: %v", round, b, err)
			}
			if sentinel != nil && !errors.Is(err, sentinel) {
				t.Fatalf("round %d, block %d: %v, want %v", round, b, err, sentinel)
			}
		}
		// Read through the cache in between: the damaged blocks fail
		// there too and are not cached for the window to find.
		for _, b := range []uint64{10, 20, 30} {
			if _, err := r.Read(b, v); err == nil {
				t.Fatalf("Read of damaged block %d passed", b)
			}
		}
	}
}
