package superblock

import (
	"errors"
	"fmt"

	"github.com/thinmeta/thinmeta/transaction"
)

// Kind is the block kind name used in errors about superblocks.
const Kind = "superblock"

// Sentinels for superblock problems.
var (
	// ErrBadMagic means block 0 (or the metadata-snapshot copy) does not
	// carry the dm-thin magic number.
	ErrBadMagic = errors.New("bad superblock magic")
	// ErrIncompatible means the superblock sets an incompatible feature bit
	// this reader does not know.
	ErrIncompatible = errors.New("unsupported incompatible feature")
	// ErrNoMetadataSnapshot means a metadata-snapshot view was asked for
	// but the superblock holds none.
	ErrNoMetadataSnapshot = errors.New("no metadata snapshot")
	// ErrUnformatted means block 0 is all zeros: the device was never
	// formatted.
	ErrUnformatted = errors.New("metadata device is not formatted (block 0 is all zeros)")
)

// Validator checks a superblock block: location, checksum and magic.
var Validator = &transaction.Validator{
	Kind: Kind,
	Salt: transaction.SaltSuperblock,
	Check: func(block []byte, location uint64) error {
		if m := Decode(block).Magic; m != Magic {
			return transaction.Corruptf(location, Kind, ErrBadMagic, "magic %d, expected %d", m, Magic)
		}
		return nil
	},
}

// Read reads and validates the superblock at location (Location for the
// live superblock, HeldRoot for the metadata-snapshot copy). It refuses
// unknown incompatible features: knownIncompat lists the bits the caller
// understands (0 for a stock reader).
func Read(r *transaction.Reader, location uint64, knownIncompat uint32) (*Superblock, error) {
	buf := make([]byte, transaction.BlockSize)
	if err := r.ReadRaw(location, buf); err != nil {
		return nil, err
	}
	if location == Location && allZero(buf) {
		return nil, &transaction.CorruptError{Block: location, Kind: Kind, Err: ErrUnformatted}
	}
	if err := Validator.Validate(buf, location); err != nil {
		return nil, err
	}
	s := Decode(buf)
	if unknown := s.IncompatFlags &^ knownIncompat; unknown != 0 {
		return nil, transaction.Corruptf(location, Kind, ErrIncompatible, "incompat_flags %#x", unknown)
	}
	return &s, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// String summarises the superblock on one line.
func (s *Superblock) String() string {
	return fmt.Sprintf("superblock{version %d, time %d, transaction %d, flags %#x, held_root %d, mapping_root %d, details_root %d, data_block_size %d}",
		s.Version, s.Time, s.TransactionID, s.Flags, s.HeldRoot, s.DataMappingRoot, s.DeviceDetailsRoot, s.DataBlockSize)
}
