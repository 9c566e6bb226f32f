package main

import (
	"fmt"
	"io"
	"os"

	"github.com/thinmeta/thinmeta/internal/devfile"
	"github.com/thinmeta/thinmeta/thin/restore"
)

var restoreCommand = &command{
	interruptible: true,
	name:          "restore",
	summary:       "build metadata from thin_dump XML (as thin_restore)",
	usage: `Usage: thinmeta restore [options] -i INPUT -o OUTPUT

Read INPUT, pool metadata in the XML format of thin_dump (of
thin-provisioning-tools 0.9.0 or 1.x), and write the pool it describes to
OUTPUT, a metadata block device or an existing file, as thin_restore does.
Everything OUTPUT held is lost.

The pool written has the time, transaction id, flags and version of
INPUT's <superblock> (version 1 if it names none; no metadata snapshot),
the devices of INPUT with their details as given except mapped_blocks,
which is counted from the device's mappings, a data space map of
nr_data_blocks blocks whose counts are the references the mappings make,
and a metadata space map over the whole of OUTPUT (up to the 15.9 GiB one
can track). Each tree is built bottom-up with its leaves packed full.
The shared subtrees of thin_dump 1.x, <def name="..."> at the top level
and <ref name="..."/> inside a <device>, become leaves written once and
shared by every device that refers to them.

The version and mapped_blocks are thin_restore 0.9.0's choices. thin_restore
1.x writes version 2 whatever INPUT says and keeps INPUT's mapped_blocks,
so a wrong count in INPUT gives an image that its own thin_check rejects;
here it gives a clean one.

INPUT is checked while it is read. It is refused, with the line at fault,
if it is not well-formed XML of this grammar (unknown elements or
attributes, missing or repeated attributes, text other than whitespace;
comments and an XML declaration are allowed), has other than exactly one
<superblock>, a data block size the kernel refuses, a device id twice,
virtual blocks not strictly increasing within a device (also across
<ref>s), a data block at or beyond nr_data_blocks, a mapping time beyond 24
bits, or a <ref> to a <def> not defined before it. A bad <superblock>
tag leaves OUTPUT untouched. Any later failure, such as an OUTPUT too
small for the pool, leaves OUTPUT without a valid superblock, as
thin_restore leaves it: the superblock is zeroed when writing starts and
written last, after everything else is durable.

Options:
  -i, --input FILE              the XML to read (required); "-" reads
                                standard input
  -o, --output FILE             the metadata device or file to write
                                (required); a file must exist, and is
                                used at its current size
      --transaction-id N        use N as the transaction id instead of
                                INPUT's
      --data-block-size SECTORS use this data block size (a multiple of
                                128 from 128 to 2097152) instead of INPUT's
      --nr-data-blocks N        use N as the data device size in blocks
                                instead of INPUT's
  -q, --quiet                   show no progress line
  -h, --help                    show this help

While restoring, a progress line is shown on standard error if it is a
terminal (not with -q). SIGINT (Ctrl-C) stops the restore within a
moment; as after any failure, OUTPUT is then either untouched (if
INPUT's <superblock> had not been read) or holds no valid superblock,
never a pool that looks valid.

Exit status: 0 success, 1 failure (bad INPUT, OUTPUT missing or too small,
I/O error), 2 bad usage, 130 interrupted by SIGINT.
`,
}

func init() { restoreCommand.run = runRestore }

func runRestore(e *env, args []string) int {
	c := restoreCommand
	fs := e.flagSet(c)
	var input, output string
	var quiet bool
	stringFlag(fs, &input, "", "i", "input")
	stringFlag(fs, &output, "", "o", "output")
	ov := newOverrideFlags()
	ov.register(fs)
	boolFlag(fs, &quiet, "", "q", "quiet")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) > 0:
		return e.usageError(c, "unexpected argument %q (use -i INPUT -o OUTPUT)", pos[0])
	case input == "":
		return e.usageError(c, "no input file given (-i)")
	case output == "":
		return e.usageError(c, "no output file given (-o)")
	}
	var opts restore.Options
	if bad := ov.validDataBlockSize(); bad != "" {
		return e.usageError(c, "%s", bad)
	}
	opts.TransactionID, opts.DataBlockSize, opts.NrDataBlocks = ov.values()

	var in io.Reader = e.stdin
	var total uint64
	if input != "-" {
		f, err := os.Open(input)
		if err != nil {
			return e.fail(c, err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			total = uint64(st.Size())
		}
		in = f
	}
	if _, err := os.Stat(output); err != nil {
		return e.fail(c, fmt.Errorf("%s: the output must be an existing file or a block device, large enough for the metadata: %w", output, err))
	}
	dev, size, err := devfile.OpenWrite(output, &devfile.Options{Wait: waitLocks})
	if err != nil {
		return e.fail(c, err)
	}
	if f, ok := in.(*os.File); ok {
		if err := devfile.CheckNotSame(output, f); err != nil {
			dev.Close()
			return e.fail(c, err)
		}
	}
	var end func()
	opts.InputSize = int64(total)
	opts.Progress, end = e.libraryProgress("restore", quiet)
	_, err = restore.Restore(e.context(), in, dev, size, opts)
	end()
	if cerr := dev.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		name := input
		if input == "-" {
			name = "standard input"
		}
		return e.fail(c, fmt.Errorf("%s: %w", name, err))
	}
	return exitOK
}
