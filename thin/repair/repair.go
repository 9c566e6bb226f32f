package repair

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/thinmeta/thinmeta/internal/devfile"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// Errors of Repair and RepairFile about the output.
var (
	// ErrSameDevice means the output is the input (the same file or block
	// device): repair never writes its input.
	ErrSameDevice = errors.New("the output is the input: repair writes a new device and never its input")
	// ErrOutputHasPool means the output already holds a valid pool
	// superblock; it is overwritten only when forced (WriteOptions.Force).
	ErrOutputHasPool = errors.New("the output already holds a dm-thin pool (force to overwrite it)")
)

// WriteOptions say how Repair and RepairFile treat their output.
type WriteOptions struct {
	// Force overwrites an output that already holds a valid pool.
	Force bool
}

// Repair salvages the metadata in the first inSize bytes of in and writes
// the result to out, a metadata device of outSize bytes (docs/REPAIR.md).
// in is never written. Unless wopts.Force is set, an out whose block 0 is
// a valid superblock is refused (ErrOutputHasPool) and nothing is
// written. Block 0 of out is zeroed before anything else is written and
// the superblock written last, after a flush, so an interrupted Repair
// leaves no pool on out. The report is returned whenever the salvage
// succeeded, even if writing failed.
func Repair(ctx context.Context, in io.ReaderAt, inSize int64, out transaction.Device, outSize int64, opts Options, wopts WriteOptions) (*Report, error) {
	if !wopts.Force {
		if err := refusePool(out, outSize); err != nil {
			return nil, err
		}
	}
	sv, err := Salvage(ctx, in, inSize, opts)
	if err != nil {
		return nil, err
	}
	return sv.Report, sv.Write(ctx, out, outSize)
}

// refusePool fails with ErrOutputHasPool if block 0 of dev is a valid
// superblock.
func refusePool(dev io.ReaderAt, size int64) error {
	if size < transaction.BlockSize {
		return nil
	}
	r := transaction.NewReader(dev, size)
	if _, err := superblock.Read(r, superblock.Location, ^uint32(0)); err == nil {
		return ErrOutputHasPool
	}
	return nil
}

// Repair and RepairFile stop with ctx's error once ctx is done (an
// output being written is then left without a valid superblock).
//
// RepairFile repairs the metadata device or image file at input into
// output, a block device or a file, as thin_repair does; input is opened
// read-only (a block device exclusively), as thin.OpenImage opens it, so
// packed and LZ4 images are read too. An output that exists is written in
// place at its current size, after the checks of Repair; an output that
// does not exist is built as a new file of the input's size (larger if
// the salvaged pool needs it) under a temporary name in the same
// directory, made durable and renamed into place, so it appears whole or
// not at all. An output that is the input (the same file, or the same
// block device under any name) is refused with ErrSameDevice.
func RepairFile(ctx context.Context, input, output string, opts Options, wopts WriteOptions) (*Report, error) {
	im, err := thin.OpenImage(input, &thin.OpenOptions{Salvage: true})
	if err != nil {
		return nil, err
	}
	defer im.Close()
	ist, err := os.Stat(input)
	if err != nil {
		return nil, err
	}
	ost, err := os.Stat(output)
	switch {
	case err == nil:
		if devfile.SameFile(ist, ost) {
			return nil, fmt.Errorf("%s: %w", output, ErrSameDevice)
		}
		return repairInto(ctx, im, input, output, opts, wopts)
	case errors.Is(err, os.ErrNotExist):
		return repairNew(ctx, im, input, output, opts)
	default:
		return nil, err
	}
}

func repairInto(ctx context.Context, im *thin.Image, input, output string, opts Options, wopts WriteOptions) (*Report, error) {
	dev, size, err := devfile.OpenWrite(output, nil)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	if !wopts.Force {
		if err := refusePool(dev, size); err != nil {
			return nil, fmt.Errorf("%s: %w", output, err)
		}
	}
	sv, err := Salvage(ctx, im, im.Size(), opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", input, err)
	}
	err = sv.Write(ctx, dev, size)
	if cerr := dev.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return sv.Report, fmt.Errorf("%s: %w", output, err)
	}
	return sv.Report, nil
}

func repairNew(ctx context.Context, im *thin.Image, input, output string, opts Options) (*Report, error) {
	sv, err := Salvage(ctx, im, im.Size(), opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", input, err)
	}
	dir := filepath.Dir(output)
	size := max(im.Size()/transaction.BlockSize, 64) * transaction.BlockSize
	for {
		err = writeNew(ctx, sv, dir, output, size)
		if errors.Is(err, spacemap.ErrNoSpace) && size < int64(spacemap.MaxMetadataBlocks)*transaction.BlockSize {
			size = min(2*size, int64(spacemap.MaxMetadataBlocks)*transaction.BlockSize)
			continue
		}
		if err != nil {
			return sv.Report, fmt.Errorf("%s: %w", output, err)
		}
		return sv.Report, nil
	}
}

// writeNew writes the salvaged pool to a new file of size bytes in dir
// and renames it to output once durable.
func writeNew(ctx context.Context, sv *Salvaged, dir, output string, size int64) error {
	f, err := os.CreateTemp(dir, "."+filepath.Base(output)+".repair-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Truncate(size); err != nil {
		return err
	}
	if err := sv.Write(ctx, transaction.FileDevice{File: f}, size); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Link, not rename: an output created meanwhile is not replaced.
	if err := os.Link(tmp, output); err != nil {
		return err
	}
	ok = true
	os.Remove(tmp)
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
