package thin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// ErrStale means the metadata changed while it was being read: the
// superblock is no longer the one the view was opened on (for a
// metadata-snapshot view: the snapshot was released or replaced). What was
// read may mix two transactions, so the read is abandoned rather than
// answered. It happens only when a writer ignores the locks (see the
// package documentation): a block device opened with OpenOptions.Shared
// under an active pool, or a program that writes without locking. Open the
// pool again to read the new state.
var ErrStale = errors.New("the metadata changed while being read (the superblock moved)")

// staleEvery is how many bytes of reads of an image pass between two
// checks of its superblock (one extra 4 KiB read each).
const staleEvery = 1 << 20

// watch remembers what a reader of a device that may change underneath it
// depends on, to tell when that has moved: all of block 0 for a view of
// the live metadata; for a metadata-snapshot view, the held root recorded
// in block 0 and the superblock copy it points to (the live pool commits
// all the time without disturbing its snapshot).
type watch struct {
	ra       io.ReaderAt
	block0   []byte
	snapshot bool
	held     uint64
	copy     []byte
	stale    atomic.Bool

	mu  sync.Mutex // guards buf
	buf []byte     // for check, which must not allocate (reads stream)
}

// newWatch reads what a view of ra depends on now, or returns nil if ra
// has no block 0 to watch.
func newWatch(ra io.ReaderAt, snapshot bool) *watch {
	w := &watch{ra: ra, block0: make([]byte, transaction.BlockSize)}
	if err := w.read(0, w.block0); err != nil {
		return nil
	}
	if snapshot {
		w.watchHeld(superblock.Decode(w.block0).HeldRoot)
	}
	return w
}

// begun returns the block 0 the watch began on, or nil if it has not (or
// w is nil).
func (w *watch) begun() []byte {
	if w == nil {
		return nil
	}
	return w.block0
}

// superblockFrom validates raw, the block at location as read, as
// superblock.Read validates what it reads.
func superblockFrom(raw []byte, location uint64, size int64) (*superblock.Superblock, error) {
	one := oneBlock{at: int64(location) * transaction.BlockSize, b: raw}
	return superblock.Read(transaction.NewReader(one, size), location, knownIncompat)
}

// oneBlock is a device that holds only one block, at byte at.
type oneBlock struct {
	at int64
	b  []byte
}

func (o oneBlock) ReadAt(p []byte, off int64) (int, error) {
	if off != o.at {
		return 0, io.ErrUnexpectedEOF
	}
	return copy(p, o.b), nil
}

// watchHeld makes the watch one of a metadata-snapshot view whose
// superblock copy is at block b. A copy that cannot be read is not
// compared (the view fails reading it anyway).
func (w *watch) watchHeld(b uint64) {
	w.snapshot, w.held, w.copy = true, b, nil
	if b == 0 {
		return
	}
	buf := make([]byte, transaction.BlockSize)
	if w.read(b, buf) == nil {
		w.copy = buf
	}
}

func (w *watch) read(b uint64, buf []byte) error {
	n, err := w.ra.ReadAt(buf, int64(b)*transaction.BlockSize)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &transaction.IOError{Block: b, Op: "read", Err: err}
}

// check returns ErrStale if what the view depends on has moved since the
// watch began (and from then on), and an I/O error if it cannot tell.
func (w *watch) check() error {
	if w.stale.Load() {
		return ErrStale
	}
	if w.block0 == nil {
		return nil // not begun: nothing was read yet
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf == nil {
		w.buf = make([]byte, transaction.BlockSize)
	}
	buf := w.buf
	if err := w.read(0, buf); err != nil {
		return err
	}
	moved := !bytes.Equal(buf, w.block0)
	if moved && w.snapshot {
		moved = superblock.Decode(buf).HeldRoot != w.held
		if !moved && w.copy != nil {
			if err := w.read(w.held, buf); err != nil {
				return err
			}
			moved = !bytes.Equal(buf, w.copy)
		}
	}
	if moved {
		w.stale.Store(true)
		return ErrStale
	}
	return nil
}

// watchedReader is an io.ReaderAt that checks its watch every staleEvery
// bytes read and fails every read with ErrStale once it has moved, so a long
// read (check, dump, ls) stops early instead of walking a changed device.
type watchedReader struct {
	ra    io.ReaderAt
	w     *watch
	reads atomic.Uint64
}

func (r *watchedReader) ReadAt(p []byte, off int64) (int, error) {
	if end := r.reads.Add(uint64(len(p))); end/staleEvery != (end-uint64(len(p)))/staleEvery {
		if err := r.w.check(); err != nil {
			return 0, err
		}
	} else if r.w.stale.Load() {
		return 0, ErrStale
	}
	return r.ra.ReadAt(p, off)
}

// Stale returns ErrStale if the metadata this image was opened on has
// changed: block 0, or, for an image opened with OpenOptions.Shared (a
// metadata-snapshot read of a live pool), the metadata snapshot. A packed
// or compressed image is a private copy and never stale. Reads of the
// image check the same every few MiB read and fail with ErrStale once it
// is; a caller that writes out what it read should call Stale before each
// write of output (and at the end), so that nothing read after the change
// is ever written: a writer changes no block a committed view reaches
// before its commit has moved the superblock.
func (im *Image) Stale() error {
	if im.watch == nil {
		return nil
	}
	return im.watch.check()
}

// Stale returns ErrStale if the metadata this view reads has changed since
// it was opened (see Image.Stale): for the live view, block 0; for a
// metadata-snapshot view, the held root and its superblock copy. A view of
// a Metadata's transaction (Metadata.View) is never stale: the writer
// holds the device.
func (p *Pool) Stale() error {
	if err := p.usable(); err != nil {
		return err
	}
	if p.watch == nil {
		return nil
	}
	return p.watch.check()
}

// staleOr returns err, or an error wrapping ErrStale (and naming err) if
// the metadata the view reads has moved: blocks read from a pool that
// changed underneath look damaged (reused by later commits), but the
// damage is the reader's, not the pool's. It costs one read of block 0,
// only when a read has failed.
func (p *Pool) staleOr(err error) error {
	if err == nil || p.watch == nil || errors.Is(err, ErrStale) || errors.Is(err, ErrClosed) {
		return err
	}
	if p.watch.check() == ErrStale {
		return fmt.Errorf("%w (the read failed: %v)", ErrStale, err)
	}
	return err
}
