package repair

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/thinmeta/thinmeta/internal/devfile"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/transaction"
)

// ErrNotAutoRepairable means the check found damage that AutoRepair
// cannot fix without losing or changing a mapping; nothing was written.
// Such a pool needs Repair into a new device.
var ErrNotAutoRepairable = errors.New("damage that auto-repair cannot fix without losing a mapping (repair it into a new device with thinmeta repair)")

// AutoReport says what AutoRepair found and did.
type AutoReport struct {
	// Findings are every finding of the check before the repair.
	Findings []check.Finding `json:"-"`
	// Fixes describe each change made (or, when Refused is not empty,
	// each change that would have been made).
	Fixes []string `json:"fixes,omitempty"`
	// Refused are the findings that cannot be fixed in place; if there
	// are any, nothing was written.
	Refused []string `json:"refused,omitempty"`
	// Written says the fixes were committed.
	Written bool `json:"written"`
}

// AutoRepair checks the pool on dev (size bytes) and fixes in place, in
// one commit through the transaction manager, what can be fixed without
// losing or changing a mapping (docs/REPAIR.md §8): reference counts of
// either space map that differ from the references found (leaked or too
// low), a device's mapped_blocks that differs from its tree, and the
// needs_check flag, cleared once nothing else is wrong. It writes only if
// every finding is of those kinds; otherwise it returns the report with
// Refused set and ErrNotAutoRepairable, and dev is untouched. A clean pool
// without needs_check is left as it is. A crash during the commit leaves
// the old pool or the repaired one. Once ctx is done it stops with ctx's
// error, and writes nothing unless the commit had begun.
func AutoRepair(ctx context.Context, dev transaction.Device, size int64) (*AutoReport, error) {
	rep := &AutoReport{}
	var sum check.Summary
	type count struct {
		data   bool
		block  uint64
		ce     *check.CountError
		device uint64
	}
	var counts []count
	mapped := map[uint64]uint64{}
	collect := func(f check.Finding) {
		rep.Findings = append(rep.Findings, f)
		var ce *check.CountError
		var me *check.MappedBlocksError
		switch {
		case errors.As(f.Err, &ce) && (f.Area == "metadata space map" || f.Area == "data space map"):
			counts = append(counts, count{data: f.Area == "data space map", block: ce.Block, ce: ce})
		case errors.As(f.Err, &me) && f.Area == "mapping tree" && f.HasDevice:
			mapped[f.Device] = me.Found
		default:
			rep.Refused = append(rep.Refused, f.String())
		}
	}
	m, err := thin.NewMetadata(dev, size, &thin.WriteOptions{Force: true, Verify: func(p *thin.Pool) error {
		var err error
		if sum, err = check.Pool(ctx, p, check.Options{}, collect); err != nil {
			return err
		}
		low := map[uint64]bool{}
		for _, c := range counts {
			if c.data && c.ce.Found > c.ce.Recorded && c.ce.Found > 1 {
				low[c.block] = true
			}
		}
		if len(low) > 0 && len(rep.Refused) == 0 {
			rep.Refused = append(rep.Refused, crossMapped(p, low)...)
		}
		return nil
	}})
	if err != nil && ctx.Err() != nil {
		return rep, ctx.Err()
	}
	if err != nil {
		// A superblock or space map that cannot be read is not repaired
		// in place.
		rep.Refused = append(rep.Refused, err.Error())
		return rep, fmt.Errorf("%w: %w", ErrNotAutoRepairable, err)
	}
	if len(rep.Refused) == 0 && len(counts) > 0 && !sum.SpaceMapsChecked {
		rep.Refused = append(rep.Refused, "the space maps could not be compared with the references")
	}
	for _, c := range counts {
		sm := "metadata"
		if c.data {
			sm = "data"
		}
		rep.Fixes = append(rep.Fixes, fmt.Sprintf("%s block %d: count %d set to %d, the references found", sm, c.block, c.ce.Recorded, c.ce.Found))
	}
	for _, id := range slices.Sorted(maps.Keys(mapped)) {
		rep.Fixes = append(rep.Fixes, fmt.Sprintf("thin device %d: mapped_blocks set to %d, the mappings in its tree", id, mapped[id]))
	}
	if len(rep.Refused) > 0 {
		return rep, ErrNotAutoRepairable
	}
	if m.NeedsCheck() {
		rep.Fixes = append(rep.Fixes, "needs_check flag cleared")
	}
	if len(rep.Fixes) == 0 {
		return rep, nil // clean: nothing to write
	}
	// Every count is set before anything is allocated: the allocator takes
	// only blocks free both now and at the last commit, so a block whose
	// count was too low is never handed out, and one whose count was too
	// high is freed only from the next transaction on.
	for _, c := range counts {
		sm := m.MetadataSpaceMap()
		if c.data {
			sm = m.DataSpaceMap()
		}
		if err := sm.SetCount(c.block, c.ce.Found); err != nil {
			m.Abort()
			return rep, err
		}
	}
	for id, n := range mapped {
		det, err := m.Details(id)
		if err == nil {
			det.MappedBlocks = n
			err = m.SetDetails(id, det)
		}
		if err != nil {
			m.Abort()
			return rep, err
		}
	}
	m.SetNeedsCheck(false)
	if err := ctx.Err(); err != nil {
		m.Abort()
		return rep, err
	}
	if err := m.Commit(); err != nil {
		return rep, err
	}
	rep.Written = true
	return rep, nil
}

// AutoRepairFile is AutoRepair on the metadata device or image file at
// path, opened for writing exclusively (a block device with O_EXCL, a file
// under an advisory lock), so nothing changes it between the check and
// the commit.
func AutoRepairFile(ctx context.Context, path string) (*AutoReport, error) {
	dev, size, err := devfile.OpenWrite(path, nil)
	if err != nil {
		return nil, err
	}
	rep, err := AutoRepair(ctx, dev, size)
	if cerr := dev.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", path, err)
	}
	return rep, err
}

// crossMapped returns why a data block whose count is too low cannot be
// given the count of its references: it is mapped through two different
// mappings (virtual block or time), which snapshots sharing it never do.
// A corrupted mapping in a sealed leaf looks like that; raising the count
// would make the block shared, and one volume would show another's data.
func crossMapped(p *thin.Pool, low map[uint64]bool) []string {
	type ref struct {
		dev uint64
		m   thin.Mapping
	}
	first := map[uint64]ref{}
	var why []string
	for dr, err := range p.DeviceRoots() {
		if err != nil {
			return append(why, err.Error())
		}
		for m, err := range p.Mappings(dr.ID, 0, math.MaxUint64) {
			if err != nil {
				return append(why, err.Error())
			}
			if !low[m.Block] {
				continue
			}
			f, ok := first[m.Block]
			if !ok {
				first[m.Block] = ref{dr.ID, m}
				continue
			}
			if f.m.VBlock != m.VBlock || f.m.Time != m.Time {
				why = append(why, fmt.Sprintf("data block %d is mapped by thin device %d (virtual block %d, time %d) and thin device %d (virtual block %d, time %d): a corrupted mapping, not sharing",
					m.Block, f.dev, f.m.VBlock, f.m.Time, dr.ID, m.VBlock, m.Time))
				delete(low, m.Block)
			}
		}
	}
	return why
}
