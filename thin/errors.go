package thin

import (
	"errors"

	"github.com/thinmeta/thinmeta/internal/blobindex"
	"github.com/thinmeta/thinmeta/internal/devfile"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/transaction"
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
	// ErrNoDataSpace means the data device is full: no data block is free
	// both now and at the last commit (grow it with ResizeData). It is
	// spacemap.ErrNoDataSpace, and matches spacemap.ErrNoSpace.
	ErrNoDataSpace = spacemap.ErrNoDataSpace
	// ErrNoMetadataSpace means the metadata device is full (grow it with
	// ResizeMetadata). It is spacemap.ErrNoMetadataSpace, and matches
	// spacemap.ErrNoSpace.
	ErrNoMetadataSpace = spacemap.ErrNoMetadataSpace
	// ErrLocked means a file is locked by another process: a writer, when
	// opening to read; a reader or writer, when opening to write (see the
	// package documentation on locking). It is also ErrBusy. The Wait
	// options wait for the lock instead.
	ErrLocked = devfile.ErrLocked
	// ErrSameFile means an output is the same file as an input.
	ErrSameFile = devfile.ErrSameFile
	// ErrNotDevice means a path to open is neither a regular file nor a
	// block device (a directory, a FIFO, a socket, ...): it is refused
	// before it is opened, since opening a FIFO would block.
	ErrNotDevice = devfile.ErrNotDevice
	// ErrPackedImage means a thin_metadata_pack file or an LZ4 image was
	// opened for writing: only a plain image or a device can be changed in
	// place (unpack it first; Open reads either as it is).
	ErrPackedImage = errors.New("a packed or compressed metadata image cannot be written in place")
	// ErrClosed means a view or writer was used after Close.
	ErrClosed = transaction.ErrClosed
	// ErrTransactionChanged means a view of a transaction in progress
	// (Metadata.View) was read after the transaction changed.
	ErrTransactionChanged = errors.New("the transaction changed after the view was taken")
	// ErrNoSpaceMaps means a space map was asked of a metadata-snapshot
	// view: a snapshot has none (the kernel zeroes the copy's space-map
	// roots; the live pool's space maps count the snapshot's blocks).
	ErrNoSpaceMaps = errors.New("a metadata snapshot has no space maps")
)

// ErrIndexMissing means a thin is missing from the blob index.
var ErrIndexMissing = blobindex.ErrMissing
