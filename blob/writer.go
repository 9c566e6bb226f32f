package blob

import (
	"fmt"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// Writer is an extended pool opened for changes. Changes are made in a
// transaction: Commit makes them durable atomically, Abort discards them,
// and a crash leaves the last commit. Creating a thin with its blob is
// one change, so a thin never exists without its blob. Thin, Blob and
// Count read the transaction in progress; to enumerate or search the pool
// as last committed, use Committed. A Writer is not safe for concurrent
// use.
//
// After Close every method with an error result returns ErrClosed (the
// accessors Count, NextID and BlobSize keep their last values), and the
// views taken from it (Committed, and Metadata's) end. Close is
// idempotent.
type Writer struct {
	md     *thin.Metadata
	closed bool
}

// Format writes a new, empty extended pool to dev (size bytes), committed,
// and returns it open for changes. Nothing the device held before is kept.
// The pool is of the Extended variant whatever opts.Variant says; its
// BlobSize must be 1 to thin.MaxBlobSize (a device-details leaf must hold
// three values).
func Format(dev transaction.Device, size int64, opts *thin.FormatOptions) (*Writer, error) {
	md, err := thin.Format(dev, size, extended(opts))
	if err != nil {
		return nil, err
	}
	return &Writer{md: md}, nil
}

// extended returns a copy of opts for the Extended variant.
func extended(opts *thin.FormatOptions) *thin.FormatOptions {
	var o thin.FormatOptions
	if opts != nil {
		o = *opts
	}
	o.Variant = thin.Extended
	return &o
}

// Create formats the metadata file or block device at path as
// thin.CreateMetadata does (opts.Size creates or grows a file), with an
// extended pool as Format makes, and returns it open for changes. Close
// releases the device.
func Create(path string, opts *thin.FormatOptions) (*Writer, error) {
	md, err := thin.CreateMetadata(path, extended(opts))
	if err != nil {
		return nil, err
	}
	return &Writer{md: md}, nil
}

// NewWriter opens the extended pool on dev (size bytes) for changes. A
// stock pool is refused with ErrNotExtended; a pool with needs_check set
// unless opts.Force, and one opts.Verify refuses (see thin.WriteOptions).
func NewWriter(dev transaction.Device, size int64, opts *thin.WriteOptions) (*Writer, error) {
	md, err := thin.NewMetadata(dev, size, opts)
	if err != nil {
		return nil, err
	}
	if md.Variant() != thin.Extended {
		return nil, ErrNotExtended
	}
	return &Writer{md: md}, nil
}

// OpenWriter opens the extended pool in the metadata file or block device
// at path for changes, exclusively as thin.OpenMetadata does, refusing
// what NewWriter refuses. Close releases the device.
func OpenWriter(path string, opts *thin.WriteOptions) (*Writer, error) {
	md, err := thin.OpenMetadata(path, opts)
	if err != nil {
		return nil, err
	}
	if md.Variant() != thin.Extended {
		md.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrNotExtended)
	}
	return &Writer{md: md}, nil
}

// FreeMetadataBlocks returns how many metadata blocks the transaction can
// still allocate (see thin.Metadata.FreeMetadataBlocks): a new thin with
// its blob takes a few, and a batch that needs more than there are fails
// with thin.ErrNoMetadataSpace, after which only Abort goes on.
func (w *Writer) FreeMetadataBlocks() (uint64, error) { return w.md.FreeMetadataBlocks() }

// Metadata returns the pool's metadata of package thin, for the stock
// operations (mappings, resizing, metadata snapshots, ...) in the same
// transaction. It is the Writer's own: closing either closes both.
func (w *Writer) Metadata() *thin.Metadata { return w.md }

// Close ends the Writer: uncommitted changes are lost, its views end, and
// the device is closed if the Writer opened it. A second Close does
// nothing and returns nil.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return w.md.Close()
}

func (w *Writer) usable() error {
	if w.closed {
		return ErrClosed
	}
	return nil
}

// Commit makes the transaction durable: after a crash the pool holds all
// of its changes or none.
func (w *Writer) Commit() error {
	if err := w.usable(); err != nil {
		return err
	}
	return w.md.Commit()
}

// Abort discards the transaction in progress.
func (w *Writer) Abort() error {
	if err := w.usable(); err != nil {
		return err
	}
	return w.md.Abort()
}

// Committed returns a read-only view of the last commit (see
// thin.Metadata.Committed): it stays exactly that commit, whatever the
// Writer commits later, until it is closed; close it when done. It ends
// when the Writer is closed (its reads then fail with ErrClosed).
func (w *Writer) Committed() (*Pool, error) {
	if err := w.usable(); err != nil {
		return nil, err
	}
	p, err := w.md.Committed()
	if err != nil {
		return nil, err
	}
	bp, err := FromView(p)
	if err != nil {
		p.Close()
		return nil, err
	}
	return bp, nil
}

// BlobSize returns the size of every thin's blob.
func (w *Writer) BlobSize() int { return w.md.BlobSize() }

// Count returns the number of thins in this transaction.
func (w *Writer) Count() uint64 { return w.md.NrThins() }

// NextID returns the id AllocateID hands out next.
func (w *Writer) NextID() uint64 { return w.md.NextID() }

// AllocateID hands out an id no thin of the pool ever had, from the pool's
// persistent counter (committed with the transaction). A thin can be
// created with it until the transaction ends. An id from a transaction
// that is aborted or lost in a crash may be handed out again: no thin
// ever had it; one from a committed transaction never is.
func (w *Writer) AllocateID() (uint64, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	return w.md.AllocateID()
}

// pad returns blob padded with zeros to the pool's blob size.
func (w *Writer) pad(blob []byte) ([]byte, error) {
	if err := w.usable(); err != nil {
		return nil, err
	}
	n := w.md.BlobSize()
	if len(blob) > n {
		return nil, fmt.Errorf("%w: a blob of %d bytes is longer than the pool's blobs (%d bytes; shorter ones are padded)", ErrBlobSize, len(blob), n)
	}
	b := make([]byte, n)
	copy(b, blob)
	return b, nil
}

// CreateThin creates an empty thin with the given id and blob. The id
// must be one AllocateID handed out in this transaction or one at least
// NextID (thin.ErrIDReused otherwise): ids are never used twice. A blob
// shorter than the pool's blob size is padded with zeros.
func (w *Writer) CreateThin(id uint64, blob []byte) error {
	b, err := w.pad(blob)
	if err != nil {
		return err
	}
	return w.md.CreateThinWithBlob(id, b)
}

// NewThin creates an empty thin with the given blob and an id of the
// pool's choosing (NextID), which it returns. A call that fails spends no
// id: NextID is unchanged.
func (w *Writer) NewThin(blob []byte) (uint64, error) {
	id := w.md.NextID()
	if err := w.CreateThin(id, blob); err != nil {
		return 0, err
	}
	return id, nil
}

// CreateSnapshot creates thin id as a snapshot of origin, sharing all of
// its mappings, with its own blob. Ids are as for CreateThin.
func (w *Writer) CreateSnapshot(id, origin uint64, blob []byte) error {
	b, err := w.pad(blob)
	if err != nil {
		return err
	}
	return w.md.CreateSnapshotWithBlob(id, origin, b)
}

// NewSnapshot creates a snapshot of origin with the given blob and an id
// of the pool's choosing (NextID), which it returns. A call that fails
// (a missing origin, a blob too long) spends no id.
func (w *Writer) NewSnapshot(origin uint64, blob []byte) (uint64, error) {
	id := w.md.NextID()
	if err := w.CreateSnapshot(id, origin, blob); err != nil {
		return 0, err
	}
	return id, nil
}

// Thin returns one thin as of this transaction; its Blob is its own.
func (w *Writer) Thin(id uint64) (Thin, error) {
	if err := w.usable(); err != nil {
		return Thin{}, err
	}
	d, err := w.md.Details(id)
	if err != nil {
		return Thin{}, err
	}
	b, err := w.md.Blob(id)
	if err != nil {
		return Thin{}, err
	}
	return Thin{ID: id, Details: d, Blob: b}, nil
}

// Blob returns a copy of a thin's blob as of this transaction.
func (w *Writer) Blob(id uint64) ([]byte, error) {
	if err := w.usable(); err != nil {
		return nil, err
	}
	return w.md.Blob(id)
}

// SetBlob replaces a thin's blob (padded with zeros if shorter than the
// pool's blob size), and its entry in the index.
func (w *Writer) SetBlob(id uint64, blob []byte) error {
	b, err := w.pad(blob)
	if err != nil {
		return err
	}
	return w.md.SetBlob(id, b)
}

// ClearBlob sets a thin's blob to zeros (such a thin has no index key).
func (w *Writer) ClearBlob(id uint64) error {
	if err := w.usable(); err != nil {
		return err
	}
	return w.md.ClearBlob(id)
}

// Delete deletes a thin and its blob; what only it used is freed. Its id
// is never handed out again.
func (w *Writer) Delete(id uint64) error {
	if err := w.usable(); err != nil {
		return err
	}
	return w.md.Delete(id)
}
