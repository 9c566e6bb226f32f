package main

import (
	"bufio"
	"slices"
	"strings"

	"github.com/thinmeta/thinmeta/thin/ls"
)

var lsCommand = &command{
	interruptible: true,
	name:          "ls",
	summary:       "list thin devices with their sizes (as thin_ls)",
	usage: `Usage: thinmeta ls [options] METADATA

List the thin devices of the pool described by METADATA (a metadata device,
an image file or a packed image), one line per device in device-id order,
under a line of column headers. The output is byte-identical to thin_ls
0.9.0's for the same metadata and options: every value right-aligned in a
column as wide as its widest entry, each followed by one space.

Options:
  -o, --format FIELDS   the columns to print, a comma-separated list of the
                        field names below (default DEV,MAPPED,CREATE_TIME,
                        SNAP_TIME); an empty list prints nothing
      --no-headers      leave out the header line
  -m, --metadata-snap   list the metadata snapshot (held root) instead of
                        the live metadata; the device is opened shared, so
                        this works while the pool is active
  -h, --help            show this help

Fields:
  DEV                 thin device id
  MAPPED_BLOCKS       data blocks the device maps (as its details record)
  EXCLUSIVE_BLOCKS    mapped blocks that no other mapping in the pool, of
                      this or any other device, refers to
  SHARED_BLOCKS       MAPPED_BLOCKS less EXCLUSIVE_BLOCKS
  MAPPED_SECTORS, EXCLUSIVE_SECTORS, SHARED_SECTORS
                      the same, in 512-byte sectors
  MAPPED_BYTES, EXCLUSIVE_BYTES, SHARED_BYTES
                      the same, in bytes
  MAPPED, EXCLUSIVE, SHARED
                      the same, as a size with a binary unit (KiB, MiB,
                      GiB, ...), rounded as thin_ls rounds
  TRANSACTION         pool transaction id when the device was created
  CREATE_TIME         pool time when the device was created
  SNAP_TIME           pool time when the device was last snapshotted

The EXCLUSIVE and SHARED fields count references to every data block by
walking every device's mapping tree; the other fields read only the device
details. As with thin_ls, a device without a mapping tree then fails the
listing. Damaged metadata stops the listing with a message naming the
damaged block and prints nothing on standard output; run "thinmeta check"
for a full report.

thin_ls of thin-provisioning-tools 1.1.0 prints the same values in a
slightly different form: a MAPPED, EXCLUSIVE or SHARED size of at most
8192 bytes carries the unit "b" (0 is "0b"), which can widen its column.
It also refuses an empty field name (a trailing comma, -o ""), and it
walks every mapping tree whatever the fields, so damage there fails it
even for fields that need only the device details.

While counting exclusive blocks, a progress line is shown on standard
error if it is a terminal. SIGINT (Ctrl-C) stops the listing within a
moment, printing nothing.

Exit status: 0 success, 1 damaged metadata or I/O error, 2 bad usage,
130 interrupted by SIGINT.
`,
}

func init() { lsCommand.run = runLs }

// fieldsFlag is the value of -o: parsed when given, so a bad list is a
// usage error, and the last one given wins.
type fieldsFlag struct{ fields []ls.Field }

func (f *fieldsFlag) String() string {
	var names []string
	for _, x := range f.fields {
		names = append(names, x.String())
	}
	return strings.Join(names, ",")
}

func (f *fieldsFlag) Set(s string) error {
	fs, err := ls.ParseFields(s)
	if err != nil {
		return err
	}
	f.fields = fs
	return nil
}

func runLs(e *env, args []string) int {
	c := lsCommand
	fs := e.flagSet(c)
	fields := &fieldsFlag{fields: ls.DefaultFields}
	var snap, noHeaders bool
	fs.Var(fields, "o", "")
	fs.Var(fields, "format", "")
	boolFlag(fs, &snap, "", "m", "metadata-snap")
	boolFlag(fs, &noHeaders, "", "no-headers")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one METADATA argument")
	}
	p, err := openPool(pos[0], snap)
	if err != nil {
		return e.fail(c, err)
	}
	defer p.Close()
	view := p
	if snap {
		if view, err = p.MetadataSnapshot(); err != nil {
			return e.fail(c, preferStale(p.Stale, err))
		}
	}
	progress, end := e.libraryProgress("ls", false)
	rep, err := ls.List(e.context(), view, ls.Options{Exclusive: slices.ContainsFunc(fields.fields, ls.Field.NeedsExclusive), Progress: progress})
	end()
	if err = preferStale(view.Stale, err); err != nil {
		return e.fail(c, err)
	}
	w := bufio.NewWriter(e.stdout)
	if err := rep.Format(w, fields.fields, !noHeaders); err != nil {
		return e.fail(c, err)
	}
	if err := w.Flush(); err != nil {
		return e.fail(c, err)
	}
	return exitOK
}
