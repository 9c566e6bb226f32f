package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/thinmeta/thinmeta/internal/devfile"
	"github.com/thinmeta/thinmeta/pack"
)

var packCommand = &command{
	name:    "pack",
	summary: "pack metadata into a compressed file (as thin_metadata_pack)",
	usage: `Usage: thinmeta pack [options] -i INPUT -o OUTPUT

Write the metadata device or image file INPUT to OUTPUT in the compressed
format of thin_metadata_pack (version 3), which thin_metadata_unpack and
"thinmeta unpack" read. Only blocks that carry a valid checksum of a known
metadata block kind are stored, each encoded compactly and compressed; an
unused or damaged block is left out and unpacks as zeros. A pack file is a
small, exact copy of the metadata for bug reports and tests, and every
thinmeta command that reads metadata also reads pack files directly.

INPUT is read once from start to end. A block device is opened exclusively,
so the metadata of an active pool cannot be packed while it changes; use a
copy, or deactivate the pool.

Options:
  -i, --input FILE    the metadata device or image file to pack (required)
  -o, --output FILE   the pack file to write (required); it is written under
                      a temporary name and renamed into place when complete
  -f, --force         replace OUTPUT if it already exists
  -q, --quiet         show no progress line
  -h, --help          show this help

While packing, a progress line is shown on standard error if it is a
terminal (not with -q).

Exit status: 0 success, 1 failure (unreadable input, OUTPUT exists and -f
was not given, I/O error), 2 bad usage.
`,
}

func init() { packCommand.run = runPack }

// inOut holds the options shared by pack and unpack.
type inOut struct {
	input, output string
	force, quiet  bool
}

func (e *env) parseInOut(c *command, args []string) (inOut, int, bool) {
	var o inOut
	fs := e.flagSet(c)
	stringFlag(fs, &o.input, "", "i", "input")
	stringFlag(fs, &o.output, "", "o", "output")
	boolFlag(fs, &o.force, "", "f", "force")
	boolFlag(fs, &o.quiet, "", "q", "quiet")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return o, code, false
	}
	switch {
	case len(pos) > 0:
		return o, e.usageError(c, "unexpected argument %q (use -i INPUT -o OUTPUT)", pos[0]), false
	case o.input == "":
		return o, e.usageError(c, "no input file given (-i)"), false
	case o.output == "":
		return o, e.usageError(c, "no output file given (-o)"), false
	}
	return o, 0, true
}

func runPack(e *env, args []string) int {
	c := packCommand
	o, code, ok := e.parseInOut(c, args)
	if !ok {
		return code
	}
	in, size, err := openMetadata(o.input)
	if err != nil {
		return e.fail(c, err)
	}
	defer in.Close()
	if err := checkPackable(in, size); err != nil {
		return e.fail(c, fmt.Errorf("%s: %w", o.input, err))
	}
	out, err := createOutput(o.output, o.force, false, in)
	if err != nil {
		return e.fail(c, err)
	}
	update, end := e.progress("pack", o.quiet)
	r := &countingReaderAt{r: in, total: uint64(size), report: update}
	bw := bufio.NewWriterSize(out.f, 1<<20)
	err = pack.Pack(r, size, bw)
	if err == nil {
		err = bw.Flush()
	}
	end()
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		out.abort()
		return e.fail(c, err)
	}
	return exitOK
}

// openMetadata opens a metadata image file or device for reading, under
// a shared lock (see thin.ErrLocked), and returns its size. A block device
// is opened exclusively (O_EXCL), which fails while an active pool holds
// it.
func openMetadata(path string) (*os.File, int64, error) {
	return devfile.OpenRead(path, &devfile.Options{Exclusive: true, Wait: waitLocks})
}

func isBlockDevice(st fs.FileInfo) bool {
	return st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
}

// checkPackable refuses inputs that cannot be binary metadata: too small,
// already packed, or XML.
func checkPackable(f *os.File, size int64) error {
	if size < pack.HeaderSize || size < 4096 {
		return fmt.Errorf("too small to hold metadata (%d bytes)", size)
	}
	var head [4096]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return err
	}
	if pack.IsPacked(head[:]) {
		return errors.New("already a thin_metadata_pack file")
	}
	if t := bytes.TrimLeft(head[:], " \t\r\n"); len(t) > 0 && t[0] == '<' {
		return errors.New("looks like XML (thin_dump output), not binary metadata")
	}
	return nil
}

// output is a file being written: a new file under a temporary name,
// renamed over the destination when complete, or a block device written
// in place.
type output struct {
	f      *os.File
	path   string
	tmp    string // "" when writing in place
	device bool
	size   int64 // size of a device
}

// createOutput prepares to write path. An existing path is replaced only
// with force; a block device is accepted only when devices is set, and is
// then written in place. The output may not be the input file.
func createOutput(path string, force, devices bool, input *os.File) (*output, error) {
	st, err := os.Stat(path)
	switch {
	case err == nil:
		if input != nil {
			if err := devfile.CheckNotSame(path, input); err != nil {
				return nil, err
			}
		}
		if !force {
			return nil, fmt.Errorf("%s: file exists; use -f (--force) to replace it", path)
		}
		if isBlockDevice(st) {
			if !devices {
				return nil, fmt.Errorf("%s: is a block device; write the pack to a file", path)
			}
			return openDeviceOutput(path)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file or block device", path)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, err
	}
	dir, base := filepath.Split(path)
	for i := 0; ; i++ {
		tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.%d.tmp", base, os.Getpid(), i))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) && i < 100 {
			continue
		}
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("%s: cannot create: %w", path, err)
		}
		return &output{f: f, path: path, tmp: tmp}, nil
	}
}

func openDeviceOutput(path string) (*output, error) {
	dev, size, err := devfile.OpenWrite(path, &devfile.Options{Wait: waitLocks})
	if err != nil {
		return nil, err
	}
	return &output{f: dev.File, path: path, device: true, size: size}, nil
}

// commit makes the output durable and, for a new file, puts it in place.
func (o *output) commit() error {
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", o.path, err)
	}
	if err := o.f.Close(); err != nil {
		return fmt.Errorf("%s: %w", o.path, err)
	}
	if o.tmp != "" {
		// Under the lock of the file it replaces: never over a pool
		// another process is reading or writing.
		if err := devfile.Replace(o.tmp, o.path, waitLocks); err != nil {
			return err
		}
		o.tmp = ""
	}
	return nil
}

// abort gives up: the temporary file is removed and the destination is
// left as it was (a device keeps what was written).
func (o *output) abort() {
	o.f.Close()
	if o.tmp != "" {
		os.Remove(o.tmp)
	}
}

// countingReaderAt reports how many bytes have been read.
type countingReaderAt struct {
	r      io.ReaderAt
	n      atomic.Uint64
	total  uint64
	report func(done, total uint64)
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.report(c.n.Add(uint64(n)), c.total)
	return n, err
}
