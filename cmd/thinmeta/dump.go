package main

import (
	"fmt"
	"strconv"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/repair"
)

var dumpCommand = &command{
	interruptible: true,
	name:          "dump",
	summary:       "write the metadata as thin_dump XML (or human-readable text)",
	usage: `Usage: thinmeta dump [options] METADATA

Write the pool described by METADATA (a metadata device or image file) to
standard output in the XML format of thin_dump, byte-identical to
thin_dump 0.9.0's output for the same metadata (or, with --compat 1.1, to
thin_dump 1.1.0's). The XML can be restored with thin_restore of either
generation (or thinmeta restore).

Options:
  -f, --format FORMAT   xml (default) or human_readable
      --compat VERSION  the thin-provisioning-tools generation whose
                        thin_dump output to reproduce byte for byte:
                        0.9 (the default) or 1.1. In 1.1's form runs of
                        leaves that several devices share are written
                        once, as <def name="N"> ... </def> before the
                        devices (N is the metadata block of the run's
                        first leaf), and each device refers to them as
                        <ref name="N"/>; the superblock has no flags
                        attribute unless needs_check is set (flags="1");
                        there is no newline after </superblock>; and the
                        human-readable form writes every mapping as a
                        range and shared runs as "def: N" and "ref: N".
                        Mappings are merged into ranges within a def or
                        between two refs only. Extended pools have no 1.1
                        form.
  -m, --metadata-snap[=BLOCK]
                        dump the metadata snapshot (held root) instead of
                        the live metadata; the device is opened shared, so
                        this works while the pool is active. With BLOCK
                        (-m=BLOCK or -mBLOCK), fail unless the snapshot is
                        held at that block, as thin_dump 0.9.0 does
                        (thin_dump 1.1.0 accepts any number and ignores it)
  -o, --output FILE     write to FILE instead of standard output
      --dev-id ID       dump only device ID (may be repeated); in 1.1's
                        form the shared runs are those among the devices
                        dumped
      --skip-mappings   dump devices without their mappings
      --repair          dump what "thinmeta repair" would write: the
                        metadata salvaged from damage (see "thinmeta
                        help repair"), byte-identical to the dump of the
                        repaired pool; the report goes to standard error
                        (not with -q). The three options below then are
                        thinmeta repair's: values for the salvage to
                        use, needed only where METADATA lost them
      --report FILE     with --repair, write the report to FILE as JSON
      --transaction-id N
                        write N as the superblock's transaction id
      --data-block-size SECTORS
                        write SECTORS as the data block size
      --nr-data-blocks N
                        write N as the number of data blocks
                        (these three are for metadata whose superblock is
                        wrong about them; with --compat 1.1 the
                        transaction id and number of data blocks written
                        are the larger of N and the superblock's, as
                        thin_dump 1.1.0 computes them, and with -m they
                        apply too, where 1.1.0 ignores them)
  -q, --quiet           print no message on standard error; only the exit
                        status tells whether the dump is complete
  -h, --help            show this help

A device listed in the mapping tree but missing from the device-details
tree is an error. Damaged metadata stops the dump with a message naming the
damaged block; what was written before the damage stays written (in 1.1's
form every device's leaves are listed first, so damage above the leaves
stops it before anything is written, as with thin_dump 1.1.0). Run
"thinmeta check" for a full report.

While dumping to a file or pipe, a progress line is shown on standard
error if it is a terminal (not with -q). SIGINT (Ctrl-C) stops the dump
within a moment; what was written stays written.

Exit status: 0 success, 1 damaged metadata or I/O error, 2 bad usage,
130 interrupted by SIGINT.
With --repair: 0 when something was salvaged (the report says what was
lost), 1 when METADATA holds nothing recognisable or on I/O error.
`,
}

func init() { dumpCommand.run = runDump }

type uintList []uint64

func (l *uintList) String() string { return fmt.Sprint(*l) }
func (l *uintList) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not a device id: %q", s)
	}
	*l = append(*l, v)
	return nil
}

// parseCompat reads a --compat value.
func parseCompat(s string) (dump.Compat, bool) {
	switch s {
	case "", "0.9", "0.9.0":
		return dump.Compat090, true
	case "1.1", "1.1.0":
		return dump.Compat110, true
	}
	return 0, false
}

func runDump(e *env, args []string) int {
	c := dumpCommand
	fs := e.flagSet(c)
	var format, output, compat string
	var skip, quiet bool
	var snap snapFlag
	var devs uintList
	ov := newOverrideFlags()
	stringFlag(fs, &format, "", "f", "format")
	stringFlag(fs, &output, "", "o", "output")
	stringFlag(fs, &compat, "", "compat")
	fs.Var(&snap, "m", "")
	fs.Var(&snap, "metadata-snap", "")
	boolFlag(fs, &skip, "", "skip-mappings")
	boolFlag(fs, &quiet, "", "q", "quiet")
	fs.Var(&devs, "dev-id", "")
	ov.register(fs)
	var salvage bool
	var reportFile string
	boolFlag(fs, &salvage, "", "repair")
	stringFlag(fs, &reportFile, "", "report")
	pos, code, ok := e.parse(c, fs, attachM(args))
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one METADATA argument")
	}
	opts := dump.Options{DevIDs: devs, SkipMappings: skip}
	opts.Overrides.TransactionID, opts.Overrides.DataBlockSize, opts.Overrides.NrDataBlocks = ov.values()
	switch format {
	case "", "xml":
	case "human_readable":
		opts.Format = dump.HumanReadable
	default:
		return e.usageError(c, "unknown format %q", format)
	}
	if opts.Compat, ok = parseCompat(compat); !ok {
		return e.usageError(c, "unknown --compat %q (0.9 or 1.1)", compat)
	}
	end := func() {} // erases the progress line, once there is one
	fail := func(err error) int {
		end()
		if quiet {
			return exitFail
		}
		return e.fail(c, err)
	}
	if reportFile != "" && !salvage {
		return e.usageError(c, "--report goes with --repair")
	}
	if salvage {
		if snap.on {
			return e.usageError(c, "--repair salvages the live metadata; not with -m")
		}
		var ropts repair.Options
		if bad := ov.validDataBlockSize(); bad != "" {
			return e.usageError(c, "%s", bad)
		}
		ropts.TransactionID, ropts.DataBlockSize, ropts.NrDataBlocks = ov.values()
		opts.Overrides = dump.Overrides{}
		return dumpRepair(e, c, pos[0], output, ropts, opts, reportFile, quiet)
	}
	p, err := openPool(pos[0], snap.on)
	if err != nil {
		return fail(err)
	}
	defer p.Close()
	view := p
	if snap.on {
		if view, err = snapshotView(p, snap); err != nil {
			return fail(err)
		}
	}
	opts.Progress, end = e.libraryProgress("dump", quiet || output == "" && e.stdoutIsTerminal())
	defer end()
	if output == "" {
		bw := guardOutput(e.stdout, view.Stale)
		if err := finishGuarded(bw, view.Stale, dump.Dump(e.context(), bw, view, opts)); err != nil {
			return fail(err)
		}
		return exitOK
	}
	f, err := createNotInput(output, pos[0])
	if err != nil {
		return fail(err)
	}
	bw := guardOutput(f, view.Stale)
	err = finishGuarded(bw, view.Stale, dump.Dump(e.context(), bw, view, opts))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	return exitOK
}

// dumpRepair is dump --repair: the salvaged metadata of path as XML.
func dumpRepair(e *env, c *command, path, output string, ropts repair.Options, opts dump.Options, reportFile string, quiet bool) int {
	fail := func(err error) int {
		if quiet {
			return exitFail
		}
		return e.fail(c, err)
	}
	in, err := thin.OpenImage(path, &thin.OpenOptions{Wait: waitLocks, Salvage: true})
	if err != nil {
		return fail(err)
	}
	defer in.Close()
	sv, err := repair.Salvage(e.context(), in, in.Size(), ropts)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", path, err))
	}
	if code := writeReport(e, c, sv.Report, reportFile, quiet, e.stderr); code != exitOK {
		return code
	}
	if output == "" {
		bw := guardOutput(e.stdout, in.Stale)
		if err := finishGuarded(bw, in.Stale, sv.WriteXML(e.context(), bw, opts)); err != nil {
			return fail(err)
		}
		return exitOK
	}
	f, err := createNotInput(output, path)
	if err != nil {
		return fail(err)
	}
	bw := guardOutput(f, in.Stale)
	err = finishGuarded(bw, in.Stale, sv.WriteXML(e.context(), bw, opts))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	return exitOK
}
