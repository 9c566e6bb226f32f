package blob

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/blobindex"
	"github.com/thinmeta/thinmeta/thin"
)

// Errors of package blob. Errors of the pool itself come from package thin
// (thin.ErrNoDevice, thin.ErrIDReused, ...) and damaged metadata yields a
// *transaction.CorruptError.
var (
	// ErrNotExtended means a pool of the stock format where an extended
	// one is needed (it is thin.ErrNotExtended).
	ErrNotExtended = thin.ErrNotExtended
	// ErrBlobSize means a blob, key or identity longer than the pool's
	// blobs (it is thin.ErrBlobSize).
	ErrBlobSize = thin.ErrBlobSize
	// ErrClosed means a Pool or Writer was used after Close (it is
	// thin.ErrClosed).
	ErrClosed = thin.ErrClosed
	// ErrDuplicate means a list given to Reconcile names a thin twice.
	ErrDuplicate = errors.New("thin listed twice")
)

// Thin is a thin device of an extended pool: its id, its details as the
// device-details tree records them, and its blob (BlobSize bytes).
type Thin struct {
	ID uint64
	thin.Details
	Blob []byte
}

// Clone returns a copy of t whose Blob is its own.
func (t Thin) Clone() Thin {
	t.Blob = bytes.Clone(t.Blob)
	return t
}

// Pool is a read-only view of an extended pool: the committed state of a
// metadata device, or of its metadata snapshot. A Pool from Open, NewPool
// or Writer.Committed is safe for concurrent use; one from FromView is as
// safe as the thin.Pool it wraps (one from thin.Metadata.View is not). It
// lives as the thin.Pool it wraps (see thin.Pool and docs/VIEWS.md):
// Open's and NewPool's views until Close, Writer.Committed's until its
// Close or the Writer's, whichever comes first; after Close every method
// that reads returns ErrClosed.
type Pool struct {
	p *thin.Pool
}

// NewPool opens a read-only view of the extended pool in the first size
// bytes of ra. A stock pool is refused with ErrNotExtended.
func NewPool(ra io.ReaderAt, size int64) (*Pool, error) {
	p, err := thin.NewPool(ra, size)
	if err != nil {
		return nil, err
	}
	return FromView(p)
}

// Open opens the extended pool in a metadata file or block device
// read-only (see thin.Open). Close releases the file.
func Open(path string, opts *thin.OpenOptions) (*Pool, error) {
	p, err := thin.Open(path, opts)
	if err != nil {
		return nil, err
	}
	bp, err := FromView(p)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return bp, nil
}

// FromView wraps a view of package thin (such as a metadata-snapshot
// view). A stock pool is refused with ErrNotExtended.
func FromView(p *thin.Pool) (*Pool, error) {
	if p.Variant() != thin.Extended {
		return nil, ErrNotExtended
	}
	return &Pool{p: p}, nil
}

// View returns the underlying view of package thin, for mappings, space
// maps and the other stock structures.
func (p *Pool) View() *thin.Pool { return p.p }

// Close closes the device if the pool was opened with Open.
func (p *Pool) Close() error { return p.p.Close() }

// BlobSize returns the size of every thin's blob.
func (p *Pool) BlobSize() int { return int(p.p.Superblock().BlobSize) }

// IndexBytes returns how many leading bytes of a blob form its key in the
// pool's index (0: the pool has no index).
func (p *Pool) IndexBytes() int { return int(p.p.Superblock().IndexBytes) }

// NextID returns the id the pool hands out next: every thin the pool ever
// had has a lower id.
func (p *Pool) NextID() uint64 { return p.p.Superblock().NextThinID }

// Count returns the number of thins, as the superblock records it (it
// reads nothing else).
func (p *Pool) Count() uint64 { return p.p.Superblock().NrThins }

// Thin returns one thin.
func (p *Pool) Thin(id uint64) (Thin, error) {
	d, err := p.p.Device(id)
	if err != nil {
		return Thin{}, err
	}
	return Thin{ID: d.ID, Details: d.Details, Blob: d.Blob}, nil
}

// Thins yields every thin in id order. It streams the device-details
// tree: memory use does not grow with the number of thins, and nothing is
// allocated per thin. The Blob of each Thin yielded aliases a buffer that
// the next step overwrites: use Thin.Clone (or bytes.Clone) to keep it. An
// error ends the sequence.
func (p *Pool) Thins() iter.Seq2[Thin, error] {
	return p.thins(0, math.MaxUint64)
}

// ThinsIn yields the thins with lo ≤ id < hi in id order, as Thins does.
func (p *Pool) ThinsIn(lo, hi uint64) iter.Seq2[Thin, error] {
	return p.thins(lo, hi)
}

func (p *Pool) thins(lo, hi uint64) iter.Seq2[Thin, error] {
	return func(yield func(Thin, error) bool) {
		err := p.p.DetailsTree().Walk(lo, hi, func(id uint64, v []byte) error {
			if !yield(Thin{ID: id, Details: thin.DecodeDetails(v), Blob: v[thin.DetailsSize:]}, nil) {
				return btree.ErrStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, thin.ErrStale) && errors.Is(p.p.Stale(), thin.ErrStale) {
			// Blocks of a pool changed underneath (see thin.ErrStale).
			err = fmt.Errorf("%w (the read failed: %v)", thin.ErrStale, err)
		}
		if err != nil {
			yield(Thin{}, err)
		}
	}
}

// keyWidth is the width keys are compared at: the index's, or the whole
// blob in a pool without an index.
func (p *Pool) keyWidth() int {
	if n := p.IndexBytes(); n > 0 {
		return n
	}
	return p.BlobSize()
}

// Find yields, in no particular order, the thins whose blob starts with
// key followed by zero bytes up to the key width: the pool's IndexBytes,
// or its whole blob size if it has no index. A manager that stores a
// name, zero-padded, at the start of each blob finds "the thin named X"
// with Find([]byte("X")). With an index the lookup reads a few blocks;
// without one, or for an all-zero key (which the index leaves out), it
// scans every thin. The thins yielded own their blobs. A key longer than
// the key width is refused with ErrBlobSize.
func (p *Pool) Find(key []byte) iter.Seq2[Thin, error] {
	return func(yield func(Thin, error) bool) {
		w := p.keyWidth()
		if len(key) > w {
			yield(Thin{}, fmt.Errorf("%w: a key of %d bytes is longer than the pool's key width (%d bytes)", ErrBlobSize, len(key), w))
			return
		}
		padded := make([]byte, w)
		copy(padded, key)
		if _, indexed := blobindex.Hash(padded); indexed && p.p.Superblock().BlobIndexRoot != 0 {
			for d, err := range p.p.FindByKey(padded) {
				if !yield(Thin{ID: d.ID, Details: d.Details, Blob: d.Blob}, err) || err != nil {
					return
				}
			}
			return
		}
		for t, err := range p.Thins() {
			if err != nil {
				yield(Thin{}, err)
				return
			}
			if bytes.Equal(t.Blob[:w], padded) && !yield(t.Clone(), nil) {
				return
			}
		}
	}
}
