package thin

import (
	"bytes"
	"fmt"
	"io"

	"github.com/thinmeta/thinmeta/internal/devfile"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// OpenOptions tune Open and OpenImage.
type OpenOptions struct {
	// Shared opens a block device without asking for exclusive access.
	// Reading the metadata snapshot of a live pool needs this: the kernel
	// holds the device exclusively. Without it Open fails with ErrBusy on a
	// device another opener holds exclusively, because the live metadata of
	// an active pool changes underneath any reader.
	Shared bool
	// Wait waits while a writer holds the file's lock instead of failing
	// at once with ErrLocked.
	Wait bool
	// Salvage decompresses an LZ4 image whole whatever its block 0 holds,
	// for a repair that looks for older superblocks. Otherwise an image
	// whose block 0 is all zeros (never formatted; for Open, anything but
	// a readable superblock) is refused as soon as block 0 is
	// decompressed: a frame of gigabytes of zeros is no metadata and is
	// not read to its end.
	Salvage bool
}

// Open opens the metadata in a file or block device read-only, as
// OpenImage does (a thin_metadata_pack file or an LZ4 frame is unpacked
// transparently), and returns a view of it. Close releases the image.
//
// For a file or device that a writer of this process holds (OpenMetadata,
// CreateMetadata, blob.OpenWriter, blob.Create), Open returns that
// writer's Committed view: its last commit, pinned against its later
// commits until closed, and ending when the writer is closed.
func Open(path string, opts *OpenOptions) (*Pool, error) {
	if m := writerOf(path); m != nil {
		// A writer of this process holds the file: its view of the
		// last commit, pinned against its later commits (a view of
		// the file's bytes would see them reuse blocks it reads).
		if p, err := m.Committed(); err == nil {
			return p, nil
		}
	}
	img, err := openImage(path, opts, validSuperblock)
	if err != nil {
		return nil, err
	}
	p, err := NewPool(img, img.Size())
	if err != nil {
		img.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p.closer = img.Close
	return p, nil
}

// Image is the raw bytes of a metadata image opened by OpenImage: a file
// or block device read in place, or the unpacked contents of a packed or
// compressed image. It is safe for concurrent reads.
type Image struct {
	ra     io.ReaderAt
	size   int64
	closer func() error
	watch  *watch // nil for a private copy
}

// OpenImage opens the metadata image at path read-only, for callers that
// want its bytes rather than a view (such as a check that must report a
// damaged superblock rather than fail to open). A thin_metadata_pack file
// is unpacked and an LZ4 frame decompressed, transparently; a file or
// block device is read in place. A block device is sized by ioctl and
// opened exclusively unless opts.Shared is set. Anything but a regular
// file or a block device is refused, before it is opened (a FIFO would
// block).
//
// An unpacked or decompressed image is a private copy whose memory
// follows the non-zero blocks it holds (past 1 GiB of them, an unlinked
// temporary file), not the size its header or frames claim. An LZ4 image
// must be complete, to each frame's end mark (a truncated one fails with
// ErrLZ4, as "lz4 -t" fails it), hold whole 4 KiB blocks, and at most 16
// GiB, more than any metadata device; unless opts.Salvage, one whose
// block 0 is all zeros is refused once block 0 is decompressed.
func OpenImage(path string, opts *OpenOptions) (*Image, error) {
	return openImage(path, opts, formatted)
}

// openImage is OpenImage; unless opts.Salvage, the block 0 of an LZ4
// image is checked with sbCheck once it is decompressed.
func openImage(path string, opts *OpenOptions, sbCheck func([]byte) error) (*Image, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	f, size, err := devfile.OpenRead(path, &devfile.Options{Exclusive: !opts.Shared, Wait: opts.Wait})
	if err != nil {
		return nil, err
	}
	var magic [8]byte
	n, _ := f.ReadAt(magic[:], 0)
	switch {
	case isPacked(magic[:n]):
		defer f.Close()
		return unpackImage(f)
	case isLZ4(magic[:n]):
		defer f.Close()
		if opts.Salvage {
			sbCheck = nil
		}
		return lz4Image(f, sbCheck)
	}
	im := &Image{ra: f, size: size, closer: f.Close}
	if im.watch = newWatch(f, opts.Shared); im.watch != nil {
		im.ra = &watchedReader{ra: f, w: im.watch}
	}
	return im, nil
}

// ReadAt implements io.ReaderAt.
func (im *Image) ReadAt(p []byte, off int64) (int, error) { return im.ra.ReadAt(p, off) }

// Size returns the size of the image in bytes.
func (im *Image) Size() int64 { return im.size }

// Close releases the file (or the temporary file of a large unpacked
// image).
func (im *Image) Close() error {
	if im.closer == nil {
		return nil
	}
	return im.closer()
}

// formatted refuses a block 0 of zeros, which proves a device was never
// formatted: there is nothing to check or read past it.
func formatted(block []byte) error {
	if allZero(block) {
		return &transaction.CorruptError{Block: 0, Kind: superblock.Kind, Err: superblock.ErrUnformatted}
	}
	return nil
}

// validSuperblock checks that block is a superblock Open can read.
func validSuperblock(block []byte) error {
	_, err := superblock.Read(transaction.NewReader(bytes.NewReader(block), int64(len(block))), superblock.Location, knownIncompat)
	return err
}
