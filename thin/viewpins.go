package thin

import (
	"os"
	"sync"
	"syscall"
)

// Open of a file that a writer of this process holds (OpenMetadata,
// CreateMetadata, and package blob's) gives that writer's Committed view:
// the last commit, pinned against the writer's later commits, as a view
// taken from the writer. (A view of the file's bytes would see the writer
// reuse blocks it reads; the locks let this process's readers in beside
// its writer.)

// fileID names a file or block device within this machine.
type fileID struct{ dev, ino uint64 }

var openWriters struct {
	mu sync.Mutex
	m  map[fileID]*Metadata
}

// identify returns the identity of the file or block device st describes:
// a block device by its device number (two nodes of one device are one
// device), a regular file by its inode.
func identify(st os.FileInfo) (fileID, bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	if st.Mode()&os.ModeDevice != 0 {
		return fileID{dev: ^uint64(0), ino: uint64(sys.Rdev)}, true
	}
	return fileID{dev: uint64(sys.Dev), ino: uint64(sys.Ino)}, true
}

// registerWriter records m as the writer of f and returns a function that
// removes the record.
func registerWriter(f *os.File, m *Metadata) func() {
	st, err := f.Stat()
	if err != nil {
		return func() {}
	}
	id, ok := identify(st)
	if !ok {
		return func() {}
	}
	openWriters.mu.Lock()
	defer openWriters.mu.Unlock()
	if openWriters.m == nil {
		openWriters.m = make(map[fileID]*Metadata)
	}
	openWriters.m[id] = m
	return func() {
		openWriters.mu.Lock()
		defer openWriters.mu.Unlock()
		if openWriters.m[id] == m {
			delete(openWriters.m, id)
		}
	}
}

// writerOf returns the writer of this process that holds the file at
// path, if any.
func writerOf(path string) *Metadata {
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	id, ok := identify(st)
	if !ok {
		return nil
	}
	openWriters.mu.Lock()
	defer openWriters.mu.Unlock()
	return openWriters.m[id]
}
