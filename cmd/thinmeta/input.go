package main

import (
	"fmt"
	"os"

	"github.com/thinmeta/thinmeta/internal/devfile"
	"github.com/thinmeta/thinmeta/thin"
)

// waitLocks is set by the global --wait option: commands wait for other
// processes' locks on a pool (thin.OpenOptions.Wait, thin.WriteOptions.Wait)
// instead of failing with thin.ErrLocked.
var waitLocks bool

// openInput opens the metadata image at path for reading (see
// thin.OpenImage: packed and LZ4 images are unpacked transparently). A
// block device is opened exclusively unless shared.
func openInput(path string, shared bool) (*thin.Image, error) {
	im, err := thin.OpenImage(path, &thin.OpenOptions{Shared: shared, Wait: waitLocks})
	if err == nil {
		afterOpen()
	}
	return im, err
}

// afterOpen is called once an input is open (and locked). Tests set it to
// pause the process there.
var afterOpen = func() {}

// openPool opens a metadata image read-only as a pool. shared opens a block
// device without exclusive access (for metadata-snapshot reads).
func openPool(path string, shared bool) (*thin.Pool, error) {
	p, err := thin.Open(path, &thin.OpenOptions{Shared: shared, Wait: waitLocks})
	if err == nil {
		afterOpen()
	}
	return p, err
}

// createNotInput opens output for writing as os.Create does (creating it,
// or truncating it), but first refuses it with thin.ErrSameFile if it is
// the same file (device and inode) or block device as one of the inputs:
// truncating or overwriting it would destroy what is being read.
func createNotInput(output string, inputs ...string) (*os.File, error) {
	f, err := os.OpenFile(output, os.O_WRONLY|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	for _, in := range inputs {
		if ist, err := os.Stat(in); err == nil && devfile.SameFile(st, ist) {
			f.Close()
			return nil, fmt.Errorf("%s: %w (%s)", output, thin.ErrSameFile, in)
		}
	}
	if st.Mode().IsRegular() {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}
