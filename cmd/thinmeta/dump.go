package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/thinmeta/thinmeta/thin/dump"
)

var dumpCommand = &command{
	name:    "dump",
	summary: "write the metadata as thin_dump XML (or human-readable text)",
	usage: `Usage: thinmeta dump [options] METADATA

Write the pool described by METADATA (a metadata device or image file) to
standard output in the XML format of thin_dump, byte-identical to
thin_dump 0.9.0's output for the same metadata. The XML can be restored with
thin_restore (or thinmeta restore).

Options:
  -f, --format FORMAT   xml (default) or human_readable
  -m, --metadata-snap   dump the metadata snapshot (held root) instead of the
                        live metadata; the device is opened shared, so this
                        works while the pool is active
  -o, --output FILE     write to FILE instead of standard output
      --dev-id ID       dump only device ID (may be repeated)
      --skip-mappings   dump devices without their mappings
  -h, --help            show this help

A device listed in the mapping tree but missing from the device-details
tree is an error. Damaged metadata stops the dump with a message naming the
damaged block; run "thinmeta check" for a full report.

Exit status: 0 success, 1 damaged metadata or I/O error, 2 bad usage.
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

func runDump(e *env, args []string) int {
	c := dumpCommand
	fs := e.flagSet(c)
	var format, output string
	var snap, skip bool
	var devs uintList
	stringFlag(fs, &format, "", "f", "format")
	stringFlag(fs, &output, "", "o", "output")
	boolFlag(fs, &snap, "", "m", "metadata-snap")
	boolFlag(fs, &skip, "", "skip-mappings")
	fs.Var(&devs, "dev-id", "")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one METADATA argument")
	}
	opts := dump.Options{DevIDs: devs, SkipMappings: skip}
	switch format {
	case "", "xml":
	case "human_readable":
		opts.Format = dump.HumanReadable
	default:
		return e.usageError(c, "unknown format %q", format)
	}
	p, err := openPool(pos[0], snap)
	if err != nil {
		return e.fail(c, err)
	}
	defer p.Close()
	view := p
	if snap {
		if view, err = p.MetadataSnapshot(); err != nil {
			return e.fail(c, err)
		}
	}
	var w io.Writer = e.stdout
	if output != "" {
		f, err := os.Create(output)
		if err != nil {
			return e.fail(c, err)
		}
		defer f.Close()
		bw := bufio.NewWriter(f)
		defer bw.Flush()
		w = bw
	}
	if err := dump.Dump(w, view, opts); err != nil {
		return e.fail(c, err)
	}
	return exitOK
}
