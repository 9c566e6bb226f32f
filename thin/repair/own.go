package repair

import (
	"fmt"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// The data-ownership rule (docs/REPAIR.md §4): a mapping found anywhere
// but in a usable leaf of the newest metadata is kept only if the newest
// metadata does not give its data block to another mapping, and the
// newest data space map shows that an unreadable leaf referenced it.

// verdict is what the rule says of one mapping.
type verdict uint8

const (
	vConfirmed    verdict = iota // kept: the data space map shows an unreadable leaf held the block
	vUnconfirmed                 // kept: the data space map cannot tell
	vBeyond                      // dropped: beyond the data device
	vTime                        // dropped: a time the pool has not reached
	vOwned                       // dropped: a readable leaf maps the block elsewhere
	vStale                       // dropped: no unreadable leaf held the block at the last commit
	vContradicted                // dropped: another older copy maps the block elsewhere
	vConflict                    // dropped: two readable leaves map the block differently
	vBadKey                      // dropped: its key lies outside the range the leaf's parent gives it
	vNewest                      // kept: an entry of a usable leaf of the newest metadata
)

func (v verdict) kept() bool { return v == vConfirmed || v == vUnconfirmed || v == vNewest }

// judgement is a verdict with the device that owns the block, if any.
type judgement struct {
	v        verdict
	owner    uint64
	hasOwner bool
	ownerV   uint64
}

// reason says in words why a mapping was dropped.
func (j judgement) reason(s *salvager) string {
	switch j.v {
	case vBeyond:
		return fmt.Sprintf("data block beyond the data device (%d blocks)", s.nrData)
	case vTime:
		return fmt.Sprintf("mapping time beyond the pool's time %d", s.time)
	case vOwned:
		return fmt.Sprintf("the newest metadata gives the data block to device %d (virtual block %d)", j.owner, j.ownerV)
	case vStale:
		if j.hasOwner {
			return fmt.Sprintf("stale: at the last commit the data block was mapped only by device %d's readable leaves", j.owner)
		}
		return "stale: the data block is free in the newest data space map (discarded or replaced since this copy)"
	case vContradicted:
		return "another older copy maps the data block at a different virtual block"
	case vConflict:
		return "two leaves of the newest metadata map the data block differently"
	case vBadKey:
		return "its key lies outside the range the leaf's parent gives it (a corrupted key): its virtual block is unknown"
	}
	return ""
}

// liveRef is a mapping of a readable leaf of the newest metadata.
type liveRef struct {
	dev uint64
	v   uint64
	t   uint32
}

// liveOwners returns, for each block in want, the mappings of usable
// leaves of the newest metadata that point at it.
func (s *salvager) liveOwners(want map[uint64]bool) map[uint64][]liveRef {
	own := make(map[uint64][]liveRef)
	if len(want) == 0 {
		return own
	}
	buf := make([]byte, transaction.BlockSize)
	doneDef := make(map[*def]bool)
	var scanItems func(dev uint64, items []item)
	scanItems = func(dev uint64, items []item) {
		for _, it := range items {
			switch it.kind {
			case itemLeaf:
				n, err := s.readNode(it.block, buf, thin.MappingValueSize)
				if err != nil && err != errUnsorted {
					continue
				}
				for i := range n.NrEntries() {
					b, t := thin.UnpackBlockTime(n.Uint64Value(i))
					if want[b] {
						own[b] = append(own[b], liveRef{dev: dev, v: n.Key(i), t: t})
					}
				}
			case itemMaps, itemHole:
				ms := it.maps
				if it.kind == itemHole {
					ms = it.hole.keep
				}
				for _, m := range ms {
					if want[m.Block] {
						own[m.Block] = append(own[m.Block], liveRef{dev: dev, v: m.VBlock, t: m.Time})
					}
				}
			case itemShared:
				if !doneDef[it.def] {
					doneDef[it.def] = true
					scanItems(dev, it.def.items)
				}
			}
		}
	}
	for _, d := range s.devs {
		if !d.older {
			scanItems(d.id, d.items)
		}
	}
	return own
}

// smCount returns the newest data space map's count of data block b, and
// false if it cannot be read.
func (s *salvager) smCount(b uint64) (uint32, bool) {
	if s.dsm == nil || b >= s.dsm.NrBlocks() {
		return 0, false
	}
	c, err := s.dsm.Count(b)
	if err != nil {
		return 0, false
	}
	return c, true
}

// judge applies the rule to mapping m of some device, given the live
// owners of its data block.
func (s *salvager) judge(m thin.Mapping, owners map[uint64][]liveRef) judgement {
	if m.Block >= s.nrData {
		return judgement{v: vBeyond}
	}
	if m.Time > s.time {
		return judgement{v: vTime}
	}
	refs := owners[m.Block]
	for _, r := range refs {
		// A snapshot shares the mapping itself: same virtual block, same
		// time.
		if r.v != m.VBlock || r.t != m.Time {
			return judgement{v: vOwned, owner: r.dev, hasOwner: true, ownerV: r.v}
		}
	}
	c, ok := s.smCount(m.Block)
	if !ok {
		return judgement{v: vUnconfirmed}
	}
	switch n := s.dataRefs.get(m.Block); {
	case c > n:
		return judgement{v: vConfirmed}
	case c == n:
		j := judgement{v: vStale}
		if len(refs) > 0 {
			j.owner, j.hasOwner = refs[0].dev, true
		}
		return j
	}
	return judgement{v: vUnconfirmed}
}

// openDataSM opens the newest data space map, or leaves s.dsm nil and
// notes why.
func (s *salvager) openDataSM(slot []byte) {
	m, err := spacemap.OpenData(s.r, slot)
	if err != nil {
		s.note("the newest data space map cannot be read (%s): mappings from older copies cannot be confirmed", reasonText(err))
		return
	}
	s.dsm = m
}

// liveConflicts finds data blocks that readable leaves of the newest
// metadata map through different mappings (never so in a consistent
// pool: a flipped value, for instance), and drops those mappings unless
// an older copy of the same device confirms one of them. Such blocks show
// up as blocks the newest data space map counts fewer times than the
// readable leaves reference them.
func (s *salvager) liveConflicts() {
	if s.dsm == nil {
		return
	}
	suspects := make(map[uint64]bool)
	// Blocks the space map counts, against the references; then blocks
	// referenced that it does not count at all.
	nr := s.dsm.NrBlocks()
	counted := newBitset(nr)
	for bc, err := range s.dsm.Counts() {
		if err != nil {
			return
		}
		if s.dataRefs.get(bc.Block) > bc.Count {
			suspects[bc.Block] = true
		}
		counted.set(bc.Block)
	}
	s.dataRefs.each(func(b uint64, _ uint32) {
		if b < nr && !counted.has(b) {
			suspects[b] = true
		}
	})
	if len(suspects) == 0 {
		return
	}
	owners := s.liveOwners(suspects)
	drop := make(map[liveRef]uint64) // mapping -> block
	for b, refs := range owners {
		vs := make(map[uint64]bool)
		for _, r := range refs {
			vs[r.v] = true
		}
		if len(vs) < 2 {
			continue // the space map is wrong, not the leaves
		}
		// Keep the mappings an older copy of their device corroborates, if
		// that leaves one virtual block.
		kept := make(map[uint64]bool)
		for _, r := range refs {
			if s.corroborated(r.dev, r.v, b) {
				kept[r.v] = true
			}
		}
		for _, r := range refs {
			if len(kept) != 1 || !kept[r.v] {
				drop[r] = b
			}
		}
	}
	if len(drop) > 0 {
		s.dropLive(drop)
	}
}

// corroborated reports whether an older copy of device dev's tree maps
// virtual block v to data block b.
func (s *salvager) corroborated(dev, v, b uint64) bool {
	sc, err := s.doScan()
	if err != nil {
		return false
	}
	var live uint64
	if d := s.device(dev); d != nil {
		live = d.root
	}
	for _, e := range sc.top[dev] {
		if e.root == live {
			continue
		}
		found := false
		s.walkTree(e.root, thin.MappingValueSize, v, v, visitor{leaf: func(_ uint64, n btree.Node, _ bool, _, _ uint64) {
			for i := range n.NrEntries() {
				if n.Key(i) == v {
					blk, _ := thin.UnpackBlockTime(n.Uint64Value(i))
					found = found || blk == b
				}
			}
		}})
		if found {
			return true
		}
	}
	return false
}

// dropLive turns the readable leaves holding the given mappings into
// explicit mappings without them, and reports the drops.
func (s *salvager) dropLive(drop map[liveRef]uint64) {
	buf := make([]byte, transaction.BlockSize)
	var rewrite func(dev *device, items []item, inDef *def)
	rewrite = func(dev *device, items []item, inDef *def) {
		for i := range items {
			it := &items[i]
			switch it.kind {
			case itemShared:
				rewrite(dev, it.def.items, it.def)
			case itemLeaf:
				n, err := s.readNode(it.block, buf, thin.MappingValueSize)
				if err != nil && err != errUnsorted {
					continue
				}
				ms := leafMappings(nil, n, err == errUnsorted, 0, ^uint64(0))
				var keep []thin.Mapping
				changed := false
				for _, m := range ms {
					if b, ok := drop[liveRef{dev: dev.id, v: m.VBlock, t: m.Time}]; ok && b == m.Block {
						changed = true
						users := []*device{dev}
						if inDef != nil {
							users = inDef.devs
						}
						for _, u := range users {
							s.dropped(u, m, "newest metadata", judgement{v: vConflict})
						}
						continue
					}
					keep = append(keep, m)
				}
				if changed {
					*it = item{kind: itemMaps, block: it.block, maps: keep, from: "newest"}
				}
			}
		}
	}
	for _, d := range s.devs {
		rewrite(d, d.items, nil)
	}
}
