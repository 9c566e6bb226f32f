//go:build !linux

package offheap

import "unsafe"

// mapAnon returns nil: without mmap, Make allocates in the heap.
func mapAnon(size int) []byte { return nil }

// unmapAnon does nothing: heap slices are the collector's.
func unmapAnon(p unsafe.Pointer, size uintptr) {}
