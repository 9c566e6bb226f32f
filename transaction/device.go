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
// Device; Flush is fdatasync. It is safe for concurrent use, as the
// positioned reads and writes of an *os.File are.
type FileDevice struct{ *os.File }

// Flush makes completed writes durable.
func (f FileDevice) Flush() error {
	beforeIO()
	return unix.Fdatasync(int(f.Fd()))
}

// WriteAt writes p at off (pwrite).
func (f FileDevice) WriteAt(p []byte, off int64) (int, error) {
	beforeIO()
	return f.File.WriteAt(p, off)
}

// WritebackStarter is implemented by devices that can be told to start
// writing completed writes of a range out to stable storage now, without
// waiting for them: a writer of many blocks that flushes at the end then
// finds most of them already written, instead of waiting at the flush for
// them all. It is only a hint: it neither orders nor completes anything,
// and a failure of the writes it starts is reported by the next Flush.
type WritebackStarter interface {
	StartWriteback(off, n int64)
}

// StartWriteback starts writeback of the n bytes at off
// (sync_file_range with SYNC_FILE_RANGE_WRITE). Its own errors are
// dropped: a device where it cannot start writeback early (EINVAL,
// ESPIPE) writes at Flush as it would have anyway, and a failed write is
// recorded against the file and returned by the next Flush (fdatasync).
// It is not counted as a write by the crash-test hook of the
// thinmeta_faults build, so the writes and flushes it counts are the
// same with or without it.
func (f FileDevice) StartWriteback(off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// VectorWriter is implemented by devices that can write several buffers to
// consecutive offsets in one call (pwritev); the transaction manager uses
// it to write runs of blocks without assembling them first.
type VectorWriter interface {
	WriteVAt(bufs [][]byte, off int64) error
}

// WriteVAt writes bufs back to back at off with pwritev, at most iovMax
// buffers a call. Empty buffers are skipped.
func (f FileDevice) WriteVAt(bufs [][]byte, off int64) error {
	beforeIO()
	for {
		// A vector left with only empty buffers is written: without
		// this, a pwritev of them returned 0 and the loop never ended.
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
		if len(bufs) == 0 {
			return nil
		}
		n, err := unix.Pwritev(int(f.Fd()), bufs[:min(len(bufs), iovMax)], off)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite // bufs[0] is not empty
		}
		off += int64(n)
		for len(bufs) > 0 && n >= len(bufs[0]) {
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
		if n > 0 {
			bufs[0] = bufs[0][n:]
		}
	}
}

// iovMax is the most buffers one pwritev takes (Linux's UIO_MAXIOV): with
// more it fails with EINVAL.
const iovMax = 1024
