package thin

import "os"

// OpenFile opens a metadata file or block device read-only and returns it
// with its size, for callers that want the raw device (such as a check that
// must report a damaged superblock rather than fail to open). A block device
// is opened exclusively unless shared is set.
func OpenFile(path string, shared bool) (*os.File, int64, error) {
	return openDevice(path, os.O_RDONLY, !shared)
}
