package main

import "github.com/thinmeta/thinmeta/thin"

// openInput opens the metadata image at path for reading (see
// thin.OpenImage: packed and LZ4 images are unpacked transparently). A
// block device is opened exclusively unless shared.
func openInput(path string, shared bool) (*thin.Image, error) {
	return thin.OpenImage(path, &thin.OpenOptions{Shared: shared})
}

// openPool opens a metadata image read-only as a pool. shared opens a block
// device without exclusive access (for metadata-snapshot reads).
func openPool(path string, shared bool) (*thin.Pool, error) {
	return thin.Open(path, &thin.OpenOptions{Shared: shared})
}
