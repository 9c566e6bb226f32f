package live

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directAlign is the alignment of O_DIRECT buffers, offsets and lengths:
// a page, which covers logical block sizes up to 4 KiB.
const directAlign = 4096

// bounceSize is the size of the aligned buffers unaligned requests go
// through.
const bounceSize = 64 << 10

var bounces = sync.Pool{New: func() any { b := alignedBuffer(bounceSize); return &b }}

// alignedBuffer returns n bytes starting at a multiple of directAlign.
// Go's heap does not move objects, so the alignment holds for the buffer's
// life.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)
	if skip == directAlign {
		skip = 0
	}
	return b[skip : skip+n : skip+n]
}

func aligned(b []byte, off int64) bool {
	return len(b) > 0 && off%directAlign == 0 && len(b)%directAlign == 0 &&
		uintptr(unsafe.Pointer(&b[0]))%directAlign == 0
}

// Device is a block device (or file) opened with O_DIRECT: reads and writes
// bypass the page cache, so they see what the kernel's own metadata
// writes (which bypass it too) put on the device, never a stale cached
// copy. It implements io.ReaderAt, io.WriterAt and the transaction
// package's Device (Flush is fdatasync); it is safe for concurrent use.
type Device struct {
	f      *os.File
	size   int64
	direct bool
}

// DeviceOptions tune OpenDevice.
type DeviceOptions struct {
	// Write opens the device read-write.
	Write bool
	// Exclusive opens a block device with O_EXCL: it fails with EBUSY
	// while an active pool (or anyone) holds the device. Metadata of an
	// active pool must be opened without it.
	Exclusive bool
}

// OpenDevice opens path with O_DIRECT. A regular file on a file system
// without O_DIRECT (tmpfs) is opened without it: the page cache of a file
// is coherent with every writer, so nothing is lost.
func OpenDevice(path string, opts DeviceOptions) (*Device, error) {
	flag := unix.O_RDONLY
	if opts.Write {
		flag = unix.O_RDWR
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	block := st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
	if !block && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a block device or regular file", path)
	}
	if block && opts.Exclusive {
		flag |= unix.O_EXCL
	}
	direct := true
	f, err := os.OpenFile(path, flag|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil && !block && errors.Is(err, unix.EINVAL) {
		direct = false
		f, err = os.OpenFile(path, flag|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		if block && errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("%s: %w", path, ErrBusy)
		}
		return nil, err
	}
	size := st.Size()
	if block {
		n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: size of block device: %w", path, err)
		}
		size = int64(n)
	}
	return &Device{f: f, size: size, direct: direct}, nil
}

// Size returns the size of the device in bytes.
func (d *Device) Size() int64 { return d.size }

// Name returns the path the device was opened with.
func (d *Device) Name() string { return d.f.Name() }

// Close closes the device.
func (d *Device) Close() error { return d.f.Close() }

// Flush makes completed writes durable (fdatasync).
func (d *Device) Flush() error { return unix.Fdatasync(int(d.f.Fd())) }

// ReadAt reads len(p) bytes at off. Past the end of the device it returns
// what there is and io.EOF.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: read at negative offset %d", d.Name(), off)
	}
	if !d.direct || aligned(p, off) {
		return d.f.ReadAt(p, off)
	}
	bp := bounces.Get().(*[]byte)
	defer bounces.Put(bp)
	bounce := *bp
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		start := pos &^ (directAlign - 1)
		n := min(int64(len(bounce)), (pos+int64(len(p)-done)-start+directAlign-1)&^(directAlign-1))
		got, err := d.f.ReadAt(bounce[:n], start)
		skip := int(pos - start)
		if got > skip {
			done += copy(p[done:], bounce[skip:got])
		}
		if err != nil {
			if err == io.EOF && done == len(p) {
				return done, nil
			}
			return done, err
		}
		if got < int(n) && done < len(p) {
			return done, io.EOF
		}
	}
	return done, nil
}

// WriteAt writes p at off. Writes that are not aligned read the blocks
// they cover first.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: write at negative offset %d", d.Name(), off)
	}
	if !d.direct || aligned(p, off) {
		return d.f.WriteAt(p, off)
	}
	bp := bounces.Get().(*[]byte)
	defer bounces.Put(bp)
	bounce := *bp
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		start := pos &^ (directAlign - 1)
		n := min(int64(len(bounce)), (pos+int64(len(p)-done)-start+directAlign-1)&^(directAlign-1))
		skip := int(pos - start)
		chunk := min(len(p)-done, int(n)-skip)
		if skip != 0 || chunk%directAlign != 0 {
			if _, err := d.f.ReadAt(bounce[:n], start); err != nil && err != io.EOF {
				return done, err
			}
		}
		copy(bounce[skip:], p[done:done+chunk])
		if _, err := d.f.WriteAt(bounce[:n], start); err != nil {
			return done, err
		}
		done += chunk
	}
	return done, nil
}

// dropPageCache discards the page cache of a block device (BLKFLSBUF), so
// that buffered readers after us do not see blocks cached before the
// kernel changed them.
func dropPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeDevice == 0 {
		return err
	}
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0); err != nil {
		return fmt.Errorf("%s: BLKFLSBUF: %w", path, err)
	}
	return nil
}
