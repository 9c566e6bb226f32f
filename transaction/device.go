package transaction

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Device is a metadata device that can be written: positioned reads and
// writes of whole blocks, and Flush, which returns only once every completed
// write is durable (a cache flush, like the kernel's REQ_PREFLUSH).
type Device interface {
	io.ReaderAt
	io.WriterAt
	Flush() error
}

// FileDevice adapts an *os.File (a regular file or a block device) to
// Device; Flush is fdatasync.
type FileDevice struct{ *os.File }

// Flush makes completed writes durable.
func (f FileDevice) Flush() error { return unix.Fdatasync(int(f.Fd())) }
