package main

import (
	"fmt"

	"github.com/thinmeta/thinmeta/thin/rmap"
)

var rmapCommand = &command{
	interruptible: true,
	name:          "rmap",
	summary:       "map data blocks back to thin devices (as thin_rmap)",
	usage: `Usage: thinmeta rmap --region BEGIN..END [--region BEGIN..END ...] METADATA

Print which thin devices, and which of their virtual blocks, map the given
regions of the data device of the pool described by METADATA (a metadata
device, an image file or a packed image). The output is byte-identical to
thin_rmap 0.9.0's: one line per run of consecutive virtual blocks of one
device mapped to consecutive data blocks inside the regions,

  data B..E -> thin(DEV) T..U

meaning data blocks B to E-1 are mapped by virtual blocks T to U-1 of
device DEV, in order of B (lines with equal B in thin_rmap's order).

As thin_rmap does, the live mapping tree is walked once, devices in id
order, and each tree node is visited once: blocks that a snapshot maps
through nodes it still shares with an earlier device are reported under the
earlier device only.

Options:
      --region BEGIN..END   a range of data blocks, END one past the last;
                            for example 5..45 is blocks 5 to 44. Give it
                            once or more; regions may overlap
  -h, --help                show this help

Damaged metadata stops the command with a message naming the damaged block
and prints nothing on standard output; run "thinmeta check" for a full
report.

thin_rmap of thin-provisioning-tools 1.1.0 prints the same lines in
another order where several begin at the same data block: by their end,
then by device id, then by virtual block.

SIGINT (Ctrl-C) stops the walk within a moment, printing nothing.

Exit status: 0 success, 1 damaged metadata or I/O error, 2 bad usage,
130 interrupted by SIGINT.
`,
}

func init() { rmapCommand.run = runRmap }

// regionsFlag collects --region values.
type regionsFlag []rmap.Region

func (r *regionsFlag) String() string { return fmt.Sprint(*r) }

func (r *regionsFlag) Set(s string) error {
	reg, err := rmap.ParseRegion(s)
	if err != nil {
		return err
	}
	*r = append(*r, reg)
	return nil
}

func runRmap(e *env, args []string) int {
	c := rmapCommand
	fs := e.flagSet(c)
	var regions regionsFlag
	fs.Var(&regions, "region", "")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one METADATA argument")
	}
	if len(regions) == 0 {
		return e.usageError(c, "no regions given (use --region BEGIN..END)")
	}
	p, err := openPool(pos[0], false)
	if err != nil {
		return e.fail(c, err)
	}
	defer p.Close()
	err = rmap.WriteMap(e.context(), e.stdout, p, regions)
	if err = preferStale(p.Stale, err); err != nil {
		return e.fail(c, err)
	}
	return exitOK
}
