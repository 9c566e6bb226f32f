package main

import (
	"errors"
	"fmt"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/repair"
)

var checkCommand = &command{
	interruptible: true,
	name:          "check",
	summary:       "check the metadata for consistency (as thin_check)",
	usage: `Usage: thinmeta check [options] METADATA

Check the dm-thin metadata in METADATA (a metadata device or image file)
for consistency, as thin_check does: the superblock; every B-tree node
(checksum, location, header, key order, key ranges, population); that the
device-details tree and the mapping tree list the same devices; that each
device's mapped_blocks equals the mappings in its tree; that no mapping
points beyond the data device; and that the reference counts kept by the
metadata and data space maps equal the references that exist.

Findings are printed on standard error, one per line, naming the structure,
the thin device and the metadata block concerned. Leaked blocks (counted
but unreferenced) and under-populated nodes are non-fatal: the kernel can
use such metadata, but the check still fails unless
--ignore-non-fatal-errors is given. Everything else is fatal. The metadata
is never written.

A block in use whose count is higher than its references is a leak too,
non-fatal, as thin_check 0.9.0 has it: the kernel never allocates a block
whose count is not zero, so the extra count can only keep the block from
being freed, never give it a second owner. thin_check 1.1.0 calls it fatal
(it takes only a count of 1 on an unreferenced block for a leak), so LVM
with thin-provisioning-tools 1.x will not activate such a pool, and 1.1.0's
--auto-repair does not fix it; thinmeta check --auto-repair does (so does
"thinmeta dump" piped into "thinmeta restore"). docs/CHECK.md gives the
kernel's reasons and every class of finding on which the two generations
of thin_check disagree.

thinmeta check is stricter than thin_check 0.9.0, which does not compare
mapped_blocks with the trees, does not check the data space map's counts,
accepts devices missing from one of the two trees and mappings beyond the
data device, ignores unknown incompatible features (which the kernel
refuses), only counts the blocks of the space-map trees and of the metadata
snapshot without checking their structure, does not re-check a shared
node reached from a second parent, and ignores the bits of a B-tree node's
flags word other than the internal and leaf bits. thinmeta, like every
reader in it, refuses a node whose flags are not exactly one of the two:
thin_check 1.1.0 refuses such a leaf (it reads it as an internal node) but
passes such an internal node. Extended pools (see "thinmeta help
blob") are checked too: their blob index and counters.

Options:
  -q, --quiet                  print nothing; only the exit status tells
  -m, --metadata-snap          check the metadata snapshot (held root)
                               instead of the live metadata; the device is
                               opened shared so this works on a live pool
      --super-block-only       check only the superblock
      --skip-mappings          check the superblock, the device details and
                               the top level of the mapping tree only
      --ignore-non-fatal-errors
                               succeed despite non-fatal findings
      --override-mapping-root BLOCK
                               check the mapping tree rooted at BLOCK instead
                               of the superblock's (to test a root found
                               elsewhere, such as an older copy)
      --override-details-root BLOCK
                               likewise for the device-details tree. With
                               either, the space maps are compared with the
                               references of the trees checked, so blocks
                               of the superblock's own trees show as leaked.
                               Not with -m (thin_check 1.1.0 accepts -m and
                               then ignores them) nor with
                               --clear-needs-check-flag
      --clear-needs-check-flag
                               if the check is clean (no findings at all),
                               clear the superblock's needs_check flag so
                               the kernel will use the pool read-write
                               again; this is the only case in which check
                               writes
      --auto-repair            fix in place what can be fixed without
                               losing or changing a mapping, in one atomic
                               commit: reference counts of either space map
                               that differ from the references found (leaked
                               blocks, counts too low), a device's
                               mapped_blocks that differs from its tree, and
                               a needs_check flag once nothing else is
                               wrong. The findings are printed, then each
                               fix ("auto-repair: ..."), and the pool is
                               checked again. If any finding is of another
                               kind (a damaged node, a device missing from a
                               tree, a damaged metadata snapshot, ...)
                               nothing is written and the findings that
                               refused it are named: such metadata needs
                               "thinmeta repair" into a new device. A crash
                               during the commit leaves the pool as it was
                               or repaired. thin_check 1.1.0's
                               --auto-repair fixes leaks only
  -h, --help                   show this help

Standard output gets two lines, as from thin_check:
  TRANSACTION_ID=<transaction id of the superblock>
  METADATA_FREE_BLOCKS=<free blocks of the metadata space map>
(thin_check 0.9.0 prints the device's blocks minus one there; thinmeta
prints nr_blocks - nr_allocated of the metadata space map, as 1.x does.)

While checking, a progress line is shown on standard error if it is a
terminal (not with -q). SIGINT (Ctrl-C) stops the check within a moment.

Exit status: 0 the metadata is consistent (with --auto-repair: is
consistent once repaired), 1 findings (or the metadata could not be read;
with --auto-repair: findings it cannot fix, nothing written), 2 bad usage,
130 interrupted by SIGINT.
`,
}

func init() { checkCommand.run = runCheck }

// maxPrinted bounds the findings printed per area; the rest are counted.
const maxPrinted = 100

func runCheck(e *env, args []string) int {
	c := checkCommand
	fs := e.flagSet(c)
	var quiet, snap, sbOnly, skip, ignore, clearFlag bool
	boolFlag(fs, &quiet, "", "q", "quiet")
	boolFlag(fs, &snap, "", "m", "metadata-snap")
	boolFlag(fs, &sbOnly, "", "super-block-only")
	boolFlag(fs, &skip, "", "skip-mappings")
	boolFlag(fs, &ignore, "", "ignore-non-fatal-errors")
	boolFlag(fs, &clearFlag, "", "clear-needs-check-flag")
	var autoRepair bool
	boolFlag(fs, &autoRepair, "", "auto-repair")
	mroot, droot := optUint{bits: 64}, optUint{bits: 64}
	fs.Var(&mroot, "override-mapping-root", "")
	fs.Var(&droot, "override-details-root", "")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one METADATA argument")
	}
	if clearFlag && (snap || sbOnly || skip || ignore) {
		return e.usageError(c, "--clear-needs-check-flag needs a full check (no -m, --super-block-only, --skip-mappings or --ignore-non-fatal-errors)")
	}
	if (mroot.set || droot.set) && (clearFlag || snap) {
		return e.usageError(c, "--override-mapping-root and --override-details-root check the live metadata only, without --clear-needs-check-flag")
	}
	if autoRepair && (clearFlag || snap || sbOnly || skip || ignore || mroot.set || droot.set) {
		return e.usageError(c, "--auto-repair needs a full check of the live metadata (no other option but -q)")
	}
	if mroot.set && mroot.v == 0 || droot.set && droot.v == 0 {
		return e.usageError(c, "block 0 is the superblock, not a tree root")
	}
	opts := check.Options{MetadataSnap: snap, SuperblockOnly: sbOnly, SkipMappings: skip, IgnoreNonFatal: ignore,
		MappingRoot: mroot.v, DetailsRoot: droot.v}
	// The progress line is erased before anything else is printed (and
	// drawn again at the next report).
	var end func()
	opts.Progress, end = e.libraryProgress("check", quiet)
	defer end()
	printed := map[string]int{}
	// The library reports a finding only once it has seen that the
	// metadata is still what the check began on: one that a writer
	// ignoring the locks caused is no finding, and the check ends with
	// thin.ErrStale.
	report := func(fd check.Finding) {
		if quiet {
			return
		}
		end()
		printed[fd.Area]++
		if n := printed[fd.Area]; n <= maxPrinted {
			fmt.Fprintln(e.stderr, fd.String())
		} else if n == maxPrinted+1 {
			fmt.Fprintf(e.stderr, "%s: further findings not shown\n", fd.Area)
		}
	}
	if autoRepair {
		return runAutoRepair(e, c, pos[0], quiet, report)
	}
	var sum check.Summary
	var md *thin.Metadata
	if clearFlag {
		// Check under the writer's exclusive lock, so nothing changes
		// between the check and clearing the flag.
		var err error
		md, err = thin.OpenMetadata(pos[0], &thin.WriteOptions{Force: true, Wait: waitLocks, Verify: func(p *thin.Pool) error {
			var err error
			sum, err = check.Pool(e.context(), p, opts, report)
			return err
		}})
		end()
		if err != nil {
			if !quiet {
				e.fail(c, err)
			}
			return exitFail
		}
		defer md.Close()
	} else {
		in, err := openInput(pos[0], snap)
		if err != nil {
			if !quiet {
				e.fail(c, err)
			}
			return exitFail
		}
		defer in.Close()
		// The check reads block 0 again at its end: a pool that moved
		// during it gives thin.ErrStale.
		sum, err = check.Device(e.context(), in, in.Size(), opts, report)
		end()
		if errors.Is(err, thin.ErrStale) {
			err = fmt.Errorf("%s: %w", pos[0], err)
		}
		if err != nil {
			if !quiet {
				e.fail(c, err)
			}
			return exitFail
		}
	}
	end()
	if !quiet {
		if sum.Fatal == 0 || sum.TransactionID != 0 {
			fmt.Fprintf(e.stdout, "TRANSACTION_ID=%d\nMETADATA_FREE_BLOCKS=%d\n", sum.TransactionID, sum.MetadataFreeBlocks)
		}
		for area, n := range printed {
			if n > maxPrinted {
				fmt.Fprintf(e.stderr, "%s: %d findings in all\n", area, n)
			}
		}
		if sum.LeakedMetadata > 0 {
			fmt.Fprintf(e.stderr, "%d metadata blocks have leaked\n", sum.LeakedMetadata)
		}
		if sum.LeakedData > 0 {
			fmt.Fprintf(e.stderr, "%d data blocks have leaked\n", sum.LeakedData)
		}
	}
	if !sum.OK(ignore) {
		return exitFail
	}
	if md != nil && md.NeedsCheck() {
		md.SetNeedsCheck(false)
		if err := md.Commit(); err != nil {
			return e.fail(c, err)
		}
		if !quiet {
			fmt.Fprintln(e.stderr, "needs_check flag cleared")
		}
	}
	return exitOK
}

// runAutoRepair is check --auto-repair.
func runAutoRepair(e *env, c *command, path string, quiet bool, report func(check.Finding)) int {
	rep, err := repair.AutoRepairFile(e.context(), path)
	if rep != nil {
		for _, f := range rep.Findings {
			report(f)
		}
	}
	if errors.Is(err, repair.ErrNotAutoRepairable) {
		if !quiet {
			for _, r := range rep.Refused {
				fmt.Fprintf(e.stderr, "auto-repair refused by: %s\n", r)
			}
			fmt.Fprintln(e.stderr, "auto-repair: nothing written; this damage needs \"thinmeta repair\" into a new device")
		}
		return exitFail
	}
	if err != nil {
		if !quiet {
			e.fail(c, err)
		}
		return exitFail
	}
	if !quiet {
		for _, f := range rep.Fixes {
			fmt.Fprintf(e.stderr, "auto-repair: %s\n", f)
		}
		if !rep.Written {
			fmt.Fprintln(e.stderr, "auto-repair: nothing to repair")
		}
	}
	// Check again what was committed.
	in, err := openInput(path, false)
	if err != nil {
		if !quiet {
			e.fail(c, err)
		}
		return exitFail
	}
	defer in.Close()
	sum, err := check.Device(e.context(), in, in.Size(), check.Options{}, report)
	if err != nil {
		// Cancelled, or changed by another writer since the repair.
		if !quiet {
			e.fail(c, fmt.Errorf("%s: %w", path, err))
		}
		return exitFail
	}
	if !quiet {
		fmt.Fprintf(e.stdout, "TRANSACTION_ID=%d\nMETADATA_FREE_BLOCKS=%d\n", sum.TransactionID, sum.MetadataFreeBlocks)
	}
	if !sum.OK(false) {
		return exitFail
	}
	return exitOK
}
