package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/thinmeta/thinmeta/dm"
	"github.com/thinmeta/thinmeta/live"
	"github.com/thinmeta/thinmeta/thin"
)

var poolCommand = &command{
	name:    "pool",
	summary: "run pools on the kernel: create, thins, safe snapshots, status, reads, growth",
	usage: `Usage: thinmeta pool SUBCOMMAND [options] ARGS

Drive dm-thin pools on the running kernel through device-mapper (the
ioctls of /dev/mapper/control; no dmsetup, no libdevmapper, no LVM). Needs
root (CAP_SYS_ADMIN). POOL is the device-mapper name of a pool device.

Subcommands:
  create     format a metadata device and activate a new pool on it
  activate   activate a pool on existing metadata (checked first)
  deactivate deactivate a pool (its metadata is committed)
  list       list the active pools
  status     print a pool's status and its active thins
  thin       create, delete, activate, deactivate, list thins
  snap       take a snapshot of a thin, active or not, safely
  set-transaction-id
             set the pool's transaction id if it has the expected one
  recover    resume a pool's devices left suspended by a crashed manager
  read       dump, ls or delta of an active pool (via a metadata snapshot)
  wait       wait until the pool's free data falls to its low water mark
  grow       grow the pool's data or metadata after its device has grown

Run "thinmeta pool SUBCOMMAND -h" for a subcommand's options. The model,
and what the kernel requires of each step, is in docs/LIVE.md.

Exit status: 0 success, 1 failure (the kernel refused, bad metadata, I/O
error; the reason is printed), 2 bad usage.
`,
}

func init() { poolCommand.run = runPool }

// subcommand is one "thinmeta pool" subcommand.
type subcommand struct {
	name  string
	usage string
	run   func(e *env, c *command, args []string) int
}

func poolSubcommands() []*subcommand {
	return []*subcommand{poolCreate, poolActivate, poolDeactivate, poolList, poolStatus, poolThin, poolSnap,
		poolSetTransactionID, poolRecover, poolRead, poolWait, poolGrow}
}

func runPool(e *env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, poolCommand.usage)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 1 {
			fmt.Fprint(e.stdout, poolCommand.usage)
			return exitOK
		}
		for _, s := range poolSubcommands() {
			if s.name == args[1] && len(args) == 2 {
				fmt.Fprint(e.stdout, s.usage)
				return exitOK
			}
		}
		fmt.Fprintf(e.stderr, "thinmeta pool: no help for %q: no such subcommand\n", strings.Join(args[1:], " "))
		fmt.Fprintf(e.stderr, "Run \"thinmeta help pool\" for the list.\n")
		return exitUsage
	}
	for _, s := range poolSubcommands() {
		if s.name == args[0] {
			c := &command{name: "pool " + s.name, usage: s.usage}
			return s.run(e, c, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "thinmeta pool: unknown subcommand %q\n", args[0])
	fmt.Fprintf(e.stderr, "Run \"thinmeta help pool\" for the list.\n")
	return exitUsage
}

// openControl opens the device-mapper control device.
var openControl = dm.Open

func (e *env) control(c *command) (*dm.Control, int) {
	ctl, err := openControl()
	if err != nil {
		return nil, e.fail(c, err)
	}
	return ctl, exitOK
}

// holdsPool reports whether the device at path holds pool metadata, and
// how many thins.
func holdsPool(path string) (int, bool) {
	d, err := live.OpenDevice(path, live.DeviceOptions{})
	if err != nil {
		return 0, false
	}
	defer d.Close()
	p, err := thin.NewPool(d, d.Size())
	if err != nil {
		return 0, false
	}
	n := 0
	for _, err := range p.Devices() {
		if err != nil {
			break
		}
		n++
	}
	return n, true
}

// uintArg parses a decimal argument.
func uintArg(what, s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not a number: %q", what, s)
	}
	return v, nil
}

// uintFlag is an option holding a number.
type uintFlag struct {
	v   uint64
	set bool
}

func (f *uintFlag) String() string { return strconv.FormatUint(f.v, 10) }
func (f *uintFlag) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not a number: %q", s)
	}
	f.v, f.set = v, true
	return nil
}

// poolDeviceFlags are the options create and activate share.
type poolDeviceFlags struct {
	meta, data, features, uuid string
	blockSize, lowWater        uintFlag
	dataBlocks                 uintFlag
	force                      bool
}

func (p *poolDeviceFlags) register(fs *flag.FlagSet) {
	stringFlag(fs, &p.meta, "", "metadata")
	stringFlag(fs, &p.data, "", "data")
	stringFlag(fs, &p.features, "", "features")
	stringFlag(fs, &p.uuid, "", "uuid")
	fs.Var(&p.blockSize, "block-size", "")
	fs.Var(&p.lowWater, "low-water", "")
	fs.Var(&p.dataBlocks, "data-blocks", "")
	boolFlag(fs, &p.force, "", "f", "force")
}

func (p *poolDeviceFlags) options(e *env, c *command) (live.CreateOptions, int) {
	if p.meta == "" || p.data == "" {
		return live.CreateOptions{}, e.usageError(c, "--metadata and --data are required")
	}
	if p.blockSize.v > 1<<32-1 {
		return live.CreateOptions{}, e.usageError(c, "data block size %d: %v", p.blockSize.v, live.ErrBlockSize)
	}
	f, err := live.ParseFeatures(p.features)
	if err != nil {
		return live.CreateOptions{}, e.usageError(c, "%v", err)
	}
	return live.CreateOptions{MetadataDevice: p.meta, DataDevice: p.data, BlockSize: uint32(p.blockSize.v),
		LowWater: p.lowWater.v, DataBlocks: p.dataBlocks.v, Features: f, UUID: p.uuid, Force: p.force}, exitOK
}

var poolCreate = &subcommand{
	name: "create",
	usage: `Usage: thinmeta pool create --metadata DEV --data DEV --block-size SECTORS [options] POOL

Format the metadata device DEV with thinmeta (everything it held is lost)
and activate a new pool named POOL on it and the data device. The pool is
empty: make thins with "thinmeta pool thin create".

Options:
      --metadata DEV        the metadata device (a block device)
      --data DEV            the data device (a block device)
      --block-size SECTORS  data block size in 512-byte sectors: a multiple of
                            128 from 128 (64 KiB) to 2097152 (1 GiB)
      --data-blocks N       pool size in data blocks (default: the whole data
                            device)
      --metadata-blocks N   metadata blocks to use (default: the whole device,
                            up to the 16 GiB the kernel uses)
      --low-water BLOCKS    low water mark in data blocks (default 0): the
                            pool raises an event when free data falls to it
                            ("thinmeta pool wait")
      --features LIST       pool features, comma-separated (at most four):
                            skip_block_zeroing, ignore_discard,
                            no_discard_passdown, read_only, error_if_no_space
      --uuid UUID           device-mapper uuid of the pool device
  -f, --force               format even though DEV holds pool metadata
  -h, --help                show this help

A metadata device that already holds a pool is refused unless --force, so
that a pool is not destroyed by a mistyped name; "thinmeta pool activate"
runs an existing pool. A size of 48 bytes of metadata per data block
(at least 2 MiB) is the kernel's rule of thumb.

Exit status: 0 active, 1 refused (the reason is printed; nothing is
active), 2 bad usage.
`,
	run: runPoolCreate,
}

func runPoolCreate(e *env, c *command, args []string) int {
	fs := e.flagSet(c)
	var p poolDeviceFlags
	var metaBlocks uintFlag
	p.register(fs)
	fs.Var(&metaBlocks, "metadata-blocks", "")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one POOL argument")
	}
	if !p.blockSize.set {
		return e.usageError(c, "--block-size is required")
	}
	opts, code := p.options(e, c)
	if code != exitOK {
		return code
	}
	opts.Format, opts.MetadataBlocks, opts.Force = true, metaBlocks.v, false
	if !p.force {
		if n, holds := holdsPool(p.meta); holds {
			return e.fail(c, fmt.Errorf("%s holds pool metadata (%d thins): use --force to format it, or \"thinmeta pool activate\" to run it", p.meta, n))
		}
	}
	ctl, code := e.control(c)
	if ctl == nil {
		return code
	}
	defer ctl.Close()
	pool, err := live.Create(ctl, pos[0], opts)
	if err != nil {
		return e.fail(c, err)
	}
	fmt.Fprintf(e.stdout, "pool %s active: %d data blocks of %d sectors\n", pool.Name(), pool.DataBlocks(), pool.Table().BlockSize)
	return exitOK
}

var poolActivate = &subcommand{
	name: "activate",
	usage: `Usage: thinmeta pool activate --metadata DEV --data DEV [options] POOL

Activate a pool named POOL on existing metadata: what "thinmeta pool create"
formatted, what a previous "thinmeta pool deactivate" left, or metadata
written offline (thinmeta restore, generate, message). Before the kernel is
asked, the metadata is checked as "thinmeta check" does; metadata the kernel
cannot run is refused with the reason: damaged metadata, needs_check set
(unless --force), the extended format (convert it first: "thinmeta convert
--to stock"), a block size other than the metadata's, or a data device
smaller than the metadata records.

Options:
      --metadata DEV        the metadata device
      --data DEV            the data device
      --block-size SECTORS  must equal the metadata's (default: the metadata's)
      --data-blocks N       pool size in data blocks (default: the whole data
                            device; at least what the metadata records — a
                            larger size grows the pool)
      --low-water BLOCKS    low water mark in data blocks
      --features LIST       pool features, as for create
      --uuid UUID           device-mapper uuid of the pool device
  -f, --force               activate even though needs_check is set (the
                            kernel keeps such a pool read-only)
      --superblock-only     check only the superblock, not the whole metadata
                            (for very large pools known to be sound)
  -h, --help                show this help

Exit status: 0 active, 1 refused (the reason is printed), 2 bad usage.
`,
	run: runPoolActivate,
}

func runPoolActivate(e *env, c *command, args []string) int {
	fs := e.flagSet(c)
	var p poolDeviceFlags
	var superOnly bool
	p.register(fs)
	boolFlag(fs, &superOnly, "", "superblock-only")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one POOL argument")
	}
	opts, code := p.options(e, c)
	if code != exitOK {
		return code
	}
	opts.SkipCheck = superOnly
	ctl, code := e.control(c)
	if ctl == nil {
		return code
	}
	defer ctl.Close()
	pool, err := live.Create(ctl, pos[0], opts)
	if err != nil {
		return e.fail(c, err)
	}
	fmt.Fprintf(e.stdout, "pool %s active: %d data blocks of %d sectors\n", pool.Name(), pool.DataBlocks(), pool.Table().BlockSize)
	return exitOK
}

// openLivePool attaches to an active pool (resuming what a crash left
// suspended, unless noRecover).
func (e *env) openLivePool(c *command, name string, noRecover bool) (*dm.Control, *live.Pool, int) {
	ctl, code := e.control(c)
	if ctl == nil {
		return nil, nil, code
	}
	p, err := live.Open(ctl, name, &live.OpenOptions{NoRecover: noRecover})
	if err != nil {
		ctl.Close()
		return nil, nil, e.fail(c, err)
	}
	for _, r := range p.Recovered {
		fmt.Fprintf(e.stderr, "thinmeta %s: resumed %s, left suspended (by a crashed manager?)\n", c.name, r)
	}
	return ctl, p, exitOK
}

var poolDeactivate = &subcommand{
	name: "deactivate",
	usage: `Usage: thinmeta pool deactivate [--thins] POOL

Deactivate the pool: its metadata is committed and the device removed; the
metadata and data devices can then be read offline or activated again.
Active thin devices of the pool are refused unless --thins deactivates them
first (each must be closed: unmount file systems on them).

Options:
      --thins    deactivate the pool's thin devices first
  -h, --help     show this help

Exit status: 0 deactivated, 1 failure (the reason is printed), 2 bad usage.
`,
	run: runPoolDeactivate,
}

func runPoolDeactivate(e *env, c *command, args []string) int {
	fs := e.flagSet(c)
	var thins bool
	boolFlag(fs, &thins, "", "thins")
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
	if thins {
		ts, err := p.Thins()
		if err != nil {
			return e.fail(c, err)
		}
		for _, t := range ts {
			if err := t.Deactivate(); err != nil {
				return e.fail(c, err)
			}
		}
	}
	if err := p.Deactivate(); err != nil {
		return e.fail(c, err)
	}
	return exitOK
}

var poolList = &subcommand{
	name: "list",
	usage: `Usage: thinmeta pool list

List the active thin pools: name, device number, data blocks, data block
size, and the number of active thin devices.

Exit status: 0 success, 1 failure, 2 bad usage.
`,
	run: runPoolList,
}

func runPoolList(e *env, c *command, args []string) int {
	fs := e.flagSet(c)
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return e.usageError(c, "no arguments expected")
	}
	ctl, code := e.control(c)
	if ctl == nil {
		return code
	}
	defer ctl.Close()
	devs, err := ctl.Devices()
	if err != nil {
		return e.fail(c, err)
	}
	fmt.Fprintf(e.stdout, "%-24s %-9s %12s %10s %5s\n", "POOL", "DEVICE", "DATA_BLOCKS", "BLOCK_SIZE", "THINS")
	for _, d := range devs {
		p, err := live.Open(ctl, d.Name, &live.OpenOptions{NoRecover: true})
		if err != nil {
			continue // not a pool
		}
		ts, err := p.Thins()
		if err != nil {
			return e.fail(c, err)
		}
		fmt.Fprintf(e.stdout, "%-24s %-9s %12d %10d %5d\n", p.Name(), dm.DevString(p.Dev()), p.DataBlocks(), p.Table().BlockSize, len(ts))
	}
	return exitOK
}

var poolStatus = &subcommand{
	name: "status",
	usage: `Usage: thinmeta pool status [--json] POOL

Print the pool's status as the kernel reports it (the thin-pool status line,
field by field) and its active thin devices with theirs.

  transaction id   the pool's transaction id (set-transaction-id)
  metadata         used / total metadata blocks (4 KiB), and the kernel's
                   metadata low water mark
  data             used / total data blocks, and the pool's low water mark
  held root        block of the metadata snapshot, "-" if none (one left by a
                   crashed reader blocks new ones: "thinmeta pool read")
  mode             rw, ro (read-only or out of metadata space),
                   out_of_data_space, or Fail
  discard          discard_passdown, no_discard_passdown or ignore_discard
  when full        queue_if_no_space or error_if_no_space
  needs_check      yes if the metadata must be checked before the pool can
                   be written again

Options:
      --json     print one JSON object instead
  -h, --help     show this help

Exit status: 0 success, 1 failure, 2 bad usage.
`,
	run: runPoolStatus,
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dashOr(v uint64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatUint(v, 10)
}

func runPoolStatus(e *env, c *command, args []string) int {
	fs := e.flagSet(c)
	var asJSON bool
	boolFlag(fs, &asJSON, "", "json")
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
	s, err := p.Status()
	if err != nil {
		return e.fail(c, err)
	}
	ts, err := p.Thins()
	if err != nil {
		return e.fail(c, err)
	}
	thinStatus := make([]live.ThinStatus, len(ts))
	for i := range ts {
		if thinStatus[i], err = ts[i].Status(); err != nil {
			return e.fail(c, err)
		}
	}
	if asJSON {
		return e.statusJSON(c, p, s, ts, thinStatus)
	}
	w := e.stdout
	t := p.Table()
	fmt.Fprintf(w, "pool            %s (%s)\n", p.Name(), dm.DevString(p.Dev()))
	if s.Mode == live.Failed {
		fmt.Fprintf(w, "mode            Fail (all I/O fails: deactivate, check and repair the metadata)\n")
		return exitOK
	}
	fmt.Fprintf(w, "transaction id  %d\n", s.TransactionID)
	fmt.Fprintf(w, "metadata        %d / %d blocks used (low water %d) on %s (%s)\n", s.UsedMetadataBlocks,
		s.TotalMetadataBlocks, s.MetadataLowWater, t.MetadataDev, p.MetadataPath())
	fmt.Fprintf(w, "data            %d / %d blocks of %d sectors used (low water %d) on %s (%s)\n", s.UsedDataBlocks,
		s.TotalDataBlocks, t.BlockSize, t.LowWater, t.DataDev, p.DataPath())
	fmt.Fprintf(w, "held root       %s\n", dashOr(s.HeldRoot))
	fmt.Fprintf(w, "mode            %s\n", s.Mode)
	fmt.Fprintf(w, "discard         %s\n", s.Discard)
	when := "queue_if_no_space"
	if s.ErrorIfNoSpace {
		when = "error_if_no_space"
	}
	fmt.Fprintf(w, "when full       %s\n", when)
	fmt.Fprintf(w, "needs_check     %s\n", yesNo(s.NeedsCheck))
	if len(s.Extra) > 0 {
		fmt.Fprintf(w, "more            %s\n", strings.Join(s.Extra, " "))
	}
	if len(ts) > 0 {
		fmt.Fprintf(w, "thin devices:\n")
		fmt.Fprintf(w, "  %-24s %9s %9s %14s %14s %16s\n", "NAME", "DEVICE", "ID", "SECTORS", "MAPPED", "HIGHEST")
		for i, th := range ts {
			hi := "-"
			if thinStatus[i].HasMapped {
				hi = strconv.FormatUint(thinStatus[i].HighestSector, 10)
			}
			fmt.Fprintf(w, "  %-24s %9s %9d %14d %14d %16s\n", th.Name, th.Info.DevString(), th.ID, th.Sectors,
				thinStatus[i].MappedSectors, hi)
		}
	}
	return exitOK
}

func (e *env) statusJSON(c *command, p *live.Pool, s live.PoolStatus, ts []live.Thin, st []live.ThinStatus) int {
	var b strings.Builder
	t := p.Table()
	fmt.Fprintf(&b, "{\"pool\":%q,\"device\":%q,\"mode\":%q", p.Name(), dm.DevString(p.Dev()), s.Mode.String())
	if s.Mode != live.Failed {
		fmt.Fprintf(&b, ",\"transaction_id\":%d,\"metadata_used\":%d,\"metadata_total\":%d,\"metadata_low_water\":%d",
			s.TransactionID, s.UsedMetadataBlocks, s.TotalMetadataBlocks, s.MetadataLowWater)
		fmt.Fprintf(&b, ",\"data_used\":%d,\"data_total\":%d,\"data_block_size\":%d,\"low_water\":%d,\"held_root\":%d",
			s.UsedDataBlocks, s.TotalDataBlocks, t.BlockSize, t.LowWater, s.HeldRoot)
		fmt.Fprintf(&b, ",\"discard\":%q,\"error_if_no_space\":%t,\"needs_check\":%t", s.Discard.String(), s.ErrorIfNoSpace, s.NeedsCheck)
	}
	fmt.Fprintf(&b, ",\"metadata_device\":%q,\"data_device\":%q,\"thins\":[", t.MetadataDev, t.DataDev)
	for i, th := range ts {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "{\"name\":%q,\"device\":%q,\"id\":%d,\"sectors\":%d,\"mapped_sectors\":%d", th.Name,
			th.Info.DevString(), th.ID, th.Sectors, st[i].MappedSectors)
		if st[i].HasMapped {
			fmt.Fprintf(&b, ",\"highest_sector\":%d", st[i].HighestSector)
		}
		b.WriteString("}")
	}
	b.WriteString("]}\n")
	_, err := io.WriteString(e.stdout, b.String())
	if err != nil {
		return e.fail(c, err)
	}
	return exitOK
}
