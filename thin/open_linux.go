package thin

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
