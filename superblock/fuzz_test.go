package superblock_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// FuzzSuperblock decodes arbitrary bytes as a superblock (padded to a
// block) and checks that decode → encode → decode is the identity on every
// field and on the bytes of the structure, that the validator and Read
// never panic, and that a block sealed for location 0 passes validation
// exactly when its magic is right. Seeds: testdata/fuzz/FuzzSuperblock
// (superblocks of the shared fixtures) and the ones added below.
func FuzzSuperblock(f *testing.F) {
	s := superblock.Superblock{Magic: superblock.Magic, Version: 2, Time: 3, TransactionID: 7,
		DataMappingRoot: 5, DeviceDetailsRoot: 6, DataBlockSize: 128, MetadataBlockSize: 8, MetadataNrBlocks: 1024}
	var blk [transaction.BlockSize]byte
	s.Encode(blk[:])
	f.Add(blk[:superblock.Size], true)
	f.Add(blk[:superblock.Size], false)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, data []byte, seal bool) {
		block := make([]byte, transaction.BlockSize)
		copy(block, data)
		if seal {
			superblock.Validator.Prepare(block, superblock.Location)
		}
		s := superblock.Decode(block)
		again := make([]byte, transaction.BlockSize)
		for i := range again {
			again[i] = 0xEE // Encode must clear what it does not write
		}
		s.Encode(again)
		// The structure, with the extended format's fields, ends at
		// ExtendedSize; Encode clears the rest.
		if !bytes.Equal(again[4:superblock.ExtendedSize], block[4:superblock.ExtendedSize]) {
			t.Fatalf("encode(decode(b)) differs from b:\n%x\n%x", again[:superblock.ExtendedSize], block[:superblock.ExtendedSize])
		}
		if !bytes.Equal(again[:4], []byte{0, 0, 0, 0}) || bytes.ContainsFunc(again[superblock.ExtendedSize:], func(r rune) bool { return r != 0 }) {
			t.Fatal("Encode left bytes outside the structure set")
		}
		if s2 := superblock.Decode(again); s2 != s {
			t.Fatalf("decode(encode(s)) = %+v, want %+v", s2, s)
		}
		_ = s.String()
		_ = s.NeedsCheck()

		err := superblock.Validator.Validate(block, superblock.Location)
		switch {
		case seal && s.Magic == superblock.Magic:
			if err != nil {
				t.Fatalf("sealed superblock with the right magic rejected: %v", err)
			}
		case seal:
			if !errors.Is(err, superblock.ErrBadMagic) {
				t.Fatalf("bad magic: got %v", err)
			}
		}
		if err != nil {
			var ce *transaction.CorruptError
			if !errors.As(err, &ce) || ce.Block != superblock.Location {
				t.Fatalf("error %v is not a CorruptError naming block 0", err)
			}
		}

		r := transaction.NewReader(bytes.NewReader(block), int64(len(block)))
		got, rerr := superblock.Read(r, superblock.Location, 0)
		if err != nil && rerr == nil {
			t.Fatal("Read accepted a block the validator rejects")
		}
		if rerr == nil {
			if *got != s {
				t.Fatal("Read decodes differently from Decode")
			}
			if s.IncompatFlags != 0 {
				t.Fatalf("Read accepted unknown incompatible features %#x", s.IncompatFlags)
			}
		}
		// Another location: the self-location check must fail unless the
		// block claims it.
		if _, err := superblock.Read(transaction.NewReader(bytes.NewReader(append(make([]byte, transaction.BlockSize), block...)), 2*transaction.BlockSize), 1, 0); err == nil && s.Blocknr != 1 {
			t.Fatal("a superblock claiming another location was accepted")
		}
	})
}
