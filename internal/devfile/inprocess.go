package devfile

import (
	"os"
	"sync"
)

// The locks of one process do not exclude each other the way another
// process's do: a program that holds a pool open for writing may also open
// it to read (a reader opened so takes no lock of its own, and its watch
// of the superblock reports ErrStale once the writer commits). held
// records the files this process has open for writing, reading those it
// has open for reading under a lock (which do exclude its own writers).
var held, reading fileSet

type fileSet struct {
	mu    sync.Mutex
	files []*os.File
	limit int // prune closed files when there are this many
}

// holdWrite records f as open for writing by this process.
func holdWrite(f *os.File) { held.add(f) }

// heldForWrite reports whether this process has the file of st open for
// writing (with a file still open). Closed files are forgotten.
func heldForWrite(st os.FileInfo) bool { return held.has(st) }

// holdRead records f as open for reading, under a shared lock, by this
// process.
func holdRead(f *os.File) { reading.add(f) }

// heldForRead reports whether this process has the file of st open for
// reading under a lock.
func heldForRead(st os.FileInfo) bool { return reading.has(st) }

// add records f, forgetting closed files now and then so that a program
// that opens and closes a pool many times keeps no record of each.
func (s *fileSet) add(f *os.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.files) >= s.limit {
		s.prune(nil)
		s.limit = 2*len(s.files) + 16
	}
	s.files = append(s.files, f)
}

func (s *fileSet) has(st os.FileInfo) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prune(st)
}

// prune forgets closed files and reports whether an open one is the file
// of st (if st is not nil).
func (s *fileSet) prune(st os.FileInfo) bool {
	found := false
	live := s.files[:0]
	for _, f := range s.files {
		if !isOpen(f) {
			continue
		}
		live = append(live, f)
		if st == nil {
			continue
		}
		if fst, err := f.Stat(); err == nil && os.SameFile(fst, st) {
			found = true
		}
	}
	clear(s.files[len(live):])
	s.files = live
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
