package offheap

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapAnon maps size bytes of zeroed private memory, or returns nil.
func mapAnon(size int) []byte {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return b
}

// unmapAnon frees the mapping of size bytes at p. unix.Munmap keeps the
// mappings unix.Mmap made and refuses any other slice (EINVAL), so a heap
// slice Make fell back to is left alone.
func unmapAnon(p unsafe.Pointer, size uintptr) {
	_ = unix.Munmap(unsafe.Slice((*byte)(p), size))
}
