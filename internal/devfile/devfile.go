// Package devfile opens metadata files and block devices for the packages
// that read or write them (thin, thin/restore, the CLI): a block device is
// sized by ioctl and opened with O_EXCL when asked, a regular file by its
// length, and anything else (a FIFO, a character device, a directory) is
// refused before it is opened, so opening never blocks.
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
// (typically an active pool), or a file is locked by a writer.
var ErrBusy = errors.New("metadata device is in use (held exclusively by another opener)")

// ErrNotDevice means a path is neither a regular file nor a block device.
var ErrNotDevice = errors.New("not a regular file or block device")

// OpenRead opens path read-only and returns it with its size. A block
// device is opened with O_EXCL when exclusive is set.
func OpenRead(path string, exclusive bool) (*os.File, int64, error) {
	return open(path, os.O_RDONLY, exclusive)
}

// OpenWrite opens path for writing a pool: a block device exclusively
// (O_EXCL), a file under an exclusive advisory lock. It returns the device
// and its size.
func OpenWrite(path string) (transaction.FileDevice, int64, error) {
	f, size, err := open(path, os.O_RDWR, true)
	if err != nil {
		return transaction.FileDevice{}, 0, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return transaction.FileDevice{}, 0, fmt.Errorf("%s: %w", path, err)
	}
	return transaction.FileDevice{File: f}, size, nil
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
func Create(path string, size int64) (transaction.FileDevice, int64, error) {
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
	dev, cur, err := OpenWrite(path)
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
