package devfile

import (
	"os"
	"sync"
)

// The locks of one process do not exclude each other the way another
// process's do: a program that holds a pool open for writing may also open
// it to read (a reader opened so takes no lock of its own, and its watch
// of the superblock reports ErrStale once the writer commits). held
// records the files this process has open for writing.
var held struct {
	mu    sync.Mutex
	files []*os.File
}

// holdWrite records f as open for writing by this process.
func holdWrite(f *os.File) {
	held.mu.Lock()
	defer held.mu.Unlock()
	held.files = append(held.files, f)
}

// heldForWrite reports whether this process has the file of st open for
// writing (with a file still open). Closed files are forgotten.
func heldForWrite(st os.FileInfo) bool {
	held.mu.Lock()
	defer held.mu.Unlock()
	found := false
	live := held.files[:0]
	for _, f := range held.files {
		if !isOpen(f) {
			continue
		}
		live = append(live, f)
		if fst, err := f.Stat(); err == nil && os.SameFile(fst, st) {
			found = true
		}
	}
	clear(held.files[len(live):])
	held.files = live
	return found
}

// isOpen reports whether f has not been closed.
func isOpen(f *os.File) bool {
	sc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	return sc.Control(func(uintptr) {}) == nil
}
