package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/thinmeta/thinmeta/thin"
)

// staleGuard is the output of a command that reads a pool as it writes:
// before each write it checks that the pool has not moved underneath the
// reader (thin.ErrStale), so that nothing read after a change (by a writer
// that ignores the locks) reaches the output. A writer reuses no block of
// a committed state before its commit has moved the superblock, so what
// was read before a check that passes is all of one transaction.
type staleGuard struct {
	w     io.Writer
	stale func() error
}

func (g staleGuard) Write(p []byte) (int, error) {
	if err := g.stale(); err != nil {
		return 0, err
	}
	return g.w.Write(p)
}

// guardOutput returns a buffered writer to w, checked by stale before each
// write to w. Finish it with finishGuarded.
func guardOutput(w io.Writer, stale func() error) *bufio.Writer {
	return bufio.NewWriterSize(staleGuard{w: w, stale: stale}, 64<<10)
}

// finishGuarded flushes bw and returns err, unless the pool has gone stale
// (a final check): then the error is thin.ErrStale, which explains err.
func finishGuarded(bw *bufio.Writer, stale func() error, err error) error {
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return preferStale(stale, err)
}

// preferStale checks the pool once more: if it has gone stale, the result
// (or error) of the read is of no single transaction, and the error is
// thin.ErrStale; otherwise err.
func preferStale(stale func() error, err error) error {
	serr := stale()
	switch {
	case errors.Is(err, thin.ErrStale):
		return err
	case errors.Is(serr, thin.ErrStale) && err != nil:
		return fmt.Errorf("%w (the read failed meanwhile: %v)", serr, err)
	case serr != nil:
		return serr
	}
	return err
}
