package offheap_test

import (
	"runtime"
	"testing"
	"unsafe"

	"github.com/thinmeta/thinmeta/internal/offheap"
	"pgregory.net/rapid"
)

// TestMakeZeroedAndWritable: every element of a fresh slice reads zero,
// writes stick, and Free of it, of a heap slice and of nil is safe.
func TestMakeZeroedAndWritable(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 1<<20).Draw(t, "n")
		s := offheap.Make[uint64](n)
		if len(s) != n || cap(s) != n {
			t.Fatalf("len %d cap %d, want %d", len(s), cap(s), n)
		}
		idx := []int{0, n / 2, n - 1}
		for _, i := range idx {
			if s[i] != 0 {
				t.Fatalf("s[%d] = %d, want 0", i, s[i])
			}
		}
		for _, i := range idx {
			s[i] = uint64(i) + 1
		}
		for _, i := range idx {
			if s[i] != uint64(i)+1 {
				t.Fatalf("s[%d] = %d after write", i, s[i])
			}
		}
		offheap.Free(s)
	})
	offheap.Free(make([]uint32, 10)) // a heap slice: left alone
	offheap.Free[uint8](nil)
	if s := offheap.Make[uint16](0); s != nil {
		t.Fatalf("Make(0) = %v, want nil", s)
	}
}

// TestMakeOutsideHeap: on Linux a large Make does not count in the Go
// heap, which is the point of the package.
func TestMakeOutsideHeap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("heap fallback off Linux")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := offheap.Make[uint64](8 << 20) // 64 MiB
	s[len(s)-1] = 1
	runtime.ReadMemStats(&after)
	defer offheap.Free(s)
	if grew := int64(after.HeapSys) - int64(before.HeapSys); grew >= 32<<20 {
		t.Fatalf("heap grew by %d bytes for a 64 MiB Make", grew)
	}
}

// TestSlab: blocks are the slab's size, aligned, zeroed, distinct (writing
// one never shows in another), across many mappings; Release empties it.
func TestSlab(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := 8 * rapid.IntRange(1, 600).Draw(t, "words")
		per := rapid.IntRange(1, 7).Draw(t, "per")
		n := rapid.IntRange(1, 40).Draw(t, "blocks")
		s := offheap.NewSlab(size, per)
		var got [][]byte
		for i := 0; i < n; i++ {
			b := s.Get()
			if len(b) != size || cap(b) != size {
				t.Fatalf("block %d: len %d cap %d, want %d", i, len(b), cap(b), size)
			}
			if uintptr(unsafe.Pointer(&b[0]))%8 != 0 {
				t.Fatalf("block %d not 8-byte aligned", i)
			}
			for j, x := range b {
				if x != 0 {
					t.Fatalf("block %d byte %d = %d, want 0", i, j, x)
				}
			}
			for j := range b {
				b[j] = byte(i + 1)
			}
			got = append(got, b)
		}
		for i, b := range got {
			for j, x := range b {
				if x != byte(i+1) {
					t.Fatalf("block %d byte %d = %d, want %d (blocks overlap)", i, j, x, i+1)
				}
			}
		}
		s.Release()
		if b := s.Get(); len(b) != size || b[0] != 0 || b[size-1] != 0 {
			t.Fatalf("Get after Release: len %d", len(b))
		}
		s.Release()
	})
}
