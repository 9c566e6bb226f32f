package main

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/delta"
)

var deltaCommand = &command{
	interruptible: true,
	name:          "delta",
	summary:       "compare the mappings of two thin devices (as thin_delta)",
	usage: `Usage: thinmeta delta [options] --thin1 ID|--root1 BLOCK --thin2 ID|--root2 BLOCK METADATA

Compare the mappings of two thin devices of the pool described by METADATA
(a metadata device, an image file or a packed image), typically an origin
and a snapshot of it, and print the differences as XML byte-identical to
thin_delta 0.9.0's output:

  <superblock uuid="" time=".." transaction=".." data_block_size=".."
              nr_data_blocks=".."[ metadata_snap=".."]>
    <diff left="ID1" right="ID2">
      <left_only begin="V" length="N"/>    mapped by the first device only
      <right_only begin="V" length="N"/>   mapped by the second only
      <different begin="V" length="N"/>   mapped by both, to other blocks
      <same begin="V" length="N"/>        mapped by both, to the same blocks
    </diff>
  </superblock>

(on one line each; V is the first virtual block). Adjacent ranges of one
kind are merged. With --verbose every range is printed with its data blocks,
as <range begin=".." data_begin=".." length=".."/> (or left_data_begin and
right_data_begin for different blocks), grouped in <left_only>,
<right_only>, <different> and <same> elements. Mapping times are ignored.
For a metadata snapshot nr_data_blocks is 0, as thin_delta prints it.

Options:
      --thin1, --snap1 ID    the first (left) device
      --thin2, --snap2 ID    the second (right) device
  -m, --metadata-snap[=BLOCK]
                             compare in the metadata snapshot (held root)
                             instead of the live metadata; with BLOCK, fail
                             unless the snapshot is at that block. The device
                             is opened shared, so this works while the pool
                             is active
      --root1 BLOCK          instead of --thin1: the device mapping tree
                             whose root is at metadata block BLOCK (an
                             older root, or one a repair scan found); the
                             diff element then says left_root="BLOCK"
      --root2 BLOCK          likewise instead of --thin2 (right_root)
      --verbose              print every range with its data blocks
  -h, --help                 show this help

A device missing from the mapping tree fails the command. Damaged metadata
stops it with a message naming the damaged block and prints nothing on
standard output; run "thinmeta check" for a full report.

thin_delta of thin-provisioning-tools 1.1.0 prints the same comparison in a
slightly different form: no metadata_snap attribute, flags="1" in the
superblock element when needs_check is set, and no newline after
</superblock>. Its --verbose output is wrong: it merges consecutive ranges
of one kind whenever their virtual blocks follow on, also when their data
blocks do not, so a merged range claims mappings that do not exist; use
thinmeta's (or 0.9.0's). It also refuses a pool whose mapping tree and
device-details tree list different devices, and takes no block number
after -m.

SIGINT (Ctrl-C) stops the comparison within a moment, printing nothing.

Exit status: 0 success, 1 damaged metadata, missing device or I/O error,
2 bad usage, 130 interrupted by SIGINT.
`,
}

func init() { deltaCommand.run = runDelta }

// parseID parses a device id or block number as thin_delta does: decimal
// digits with an optional sign, a negative number wrapping modulo 2^64.
func parseID(s string) (uint64, error) {
	neg := false
	d := s
	if len(d) > 0 && (d[0] == '+' || d[0] == '-') {
		neg, d = d[0] == '-', d[1:]
	}
	if d == "" || d[0] < '0' || d[0] > '9' {
		return 0, fmt.Errorf("not a number: %q", s)
	}
	v, err := strconv.ParseUint(d, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number: %q", s)
	}
	if neg {
		v = -v
	}
	return v, nil
}

// idFlag is an option holding one number, remembering whether it was set.
type idFlag struct {
	v   uint64
	set bool
}

func (f *idFlag) String() string {
	if !f.set {
		return ""
	}
	return strconv.FormatUint(f.v, 10)
}

func (f *idFlag) Set(s string) error {
	v, err := parseID(s)
	if err != nil {
		return err
	}
	f.v, f.set = v, true
	return nil
}

// snapFlag is -m/--metadata-snap with an optional block number.
type snapFlag struct {
	on    bool
	block idFlag
}

func (f *snapFlag) String() string   { return strconv.FormatBool(f.on) }
func (f *snapFlag) IsBoolFlag() bool { return true }

func (f *snapFlag) Set(s string) error {
	f.on = true
	if s == "true" {
		return nil
	}
	return f.block.Set(s)
}

// attachedM rewrites getopt's attached optional argument "-m123" as
// "-m=123", which the flag package understands.
var attachedM = regexp.MustCompile(`^-m([-+]?[0-9].*)$`)

// attachM returns args with every "-mN" written as "-m=N".
func attachM(args []string) []string {
	args = append([]string(nil), args...)
	for i, a := range args {
		if a == "--" {
			break
		}
		if m := attachedM.FindStringSubmatch(a); m != nil {
			args[i] = "-m=" + m[1]
		}
	}
	return args
}

// snapshotView returns p's metadata-snapshot view; with a block number
// given, it fails unless the snapshot is held at that block, as
// thin-provisioning-tools 0.9.0 does.
func snapshotView(p *thin.Pool, snap snapFlag) (*thin.Pool, error) {
	view, err := p.MetadataSnapshot()
	if err != nil {
		return nil, preferStale(p.Stale, err) // a snapshot released meanwhile
	}
	if held := p.LiveSuperblock().HeldRoot; snap.block.set && snap.block.v != held {
		return nil, fmt.Errorf("metadata snapshot is at block %d, not %d", held, snap.block.v)
	}
	return view, nil
}

func runDelta(e *env, args []string) int {
	c := deltaCommand
	fs := e.flagSet(c)
	var left, right, root1, root2 idFlag
	var snap snapFlag
	var verbose bool
	fs.Var(&left, "thin1", "")
	fs.Var(&left, "snap1", "")
	fs.Var(&right, "thin2", "")
	fs.Var(&right, "snap2", "")
	fs.Var(&root1, "root1", "")
	fs.Var(&root2, "root2", "")
	fs.Var(&snap, "m", "")
	fs.Var(&snap, "metadata-snap", "")
	boolFlag(fs, &verbose, "", "verbose")
	pos, code, ok := e.parse(c, fs, attachM(args))
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one METADATA argument")
	}
	var sides [2]delta.Tree
	for i, sd := range [2]struct {
		dev, root *idFlag
	}{{&left, &root1}, {&right, &root2}} {
		n := i + 1
		switch {
		case sd.dev.set && sd.root.set:
			return e.usageError(c, "--thin%d and --root%d both given", n, n)
		case sd.dev.set:
			sides[i] = delta.Device(sd.dev.v)
		case sd.root.set:
			if sd.root.v == 0 {
				return e.usageError(c, "--root%d 0: block 0 is the superblock", n)
			}
			sides[i] = delta.RootAt(sd.root.v)
		default:
			return e.usageError(c, "--thin%d (or --snap%d, --root%d) not given", n, n, n)
		}
	}
	p, err := openPool(pos[0], snap.on)
	if err != nil {
		return e.fail(c, err)
	}
	defer p.Close()
	view := p
	if snap.on {
		if view, err = snapshotView(p, snap); err != nil {
			return e.fail(c, err)
		}
	}
	d, err := delta.CompareTrees(e.context(), view, sides[0], sides[1])
	if err = preferStale(view.Stale, err); err != nil {
		return e.fail(c, err)
	}
	if err := d.WriteXML(e.stdout, verbose); err != nil {
		return e.fail(c, err)
	}
	return exitOK
}
