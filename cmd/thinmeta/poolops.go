package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/thinmeta/thinmeta/live"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/delta"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/ls"
)

var poolThin = &subcommand{
	name: "thin",
	usage: `Usage: thinmeta pool thin create POOL ID
       thinmeta pool thin delete POOL ID
       thinmeta pool thin activate POOL ID NAME SIZE
       thinmeta pool thin deactivate POOL NAME
       thinmeta pool thin list POOL

Manage the thin devices of an active pool.

  create      create thin ID, empty (the kernel's create_thin)
  delete      delete thin ID and free what only it maps; refused while a
              device of it is active
  activate    make thin ID available as device NAME of SIZE bytes (K, M, G,
              T suffixes; a multiple of 512): the pool stores no size, the
              device's table is the size. Prints the device node.
  deactivate  remove device NAME (it must be closed); its data stays
  list        list the active thin devices of the pool

Thin ids go up to 16777215 (the kernel's limit).

Exit status: 0 success, 1 failure (the reason is printed), 2 bad usage.
`,
	run: runPoolThin,
}

// poolThinActions are the synopses of "thinmeta pool thin", as its help
// shows them.
var poolThinActions = map[string]string{
	"create":     "create POOL ID",
	"delete":     "delete POOL ID",
	"activate":   "activate POOL ID NAME SIZE",
	"deactivate": "deactivate POOL NAME",
	"list":       "list POOL",
}

func runPoolThin(e *env, c *command, args []string) int {
	fs := e.flagSet(c)
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return e.usageError(c, "expected create, delete, activate, deactivate or list")
	}
	synopsis, known := poolThinActions[pos[0]]
	if !known {
		return e.usageError(c, "unknown action %q", pos[0])
	}
	if least, most := synopsisArity(synopsis); len(pos)-1 < least || len(pos)-1 > most {
		return e.synopsisError(c, synopsis)
	}
	var id, size uint64
	var err error
	switch pos[0] {
	case "create", "delete", "activate":
		if id, err = uintArg("thin id", pos[2]); err != nil {
			return e.usageError(c, "%v", err)
		}
		if id > live.MaxThinID {
			return e.usageError(c, "thin id %d: %v", id, live.ErrBadID)
		}
	}
	if pos[0] == "activate" {
		if size, err = parseSize(pos[4]); err != nil || size == 0 || size%512 != 0 {
			return e.usageError(c, "size %q: a positive number of bytes, a multiple of 512", pos[4])
		}
	}
	ctl, p, code := e.openLivePool(c, pos[1], false)
	if p == nil {
		return code
	}
	defer ctl.Close()
	switch pos[0] {
	case "create":
		err = p.CreateThin(id)
	case "delete":
		err = p.DeleteThin(id)
	case "activate":
		var t *live.Thin
		if t, err = p.ActivateThin(pos[3], id, size/512); err == nil {
			var node string
			if node, err = t.Path(); err == nil {
				fmt.Fprintln(e.stdout, node)
			}
		}
	case "deactivate":
		var t *live.Thin
		if t, err = p.Thin(pos[2]); err == nil {
			err = t.Deactivate()
		}
	case "list":
		var ts []live.Thin
		if ts, err = p.Thins(); err == nil {
			fmt.Fprintf(e.stdout, "%-24s %-9s %9s %14s\n", "NAME", "DEVICE", "ID", "SECTORS")
			for _, t := range ts {
				fmt.Fprintf(e.stdout, "%-24s %-9s %9d %14d\n", t.Name, t.Info.DevString(), t.ID, t.Sectors)
			}
		}
	}
	if err != nil {
		return e.fail(c, err)
	}
	return exitOK
}

var poolSnap = &subcommand{
	name: "snap",
	usage: `Usage: thinmeta pool snap [--skip-lockfs] POOL ID ORIGIN

Create thin ID as a snapshot of thin ORIGIN. If ORIGIN is active, every
device of the pool that maps it is suspended — a file system on it frozen
first — around the kernel's create_snap, and resumed on every path, as the
kernel requires; nothing else happens in between. SIGINT and SIGTERM are
held off until the origin is resumed, then take effect. If thinmeta is
killed inside that window anyway (SIGKILL), the origin stays suspended and
its I/O waits: "thinmeta pool recover POOL" (or any later pool command)
resumes it.

Options:
      --skip-lockfs   do not freeze a file system on the origin
  -h, --help          show this help

Exit status: 0 the snapshot exists, 1 it was refused (the reason is printed;
the origin is resumed), 2 bad usage.
`,
	run: runPoolSnap,
}

func runPoolSnap(e *env, c *command, args []string) int {
	fs := e.flagSet(c)
	var skip bool
	boolFlag(fs, &skip, "", "skip-lockfs")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 3 {
		return e.usageError(c, "expected POOL ID ORIGIN")
	}
	id, err := uintArg("thin id", pos[1])
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	origin, err := uintArg("origin id", pos[2])
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	if id > live.MaxThinID || origin > live.MaxThinID {
		return e.usageError(c, "%v", live.ErrBadID)
	}
	ctl, p, code := e.openLivePool(c, pos[0], false)
	if p == nil {
		return code
	}
	defer ctl.Close()
	if err := p.Snapshot(id, origin, &live.SnapshotOptions{SkipLockfs: skip}); err != nil {
		return e.fail(c, err)
	}
	return exitOK
}

var poolSetTransactionID = &subcommand{
	name: "set-transaction-id",
	usage: `Usage: thinmeta pool set-transaction-id POOL CURRENT NEW

Set the pool's transaction id to NEW if it is CURRENT (a compare-and-swap:
the kernel refuses any other current id, so two managers cannot both
think they made the same change). The id is for the caller's bookkeeping;
the kernel does not change it by itself.

Exit status: 0 set, 1 refused (the pool's id is printed), 2 bad usage.
`,
	run: runPoolSetTransactionID,
}

func runPoolSetTransactionID(e *env, c *command, args []string) int {
	fs := e.flagSet(c)
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 3 {
		return e.usageError(c, "expected POOL CURRENT NEW")
	}
	cur, err := uintArg("current id", pos[1])
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	next, err := uintArg("new id", pos[2])
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	ctl, p, code := e.openLivePool(c, pos[0], false)
	if p == nil {
		return code
	}
	defer ctl.Close()
	if err := p.SetTransactionID(cur, next); err != nil {
		return e.fail(c, err)
	}
	return exitOK
}

var poolRecover = &subcommand{
	name: "recover",
	usage: `Usage: thinmeta pool recover POOL

Resume the pool if it is suspended, then every suspended thin device of the
pool, and print their names: what a manager killed between the suspend and
the resume of a snapshot (or of a resize) leaves behind, with every
process that uses those devices hanging. Every other "thinmeta pool"
command does this too when it opens the pool.

Exit status: 0 success (nothing needed resuming, or all was resumed), 1
failure, 2 bad usage.
`,
	run: runPoolRecover,
}

func runPoolRecover(e *env, c *command, args []string) int {
	fs := e.flagSet(c)
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one POOL argument")
	}
	ctl, p, code := e.openLivePool(c, pos[0], true)
	if p == nil {
		return code
	}
	defer ctl.Close()
	done, err := p.Recover()
	for _, d := range done {
		fmt.Fprintf(e.stdout, "resumed %s\n", d)
	}
	if err != nil {
		return e.fail(c, err)
	}
	return exitOK
}

var poolRead = &subcommand{
	name: "read",
	usage: `Usage: thinmeta pool read [--held | --release-stale] POOL dump [-f FORMAT] [--dev-id ID]... [--skip-mappings] [-o FILE]
       thinmeta pool read [--held | --release-stale] POOL ls [-o FIELDS] [--no-headers]
       thinmeta pool read [--held | --release-stale] POOL delta --thin1 A --thin2 B [--verbose]
       thinmeta pool read --release POOL

Read the metadata of an active pool: a metadata snapshot is reserved, read
(as "thinmeta dump", "ls" or "delta" read an offline pool, with the same
options and output), and released. The live metadata of an active pool
changes under any reader, so only its snapshot can be read; the device is
read with O_DIRECT, since the kernel's writes bypass the page cache and
cached blocks could be stale.

Only one metadata snapshot can be held. One left by a reader that crashed
(the status shows its block as the held root) makes a new reserve fail:
  --held            read that snapshot as it is (nothing reserved or
                    released)
  --release-stale   release it first, then read a new one
  --release         only release it

Exit status: 0 success, 1 failure (the reason is printed), 2 bad usage.
`,
	run: runPoolRead,
}

func runPoolRead(e *env, c *command, args []string) int {
	// Options before POOL are read's; after the tool's name they are the
	// tool's.
	fs := e.flagSet(c)
	var held, stale, release bool
	boolFlag(fs, &held, "", "held")
	boolFlag(fs, &stale, "", "release-stale")
	boolFlag(fs, &release, "", "release")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, c.usage)
			return exitOK
		}
		return e.usageError(c, "%v", err)
	}
	pos := fs.Args()
	if n := btoi(held) + btoi(stale) + btoi(release); n > 1 {
		return e.usageError(c, "--held, --release-stale and --release exclude each other")
	}
	if release {
		if len(pos) != 1 {
			return e.usageError(c, "--release takes POOL only")
		}
	} else if len(pos) < 2 {
		return e.usageError(c, "expected POOL and dump, ls or delta")
	}
	var tool func(*thin.Pool) error
	var inputs []string // what an output must not be: the pool's devices
	if !release {
		var code int
		if tool, code = e.readTool(c, pos[1], pos[2:], &inputs); tool == nil {
			return code
		}
	}
	ctl, p, code := e.openLivePool(c, pos[0], false)
	if p == nil {
		return code
	}
	defer ctl.Close()
	inputs = []string{p.MetadataPath(), p.DataPath(), "/dev/mapper/" + p.Name()}
	var err error
	switch {
	case release:
		err = p.ReleaseMetadataSnapshot()
	case held:
		err = p.ReadHeld(tool)
	default:
		err = p.Read(&live.ReadOptions{ReleaseStale: stale}, tool)
	}
	if err != nil {
		return e.fail(c, err)
	}
	return exitOK
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// readTool parses a read tool's options and returns what it does with the
// snapshot view (nil and an exit code on bad usage). An output file it
// writes is refused if it is one of *inputs (thin.ErrSameFile): the
// pool's metadata or data device.
func (e *env) readTool(c *command, name string, args []string, inputs *[]string) (func(*thin.Pool) error, int) {
	tc := &command{name: c.name + " " + name, usage: c.usage}
	fs := e.flagSet(tc)
	switch name {
	case "dump":
		var format, output string
		var skip bool
		var devs uintList
		stringFlag(fs, &format, "", "f", "format")
		stringFlag(fs, &output, "", "o", "output")
		boolFlag(fs, &skip, "", "skip-mappings")
		fs.Var(&devs, "dev-id", "")
		pos, code, ok := e.parse(tc, fs, args)
		if !ok {
			return nil, code
		}
		if len(pos) != 0 {
			return nil, e.usageError(tc, "unexpected arguments %q", pos)
		}
		opts := dump.Options{DevIDs: devs, SkipMappings: skip}
		switch format {
		case "", "xml":
		case "human_readable":
			opts.Format = dump.HumanReadable
		default:
			return nil, e.usageError(tc, "unknown format %q", format)
		}
		return func(p *thin.Pool) error {
			var w io.Writer = e.stdout
			if output != "" {
				f, err := createNotInput(output, *inputs...)
				if err != nil {
					return err
				}
				defer f.Close()
				bw := bufio.NewWriter(f)
				defer bw.Flush()
				w = bw
			}
			return dump.Dump(e.context(), w, p, opts)
		}, exitOK
	case "ls":
		fields := &fieldsFlag{fields: ls.DefaultFields}
		var noHeaders bool
		fs.Var(fields, "o", "")
		fs.Var(fields, "format", "")
		boolFlag(fs, &noHeaders, "", "no-headers")
		pos, code, ok := e.parse(tc, fs, args)
		if !ok {
			return nil, code
		}
		if len(pos) != 0 {
			return nil, e.usageError(tc, "unexpected arguments %q", pos)
		}
		return func(p *thin.Pool) error {
			rep, err := ls.List(e.context(), p, ls.Options{Exclusive: slices.ContainsFunc(fields.fields, ls.Field.NeedsExclusive)})
			if err != nil {
				return err
			}
			w := bufio.NewWriter(e.stdout)
			if err := rep.Format(w, fields.fields, !noHeaders); err != nil {
				return err
			}
			return w.Flush()
		}, exitOK
	case "delta":
		var left, right idFlag
		var verbose bool
		fs.Var(&left, "thin1", "")
		fs.Var(&left, "snap1", "")
		fs.Var(&right, "thin2", "")
		fs.Var(&right, "snap2", "")
		boolFlag(fs, &verbose, "", "verbose")
		pos, code, ok := e.parse(tc, fs, args)
		if !ok {
			return nil, code
		}
		if len(pos) != 0 {
			return nil, e.usageError(tc, "unexpected arguments %q", pos)
		}
		if !left.set || !right.set {
			return nil, e.usageError(tc, "--thin1 and --thin2 are required")
		}
		return func(p *thin.Pool) error {
			d, err := delta.Compare(e.context(), p, left.v, right.v)
			if err != nil {
				return err
			}
			return d.WriteXML(e.stdout, verbose)
		}, exitOK
	}
	return nil, e.usageError(c, "unknown read tool %q (dump, ls or delta)", name)
}

var poolWait = &subcommand{
	name: "wait",
	usage: `Usage: thinmeta pool wait [--timeout DURATION] POOL

Wait until the pool's free data blocks fall to its low water mark (or it
runs out of data space), then print the status's data line and exit: the
moment to grow the data device and run "thinmeta pool grow". It waits for
the pool's device-mapper events, so it costs nothing while it waits. The
kernel raises the low water event once per resume of the pool; growing the
pool re-arms it.

Options:
      --timeout DURATION   give up after DURATION (such as 90s or 10m)
  -h, --help               show this help

Exit status: 0 the low water mark is reached, 1 timeout or failure, 2 bad
usage.
`,
	run: runPoolWait,
}

func runPoolWait(e *env, c *command, args []string) int {
	fs := e.flagSet(c)
	var timeout time.Duration
	fs.DurationVar(&timeout, "timeout", 0, "")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one POOL argument")
	}
	ctl, p, code := e.openLivePool(c, pos[0], false)
	if p == nil {
		return code
	}
	defer ctl.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	s, err := p.WaitLowWater(ctx)
	if err != nil {
		return e.fail(c, err)
	}
	fmt.Fprintf(e.stdout, "data %d / %d blocks used, %d free (low water %d), mode %s\n", s.UsedDataBlocks,
		s.TotalDataBlocks, s.FreeDataBlocks(), p.Table().LowWater, s.Mode)
	return exitOK
}

var poolGrow = &subcommand{
	name: "grow",
	usage: `Usage: thinmeta pool grow --data-blocks N POOL
       thinmeta pool grow --metadata POOL

Grow an active pool after its device has grown (the data or metadata
device itself is grown by whoever provides it: LVM, a partition, a dm
linear device reloaded larger, a loop file).

  --data-blocks N   make the pool N data blocks large: its table is
                    reloaded with the new length and it is resumed; writes
                    waiting for space proceed
  --metadata        make the pool use all of its metadata device (up to
                    the 16 GiB the kernel uses)

Both resume the pool without flushing, since a pool out of data space holds
writes that only the growth lets finish.

Exit status: 0 grown, 1 refused (the reason is printed), 2 bad usage.
`,
	run: runPoolGrow,
}

func runPoolGrow(e *env, c *command, args []string) int {
	fs := e.flagSet(c)
	var blocks uintFlag
	var meta bool
	fs.Var(&blocks, "data-blocks", "")
	boolFlag(fs, &meta, "", "metadata")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one POOL argument")
	}
	if blocks.set == meta {
		return e.usageError(c, "give either --data-blocks N or --metadata")
	}
	ctl, p, code := e.openLivePool(c, pos[0], false)
	if p == nil {
		return code
	}
	defer ctl.Close()
	var err error
	if meta {
		err = p.GrowMetadata()
	} else {
		err = p.GrowData(blocks.v)
	}
	if err != nil {
		return e.fail(c, err)
	}
	return exitOK
}
