package thin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// OpenOptions tune Open.
type OpenOptions struct {
	// Shared opens a block device without asking for exclusive access.
	// Reading the metadata snapshot of a live pool needs this: the kernel
	// holds the device exclusively. Without it Open fails with ErrBusy on a
	// device another opener holds exclusively, because the live metadata of
	// an active pool changes underneath any reader.
	Shared bool
}

// Open opens the metadata in a file or block device read-only. For a block
// device the size comes from the BLKGETSIZE64 ioctl, and the device is
// opened exclusively unless opts.Shared is set. Close releases the file.
func Open(path string, opts *OpenOptions) (*Pool, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	f, size, err := openDevice(path, os.O_RDONLY, !opts.Shared)
	if err != nil {
		return nil, err
	}
	p, err := NewPool(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p.closer = f
	return p, nil
}

// openDevice opens path with flag. A block device is opened with O_EXCL when
// exclusive is set and sized with an ioctl; a regular file by its length.
func openDevice(path string, flag int, exclusive bool) (*os.File, int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	isBlock := st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
	if isBlock && exclusive {
		flag |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		if isBlock && errors.Is(err, syscall.EBUSY) {
			return nil, 0, fmt.Errorf("%s: %w", path, ErrBusy)
		}
		return nil, 0, err
	}
	if !isBlock {
		if !st.Mode().IsRegular() {
			f.Close()
			return nil, 0, fmt.Errorf("%s: not a regular file or block device", path)
		}
		return f, st.Size(), nil
	}
	size, err := blockDeviceSize(f)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: size of block device: %w", path, err)
	}
	return f, size, nil
}

// SetCloser makes p.Close close c (for pools made with NewPool over a
// resource the caller wants released with the pool).
func SetCloser(p *Pool, c io.Closer) { p.closer = c }
