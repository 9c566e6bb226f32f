// Package offheap allocates large zeroed arrays of plain words outside the
// Go heap, for the count planes of the tools that scan a whole pool.
//
// Memory the garbage collector manages costs more than its size: the
// collector lets the heap grow to twice what is live (GOGC=100) before it
// collects, so 20 MiB of count planes held for a whole walk let another
// 20 MiB of short-lived buffers pile up, and every page of a make() is
// zeroed, so resident, when it is handed out. An anonymous private mapping
// is neither: the collector does not count it, and the kernel makes a page
// resident only when it is first written. A tool's peak memory then
// follows the counts it really keeps.
//
// On systems without mmap the arrays come from the Go heap, and Free does
// nothing. Memory from this package must hold no Go pointers (the
// collector does not scan it), which the element types enforce.
package offheap

import (
	"sync"
	"unsafe"
)

// Word is an element type offheap can hold: no pointers.
type Word interface {
	~uint8 | ~uint16 | ~uint32 | ~uint64
}

// Make returns a zeroed slice of n elements outside the Go heap when it can,
// in the heap otherwise. Pass it to Free when done; using it after Free
// faults. Make(0) returns nil.
func Make[T Word](n int) []T {
	if n <= 0 {
		return nil
	}
	var zero T
	size := uintptr(n) * unsafe.Sizeof(zero)
	if size/unsafe.Sizeof(zero) != uintptr(n) {
		panic("offheap: size overflows")
	}
	b := mapAnon(int(size))
	if b == nil {
		return make([]T, n)
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// Free releases a slice from Make (the whole slice Make returned, not a
// subslice of a different start). A heap slice, or nil, is left to the
// collector.
func Free[T Word](s []T) {
	if len(s) == 0 {
		return
	}
	var zero T
	p := unsafe.Pointer(unsafe.SliceData(s))
	unmapAnon(p, uintptr(cap(s))*unsafe.Sizeof(zero))
}

// Slab hands out fixed-size zeroed blocks (pages of a count plane) carved
// from mappings of many blocks each, so that a plane allocated a page at a
// time costs one system call per slab, not per page. It is safe for
// concurrent use. Release frees every block at once.
type Slab struct {
	size, per int

	mu      sync.Mutex
	cur     []byte   // what is left of the newest mapping
	regions [][]byte // every mapping, for Release
}

// NewSlab returns a Slab of blocks of size bytes (a multiple of 8), per
// blocks to a mapping.
func NewSlab(size, per int) *Slab {
	if size <= 0 || size%8 != 0 || per <= 0 {
		panic("offheap: bad slab shape")
	}
	return &Slab{size: size, per: per}
}

// Get returns a zeroed block of the slab's size, 8-byte aligned.
func (s *Slab) Get() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cur) < s.size {
		r := Make[uint64](s.size * s.per / 8)
		s.cur = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(r))), s.size*s.per)
		s.regions = append(s.regions, s.cur)
	}
	b := s.cur[:s.size:s.size]
	s.cur = s.cur[s.size:]
	return b
}

// Release frees every block Get returned; none may be used after it. The
// Slab can be used again.
func (s *Slab) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.regions {
		Free(unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(r))), len(r)/8))
	}
	s.regions, s.cur = nil, nil
}
