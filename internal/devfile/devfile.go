// Package devfile opens metadata files and block devices for the packages
// that read or write them (thin, thin/restore, the CLI): a block device is
// sized by ioctl and opened with O_EXCL when asked, a regular file by its
// length, and anything else (a FIFO, a character device, a directory) is
// refused before it is opened, so opening never blocks.
//
// Locking: every opener takes an advisory flock(2) lock on what it opened,
// shared (LOCK_SH) to read and exclusive (LOCK_EX) to write, so a writer
// never changes a pool another process is reading and a reader never sees
// a writer's work in progress. Without Wait a conflicting lock fails at
// once with ErrBusy; with Wait the opener blocks until the lock is free.
// A lock is taken on the file the path names once it is granted: if the
// path was replaced (renamed over) meanwhile, the opener starts again on
// the new file, so it never works on an unlinked pool. Replace puts a new
// file in place under the old one's exclusive lock.
//
// Layering: devfile needs only transaction (for its Device type).
package devfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/thinmeta/thinmeta/transaction"
)

// ErrBusy means a block device is held exclusively by another opener
// (typically an active pool), or the file is locked by another process
// (a writer, or a reader while one wants to write).
var ErrBusy = errors.New("metadata device is in use (held exclusively by another opener)")

// ErrLocked means the file is locked by another process: a writer, when
// reading; a reader or a writer, when writing. It is also ErrBusy.
var ErrLocked = &lockedError{}

// errReadHere is ErrLocked when the reader holding the lock is a view this
// process opened: waiting for it would wait for the caller itself.
var errReadHere = &lockedError{here: true}

type lockedError struct{ here bool }

func (e *lockedError) Error() string {
	if e.here {
		return "locked by a reader in this process (close the views of it opened to read before writing)"
	}
	return "locked by another process (a reader or writer of the pool; wait for it or use the wait option)"
}
func (*lockedError) Is(target error) bool { return target == ErrBusy || target == ErrLocked }

// ErrSameFile means an output is the same file as an input (the same
// device and inode), which writing would destroy.
var ErrSameFile = errors.New("output is the same file as the input")

// Options tune the openers.
type Options struct {
	// Exclusive opens a block device with O_EXCL (reading opens it shared
	// otherwise; writing always opens it exclusively).
	Exclusive bool
	// Wait blocks until a conflicting lock is released instead of
	// failing with ErrLocked.
	Wait bool
}

// ErrNotDevice means a path is neither a regular file nor a block device.
var ErrNotDevice = errors.New("not a regular file or block device")

// OpenRead opens path read-only under a shared lock and returns it with
// its size. A block device is opened with O_EXCL when opts.Exclusive is
// set. A nil opts is the zero value.
func OpenRead(path string, opts *Options) (*os.File, int64, error) {
	if opts == nil {
		opts = &Options{}
	}
	return openLocked(path, os.O_RDONLY, opts.Exclusive, false, opts.Wait)
}

// OpenWrite opens path for writing a pool: a block device exclusively
// (O_EXCL), and a file or device under an exclusive lock. It returns the
// device and its size.
func OpenWrite(path string, opts *Options) (transaction.FileDevice, int64, error) {
	if opts == nil {
		opts = &Options{}
	}
	f, size, err := openLocked(path, os.O_RDWR, true, true, opts.Wait)
	if err != nil {
		return transaction.FileDevice{}, 0, err
	}
	return transaction.FileDevice{File: f}, size, nil
}

// openLocked opens path as open does and locks it, shared or exclusive.
// Once the lock is granted the path must still name the file that was
// opened; if it was replaced meanwhile, it starts again.
func openLocked(path string, flag int, exclusive, lockEx, wait bool) (*os.File, int64, error) {
	for {
		f, size, err := open(path, flag, exclusive)
		if err != nil {
			return nil, 0, err
		}
		if !lockEx {
			if st, err := f.Stat(); err == nil && heldForWrite(st) {
				return f, size, nil // this process's own writer
			}
		}
		if err := lockFile(f, lockEx, wait); err != nil {
			if st, serr := f.Stat(); lockEx && errors.Is(err, ErrLocked) && serr == nil && heldForRead(st) {
				err = errReadHere
			}
			f.Close()
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		same, err := namesFile(path, f)
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		if same {
			if lockEx {
				holdWrite(f)
			} else {
				holdRead(f)
			}
			return f, size, nil
		}
		f.Close()
	}
}

// namesFile reports whether path still names the open file f.
func namesFile(path string, f *os.File) (bool, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // removed: the caller starts again
	}
	if err != nil {
		return false, err
	}
	fst, err := f.Stat()
	if err != nil {
		return false, err
	}
	return os.SameFile(st, fst), nil
}

// Replace renames the complete new file tmp over path. If path names an
// existing file, it is first locked exclusively (failing with ErrLocked,
// or waiting with wait, while another process reads or writes it), so a
// pool in use is never replaced under its user; the lock is held across
// the rename. Openers waiting on the old file start again on the new one.
func Replace(tmp, path string, wait bool) error {
	for {
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return os.Rename(tmp, path)
		}
		if err != nil {
			return err
		}
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			f.Close()
			if err == nil {
				err = fmt.Errorf("%s: %w", path, ErrNotDevice)
			}
			return err
		}
		if err := lockFile(f, true, wait); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", path, err)
		}
		same, err := namesFile(path, f)
		if err == nil && same {
			err = os.Rename(tmp, path)
			f.Close()
			return err
		}
		f.Close()
		if err != nil {
			return err
		}
	}
}

// SameFile reports whether a and b are one file (the same device and
// inode), or one block device reached through two nodes (as /dev/dm-3 and
// a node in /dev/mapper made without udev are): os.SameFile tells only
// the first.
func SameFile(a, b os.FileInfo) bool {
	if os.SameFile(a, b) {
		return true
	}
	isBlock := func(fi os.FileInfo) bool { return fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 }
	sa, oka := a.Sys().(*syscall.Stat_t)
	sb, okb := b.Sys().(*syscall.Stat_t)
	return oka && okb && isBlock(a) && isBlock(b) && sa.Rdev == sb.Rdev
}

// CheckNotSame returns an error wrapping ErrSameFile if the file at
// output is in (SameFile: the same file, or the same block device). A
// missing output is not.
func CheckNotSame(output string, in *os.File) error {
	st, err := os.Stat(output)
	if err != nil {
		return nil
	}
	ist, err := in.Stat()
	if err != nil {
		return err
	}
	if SameFile(st, ist) {
		return fmt.Errorf("%s: %w", output, ErrSameFile)
	}
	return nil
}

// open opens path with flag. A block device is opened with O_EXCL when
// exclusive is set and sized with an ioctl; a regular file by its length.
func open(path string, flag int, exclusive bool) (*os.File, int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	isBlock := st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
	if !isBlock && !st.Mode().IsRegular() {
		// Checked before opening: opening a FIFO blocks until a writer
		// comes.
		return nil, 0, fmt.Errorf("%s: %w", path, ErrNotDevice)
	}
	if isBlock && exclusive {
		flag |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK, 0)
	if err != nil {
		if isBlock && errors.Is(err, syscall.EBUSY) {
			return nil, 0, fmt.Errorf("%s: %w", path, ErrBusy)
		}
		return nil, 0, err
	}
	// The path may have been replaced between Stat and Open: trust only
	// what was opened.
	if st, err = f.Stat(); err != nil {
		f.Close()
		return nil, 0, err
	}
	if isBlock != (st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0) || (!isBlock && !st.Mode().IsRegular()) {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", path, ErrNotDevice)
	}
	if !isBlock {
		return f, st.Size(), nil
	}
	size, err := blockDeviceSize(f)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: size of block device: %w", path, err)
	}
	return f, size, nil
}

// Create opens path for writing a new pool, as OpenWrite does. If size is
// not 0, a missing regular file is created and a shorter one grown to size
// bytes, under the lock; a block device must already be that large.
func Create(path string, size int64, opts *Options) (transaction.FileDevice, int64, error) {
	if size < 0 {
		return transaction.FileDevice{}, 0, fmt.Errorf("%s: negative size %d", path, size)
	}
	if size > 0 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			f.Close()
		} else if !errors.Is(err, fs.ErrExist) {
			return transaction.FileDevice{}, 0, err
		}
	}
	dev, cur, err := OpenWrite(path, opts)
	if err != nil || size <= cur {
		return dev, cur, err
	}
	st, err := dev.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: a block device of %d bytes cannot be grown to %d", path, cur, size)
	}
	if err == nil {
		err = dev.Truncate(size)
	}
	if err != nil {
		dev.Close()
		return transaction.FileDevice{}, 0, err
	}
	return dev, size, nil
}
