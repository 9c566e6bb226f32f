package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/thinmeta/thinmeta/thin/repair"
)

var repairCommand = &command{
	name:          "repair",
	interruptible: true,
	summary:       "salvage damaged metadata into a new device (as thin_repair)",
	usage: `Usage: thinmeta repair [options] -i INPUT -o OUTPUT

Salvage the dm-thin metadata in INPUT (a metadata device or image file,
which may be damaged anywhere) and write what could be recovered to
OUTPUT as a new pool, as thin_repair does. INPUT is only read, never
written.

The newest metadata is kept wherever it is readable. A damaged B-tree
node is replaced by the newest consistent older copy of its subtree that
the device still holds (the kernel's copy-on-write leaves older copies of
changed nodes behind), and a leaf whose keys are out of order is sorted.
Every mapping taken from an older copy is checked against the newest
metadata and the data space map: a mapping whose data block the newest
metadata gives to another device (not a snapshot sharing it), or that the
data space map shows was discarded or replaced since, is dropped, so a
repaired volume never shows another volume's data. A lost superblock is
rebuilt from the newest generation of trees found on the device; its
fields are inferred where they can be (the data block size from a torn
superblock or a metadata-snapshot copy, the data device size from the
data space map). Both space maps are rebuilt from what was kept; the
output has no metadata snapshot. docs/REPAIR.md describes the model.

Unlike thin_repair, thinmeta repair says what it did: per device, the
mappings kept, those taken from older copies (and from which), those
dropped and why, the damaged key ranges, devices lost, and every pool
field it inferred. The report is printed on standard output (not with
-q) and, with --report FILE, written to FILE as JSON (the same fields,
with every run listed; the text lists ten per kind and device).

OUTPUT may be an existing file or block device, written in place at its
current size (it must be large enough), or a file that does not exist
yet, created with the size of INPUT (or larger if needed) under a
temporary name and linked into place only once complete, with mode 0600.
OUTPUT is refused if it is INPUT (the same file, or the same block device
under another name), or if it already holds a valid pool superblock
(unless -f). Block 0 of OUTPUT is zeroed before anything else is written
and the superblock is written last, after everything else is durable: an
interrupted repair leaves no valid-looking pool on OUTPUT. (A new file
that a killed repair did not finish is a hidden .OUTPUT.repair-* file
beside it, which may be removed.)

Options:
  -i, --input FILE              the damaged metadata (required)
  -o, --output FILE             the device or file to write (required)
  -f, --force                   overwrite an OUTPUT that holds a pool
      --transaction-id N        give the repaired pool transaction id N
      --data-block-size SECTORS the data block size (a multiple of 128
                                from 128 to 2097152), needed only when
                                INPUT records it nowhere readable
      --nr-data-blocks N        the data device's size in data blocks
                                instead of what INPUT says or implies
      --report FILE             write the report to FILE as JSON
  -q, --quiet                   print nothing (no report, no error
                                message); only the exit status tells
  -h, --help                    show this help

While repairing, a progress line is shown on standard error if it is a
terminal (not with -q). SIGINT (Ctrl-C) stops the repair within a
moment: OUTPUT is then untouched (if writing had not begun) or holds no
valid superblock, and a new file is not created.

Exit status: 0 the repaired pool was written (the report says whether
anything was lost), 1 failure (no recognisable metadata in INPUT, the
data block size needed, OUTPUT refused or too small, I/O error; nothing
valid is left on OUTPUT), 2 bad usage, 130 interrupted by SIGINT.
`,
}

func init() { repairCommand.run = runRepair }

func runRepair(e *env, args []string) int {
	c := repairCommand
	fs := e.flagSet(c)
	var input, output, reportFile string
	var quiet, force bool
	ov := newOverrideFlags()
	stringFlag(fs, &input, "", "i", "input")
	stringFlag(fs, &output, "", "o", "output")
	stringFlag(fs, &reportFile, "", "report")
	boolFlag(fs, &quiet, "", "q", "quiet")
	boolFlag(fs, &force, "", "f", "force")
	ov.register(fs)
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
	if bad := ov.validDataBlockSize(); bad != "" {
		return e.usageError(c, "%s", bad)
	}
	var opts repair.Options
	opts.TransactionID, opts.DataBlockSize, opts.NrDataBlocks = ov.values()
	var end func()
	opts.Progress, end = e.libraryProgress("repair", quiet)
	rep, err := repair.RepairFile(e.context(), input, output, opts, repair.WriteOptions{Force: force})
	end()
	if rep != nil {
		if code := writeReport(e, c, rep, reportFile, quiet, e.stdout); code != exitOK {
			return code
		}
	}
	switch {
	case err == nil:
		return exitOK
	case quiet:
		return exitFail
	case errors.Is(err, repair.ErrOutputHasPool):
		e.fail(c, err)
		fmt.Fprintln(e.stderr, "(use -f to overwrite it)")
		return exitFail
	}
	return e.fail(c, err)
}

// writeReport prints rep on w (unless quiet) and writes it to file as
// JSON (if file is not "").
func writeReport(e *env, c *command, rep *repair.Report, file string, quiet bool, w io.Writer) int {
	if !quiet {
		if err := rep.WriteText(w); err != nil {
			return e.fail(c, err)
		}
	}
	if file == "" {
		return exitOK
	}
	js, err := rep.JSON()
	if err != nil {
		return e.fail(c, err)
	}
	if err := os.WriteFile(file, append(js, '\n'), 0o644); err != nil {
		return e.fail(c, err)
	}
	return exitOK
}
