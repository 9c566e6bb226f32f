package live

import (
	"errors"
	"fmt"
)

// Sentinels; errors wrap them with what and where.
var (
	// ErrExists: a device (pool or thin) of that name, or a thin of that
	// id, exists already.
	ErrExists = errors.New("already exists")
	// ErrBusy: the device is in use (an active thin, an open device, a
	// metadata device held by a pool).
	ErrBusy = errors.New("in use")
	// ErrNotPool: the device is not a thin-pool.
	ErrNotPool = errors.New("not a thin-pool device")
	// ErrExtended: the metadata is of thinmeta's extended format, which
	// the kernel cannot run.
	ErrExtended = errors.New(`extended (dm-thin v2) metadata, which the kernel cannot run: convert it with "thinmeta convert --to stock" first`)
	// ErrNeedsCheck: the metadata's needs_check flag is set; the kernel
	// would keep the pool read-only.
	ErrNeedsCheck = errors.New(`metadata has needs_check set: check and repair it ("thinmeta check", "thinmeta repair") or force`)
	// ErrCheckFailed: the metadata failed its check.
	ErrCheckFailed = errors.New("metadata fails its check")
	// ErrNotFormatted: the metadata device holds no pool.
	ErrNotFormatted = errors.New("no pool metadata on the device (format it)")
	// ErrBadID: a thin id the kernel refuses (above 2^24-1).
	ErrBadID = errors.New("thin id above 16777215 (2^24-1), the kernel's limit")
	// ErrBlockSize: a data block size the kernel refuses.
	ErrBlockSize = errors.New("data block size must be a multiple of 128 sectors from 128 to 2097152")
	// ErrTooSmall: a device is smaller than the pool needs.
	ErrTooSmall = errors.New("device too small")
	// ErrTransaction: set_transaction_id was refused because the pool's
	// transaction id is not the one given.
	ErrTransaction = errors.New("transaction id mismatch")
	// ErrHeld: a metadata snapshot is held already (by another reader, or
	// left by one that crashed).
	ErrHeld = errors.New(`a metadata snapshot is already held (a reader still using it, or one that crashed): release it ("thinmeta pool read --release") or read it as it is (--held)`)
	// ErrNotHeld: no metadata snapshot is held.
	ErrNotHeld = errors.New("no metadata snapshot is held")
	// ErrNoThin: no thin device has the id.
	ErrNoThin = errors.New("no such thin device")
	// ErrReadOnly: the pool cannot change its metadata (read-only, out of
	// metadata space or failed).
	ErrReadOnly = errors.New("pool cannot change its metadata")
)

// TransactionError is the error of a refused set_transaction_id.
type TransactionError struct {
	Want, Got uint64 // the id the caller expected and the pool's
}

// Error says which id the pool has and which the caller expected.
func (e *TransactionError) Error() string {
	return fmt.Sprintf("transaction id is %d, not %d", e.Got, e.Want)
}

// Unwrap returns ErrTransaction.
func (e *TransactionError) Unwrap() error { return ErrTransaction }
