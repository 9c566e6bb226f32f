package thin

import (
	"errors"

	"github.com/thinmeta/thinmeta/internal/blobindex"
	"github.com/thinmeta/thinmeta/internal/devfile"
)

// Sentinels for pool-level problems.
var (
	// ErrNoDevice means no thin device has the given id.
	ErrNoDevice = errors.New("no such thin device")
	// ErrDetailsMismatch means the device-details tree and the mapping
	// tree disagree about which devices exist.
	ErrDetailsMismatch = errors.New("device details and mapping tree disagree")
	// ErrBusy means a block device is held exclusively by another opener
	// (typically an active pool).
	ErrBusy = devfile.ErrBusy
)

// ErrIndexMissing means a thin is missing from the blob index.
var ErrIndexMissing = blobindex.ErrMissing
