package devfile

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blockDeviceSize returns the size of a block device in bytes.
func blockDeviceSize(f *os.File) (int64, error) {
	var size uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size)))
	if errno != 0 {
		return 0, errno
	}
	return int64(size), nil
}

// lockFile takes an exclusive, non-blocking advisory lock on f, so two
// writers can never work on one metadata file at once.
func lockFile(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if err == unix.EWOULDBLOCK {
			return ErrBusy
		}
		return err
	}
	return nil
}
