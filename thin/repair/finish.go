package repair

import (
	"fmt"
	"math"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// eachItem calls fn for every item of device d's tree, defs expanded;
// inDef is the def an item belongs to (nil for the device's own).
func eachItem(d *device, fn func(it *item, inDef *def)) {
	seen := make(map[*def]bool)
	var walk func(items []item, inDef *def)
	walk = func(items []item, inDef *def) {
		for i := range items {
			it := &items[i]
			if it.kind == itemShared {
				if !seen[it.def] {
					seen[it.def] = true
					walk(it.def.items, it.def)
				}
				continue
			}
			fn(it, inDef)
		}
	}
	walk(d.items, nil)
}

// users returns the devices an item belongs to.
func users(d *device, inDef *def) []*device {
	if inDef != nil {
		return inDef.devs
	}
	return []*device{d}
}

// fixLiveLeaves rewrites the usable leaves that map data blocks beyond the
// data device (dropping those mappings) or carry a time the pool has not
// reached (set to 0, so the kernel treats the block as shared and copies
// it rather than overwriting it), and notes the sorted leaves.
func (s *salvager) fixLiveLeaves() {
	buf := make([]byte, transaction.BlockSize)
	done := make(map[uint64]bool)
	for _, d := range s.devs {
		eachItem(d, func(it *item, inDef *def) {
			if it.kind != itemLeaf || done[it.block] {
				return
			}
			done[it.block] = true
			st := s.live.st[it.block]
			us := users(d, inDef)
			if st&stateMask == stUnsorted {
				for _, u := range us {
					u.rep.Fixes = append(u.rep.Fixes, fmt.Sprintf("leaf %d had its keys out of order: its %d entries were sorted", it.block, s.live.spans[it.block].nr))
				}
			}
			if st&stFix == 0 {
				return
			}
			n, err := s.readNode(it.block, buf, thin.MappingValueSize)
			if err != nil && err != errUnsorted {
				return
			}
			ms := leafMappings(nil, n, err == errUnsorted, 0, math.MaxUint64)
			keep := ms[:0]
			changed := false
			for _, m := range ms {
				switch {
				case m.Block >= s.nrData:
					changed = true
					for _, u := range us {
						s.dropped(u, m, fmt.Sprintf("leaf %d of the newest metadata", it.block), judgement{v: vBeyond})
					}
					continue
				case m.Time > s.time:
					changed = true
					for _, u := range us {
						u.rep.Fixes = append(u.rep.Fixes, fmt.Sprintf("virtual block %d: time %d beyond the pool's %d set to 0", m.VBlock, m.Time, s.time))
					}
					m.Time = 0
				}
				keep = append(keep, m)
			}
			if changed {
				*it = item{kind: itemMaps, block: it.block, maps: keep, from: "newest"}
			}
		})
	}
}

// dropped records a dropped mapping in device d's report, extending the
// last run when it continues it.
func (s *salvager) dropped(d *device, m thin.Mapping, source string, j judgement) {
	r := d.rep
	r.DroppedCount++
	reason := j.reason(s)
	if n := len(r.Dropped); n > 0 {
		l := &r.Dropped[n-1]
		if l.VBlock+l.Len == m.VBlock && l.Block+l.Len == m.Block && l.Time == m.Time && l.Reason == reason && l.Source == source {
			l.Len++
			return
		}
	}
	x := DroppedRun{VBlock: m.VBlock, Block: m.Block, Len: 1, Time: m.Time, Reason: reason, Source: source}
	if j.hasOwner {
		o := j.owner
		x.Owner = &o
	}
	r.Dropped = append(r.Dropped, x)
}

// older records a mapping taken from an older copy in d's report.
func (s *salvager) older(d *device, k keptMapping) {
	r := d.rep
	r.OlderCount++
	conf := k.j.v == vConfirmed
	if n := len(r.Older); n > 0 {
		l := &r.Older[n-1]
		if l.VBlock+l.Len == k.m.VBlock && l.Block+l.Len == k.m.Block && l.Time == k.m.Time && l.Source == k.src.source && l.Confirmed == conf {
			l.Len++
			return
		}
	}
	r.Older = append(r.Older, OlderRun{VBlock: k.m.VBlock, Block: k.m.Block, Len: 1, Time: k.m.Time,
		Source: k.src.source, Transaction: k.src.tx, Confirmed: conf})
}

// finish counts what each device kept, decides which devices are lost,
// and fills in the report.
func (s *salvager) finish() {
	rep := s.rep
	if s.sc != nil {
		sr := s.sc.rep
		sr.Versions = s.versions
		rep.Scan = &sr
	}
	var kept []*device
	for _, d := range s.devs {
		var live, old, confirmed uint64
		eachItem(d, func(it *item, _ *def) {
			switch it.kind {
			case itemLeaf:
				live += uint64(s.live.spans[it.block].nr)
			case itemMaps:
				live += uint64(len(it.maps))
			case itemHole:
				h := it.hole
				recovered := uint64(len(h.fill.kept))
				for _, k := range h.fill.kept {
					if k.j.v == vNewest {
						recovered--
					}
				}
				reason := reasonText(h.reason)
				if len(h.keep) > 0 {
					reason += fmt.Sprintf(": its %d entries within the range kept, %d outside dropped", len(h.keep), len(h.bogus))
				}
				d.rep.Damaged = append(d.rep.Damaged, DamagedRange{First: h.lo, Last: h.hi, Block: h.block,
					Reason: reason, Recovered: recovered, Versions: h.fill.versions})
				for _, k := range h.fill.kept {
					if k.j.v == vNewest {
						live++
						continue
					}
					old++
					if k.j.v == vConfirmed {
						confirmed++
					}
					s.older(d, k)
				}
				for _, x := range h.fill.dropped {
					s.dropped(d, x.m, x.src.source, x.j)
				}
			}
		})
		d.rep.Kept = live
		switch {
		case d.older && live+old == 0:
			rep.LostDevices = append(rep.LostDevices, LostDevice{ID: d.id, Reason: lostReason(d)})
			continue
		case d.older && d.detailsFrom != "newest" && confirmed == 0 && s.dsm != nil:
			rep.LostDevices = append(rep.LostDevices, LostDevice{ID: d.id,
				Reason: "found only in older copies, and none of its data blocks is confirmed by the newest data space map: treated as deleted"})
			continue
		}
		if d.details.MappedBlocks != live+old && d.detailsFrom == "newest" && len(d.rep.Damaged) == 0 && d.rep.DroppedCount == 0 {
			d.rep.Fixes = append(d.rep.Fixes, fmt.Sprintf("mapped_blocks %d corrected to %d", d.details.MappedBlocks, live+old))
		}
		d.details.MappedBlocks = live + old
		kept = append(kept, d)
	}
	s.devs = kept
	for _, d := range kept {
		dt := d.details
		d.rep.Details = Details{MappedBlocks: dt.MappedBlocks, TransactionID: dt.TransactionID, CreationTime: dt.CreationTime, SnapshottedTime: dt.SnapshottedTime}
		d.rep.DetailsFrom = d.detailsFrom
		rep.Devices = append(rep.Devices, *d.rep)
		d.rep = &rep.Devices[len(rep.Devices)-1]
		t := &rep.Totals
		t.Kept += d.rep.Kept
		t.Older += d.rep.OlderCount
		t.Dropped += d.rep.DroppedCount
		t.Damaged += len(d.rep.Damaged)
	}
	rep.Totals.Devices = len(kept)
	rep.Totals.LostDevices = len(rep.LostDevices)
	if s.ext {
		for _, d := range kept {
			s.nextID = max(s.nextID, d.id+1)
		}
	}
	rep.Pool = PoolReport{Time: s.time, TransactionID: s.tid, DataBlockSize: s.dbs, NrDataBlocks: s.nrData,
		Extended: s.ext, BlobSize: s.blobSize, IndexBytes: s.indexB, NextThinID: s.nextID}
}

func lostReason(d *device) string {
	for _, it := range d.items {
		if it.kind == itemHole {
			return fmt.Sprintf("%s, and no older copy of its tree holds a mapping the newest metadata allows", reasonText(it.hole.reason))
		}
	}
	return "its mapping tree is lost"
}
