package transaction

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// Test vectors from FORMAT.md §1.2, computed independently of this code.
func TestChecksumVectors(t *testing.T) {
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != 0xE3069283 {
		t.Fatalf("crc32c check value = %#x", got)
	}
	zero := make([]byte, BlockSize)
	for _, tc := range []struct {
		salt uint32
		want uint32
	}{
		{SaltSuperblock, 0x58CFD397},
		{SaltNode, 0x58CC7E82},
		{SaltBitmap, 0x58CE0B1A},
		{SaltIndex, 0x58CFD54F},
	} {
		if got := Checksum(zero, tc.salt); got != tc.want {
			t.Errorf("Checksum(zero, %d) = %#x, want %#x", tc.salt, got, tc.want)
		}
	}

	// Empty leaf at block 5, value size 8, max entries 252.
	leaf := make([]byte, BlockSize)
	binary.LittleEndian.PutUint32(leaf[4:], 2)
	binary.LittleEndian.PutUint32(leaf[20:], 252)
	binary.LittleEndian.PutUint32(leaf[24:], 8)
	Seal(leaf, 5, SaltNode)
	if got := leaf[0:4]; got[0] != 0x5d || got[1] != 0x08 || got[2] != 0xd8 || got[3] != 0x49 {
		t.Fatalf("sealed leaf checksum bytes = % x, want 5d 08 d8 49", got)
	}
	if s, ok := SaltOf(leaf); !ok || s != SaltNode {
		t.Fatalf("SaltOf = %d, %v", s, ok)
	}
}

func TestValidate(t *testing.T) {
	v := &Validator{Kind: "test", Salt: SaltBitmap}
	b := make([]byte, BlockSize)
	v.Prepare(b, 7)
	if err := v.Validate(b, 7); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(b, 8); !errors.Is(err, ErrBlockNumber) {
		t.Fatalf("wrong location: %v", err)
	}
	b[100] ^= 1
	err := v.Validate(b, 7)
	var ce *CorruptError
	if !errors.Is(err, ErrChecksum) || !errors.As(err, &ce) || ce.Block != 7 || ce.Kind != "test" {
		t.Fatalf("flipped bit: %v", err)
	}
}
