package transaction

import (
	"errors"
	"fmt"
)

// Sentinel errors describing what is wrong with a block. A *CorruptError
// unwraps to one of these (or to a sentinel of another package), so callers
// can test with errors.Is.
var (
	// ErrChecksum means the stored checksum does not match the block.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrBlockNumber means the block's self-location field names another block.
	ErrBlockNumber = errors.New("block number mismatch")
	// ErrOutOfRange means a block number lies beyond the end of the device.
	ErrOutOfRange = errors.New("block number beyond end of metadata device")
	// ErrValidatorMismatch means one block was read as two different kinds.
	ErrValidatorMismatch = errors.New("block read as two different kinds")
	// ErrCorrupt is a catch-all for structural damage with no finer sentinel.
	ErrCorrupt = errors.New("metadata corrupt")
	// ErrClosed means a Reader (or the view or writer it belongs to) was
	// used after Close.
	ErrClosed = errors.New("used after Close")
	// ErrBlockRange means a space map was asked about a block at or beyond
	// its size. Package spacemap returns it (as spacemap.ErrBlockRange, the
	// same value); a writer that meets it counting a reference held by a
	// node reports the node in a *CorruptError that unwraps to it.
	ErrBlockRange = errors.New("block beyond the end of the space map")
)

// CorruptError reports damaged metadata: which block, read as which kind,
// and what was wrong with it. It unwraps to Err, a sentinel.
type CorruptError struct {
	Block  uint64 // the metadata block number
	Kind   string // the block kind it was read as, e.g. "btree node"
	Err    error  // the sentinel (ErrChecksum, btree.ErrKeyOrder, ...)
	Detail string // human-readable specifics, possibly empty
}

// Error implements error.
func (e *CorruptError) Error() string {
	s := fmt.Sprintf("%s at block %d: %v", e.Kind, e.Block, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel.
func (e *CorruptError) Unwrap() error { return e.Err }

// Corruptf builds a *CorruptError with a formatted detail.
func Corruptf(block uint64, kind string, sentinel error, format string, args ...any) *CorruptError {
	return &CorruptError{Block: block, Kind: kind, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

// RefError is the error of counting (up or down) a reference that block
// at (a kind block; detail says where in it) holds: a reference to a block
// beyond its space map (ErrBlockRange) means block at is damaged, so that
// becomes a *CorruptError naming it and unwrapping to ErrBlockRange; every
// other error (a damaged block deeper down, already named; I/O; no space)
// is returned as it is.
func RefError(err error, at uint64, kind, detail string) error {
	var ce *CorruptError
	if !errors.Is(err, ErrBlockRange) || errors.As(err, &ce) {
		return err
	}
	return &CorruptError{Block: at, Kind: kind, Err: err, Detail: detail}
}

// IOError reports a failure of the underlying device while reading or
// writing a block.
type IOError struct {
	Block uint64
	Op    string // "read" or "write"
	Err   error
}

// Error implements error.
func (e *IOError) Error() string {
	return fmt.Sprintf("%s of block %d: %v", e.Op, e.Block, e.Err)
}

// Unwrap returns the underlying error.
func (e *IOError) Unwrap() error { return e.Err }
