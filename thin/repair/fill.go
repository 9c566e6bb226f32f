package repair

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// Filling holes (docs/REPAIR.md §3): the candidates for a hole are older
// versions of the trees of the devices that reach it — the roots older
// top-level leaves record for them, and older copies of the hole's parent
// (internal nodes that share one of its other children). Each is walked
// over the hole's key range; the versions are ranked by how many of their
// mappings the newest data space map confirms, and each virtual block
// takes the best-ranked mapping the ownership rule keeps.

// version is one older copy of a subtree, restricted to a hole's range.
type version struct {
	root    uint64
	source  string
	tx      *uint64
	maps    []thin.Mapping
	covered []spanOf // key ranges it covers soundly
	// inLive marks the mappings read from a usable leaf of the newest
	// trees (a version may share leaves with them): their references are
	// counted already, so the data space map cannot show them as surplus.
	inLive []bool
	// Ranking.
	confirmed, contradicted int
	maxTime                 uint32
}

// fillResult is what filling a hole found.
type fillResult struct {
	kept     []keptMapping // in virtual block order
	dropped  []droppedMapping
	versions int
}

type keptMapping struct {
	m   thin.Mapping
	src *version
	j   judgement
}

type droppedMapping struct {
	m   thin.Mapping
	src *version
	j   judgement
}

// versionsOf returns the older versions of the subtree of hole h.
func (s *salvager) versionsOf(h *hole) ([]*version, error) {
	sc, err := s.doScan()
	if err != nil {
		return nil, err
	}
	seen := make(map[uint64]bool)
	for _, d := range h.devs {
		seen[d.root] = true // the newest root leads to the hole again
	}
	var vs []*version
	add := func(root uint64, source string, tx *uint64) {
		if seen[root] || root == h.block {
			return
		}
		seen[root] = true
		v := &version{root: root, source: source, tx: tx}
		s.walkTree(root, thin.MappingValueSize, h.lo, h.hi, visitor{
			leaf: func(b uint64, n btree.Node, unsorted bool, lo, hi uint64) {
				k := len(v.maps)
				v.maps = leafMappings(v.maps, n, unsorted, lo, hi)
				st := s.live.st[b] & stateMask
				live := (st == stSound || st == stUnsorted) && !s.live.uncounted[b]
				for range len(v.maps) - k {
					v.inLive = append(v.inLive, live)
				}
				v.covered = append(v.covered, spanOf{lo, hi})
			},
		})
		vs = append(vs, v)
	}
	for _, d := range h.devs {
		for _, e := range sc.top[d.id] {
			src := fmt.Sprintf("an older mapping tree of device %d (root %d, top-level leaf %d)", d.id, e.root, e.leaf)
			var tx *uint64
			if t, ok := s.snapLeaves[e.leaf]; ok {
				src = fmt.Sprintf("the metadata snapshot's mapping tree of device %d (root %d)", d.id, e.root)
				tx = &t
			}
			add(e.root, src, tx)
		}
	}
	// Trees under corrupted top-level keys, for a device with no tree.
	for _, d := range h.devs {
		if d.older && h.lo == 0 {
			for _, o := range s.orphans {
				add(o.root, fmt.Sprintf("the newest top-level tree's entry under the corrupted key %d (root %d)", o.key, o.root), nil)
			}
		}
	}
	// Older copies of the parent: nodes that reference one of the hole's
	// siblings.
	if h.parent != 0 {
		buf := make([]byte, transaction.BlockSize)
		if n, err := s.readNode(h.parent, buf, thin.MappingValueSize); err == nil && n.IsInternal() {
			sib := make(map[uint64]bool)
			for i := range n.NrEntries() {
				if c := n.Uint64Value(i); c != h.block {
					sib[c] = true
				}
			}
			ps := s.parentsOf(sib)
			var qs []uint64
			for _, l := range ps {
				for _, q := range l {
					if q != h.parent {
						qs = append(qs, q)
					}
				}
			}
			slices.Sort(qs)
			for _, q := range slices.Compact(qs) {
				add(q, fmt.Sprintf("an older copy of node %d (node %d, sharing children with it)", h.parent, q), nil)
			}
		}
	}
	return vs, nil
}

// fillHoles fills every hole from older versions and applies the
// ownership rule to what they hold.
func (s *salvager) fillHoles() error {
	if len(s.holes) == 0 {
		return nil
	}
	all := make([][]*version, len(s.holes))
	want := make(map[uint64]bool)
	for i, h := range s.holes {
		vs, err := s.versionsOf(h)
		if err != nil {
			return err
		}
		all[i] = vs
		for _, m := range h.keep {
			want[m.Block] = true
		}
		for _, v := range vs {
			for _, m := range v.maps {
				want[m.Block] = true
			}
		}
		s.versions += len(vs)
	}
	owners := s.liveOwners(want)
	for i, h := range s.holes {
		s.fillOne(h, all[i], owners)
	}
	s.contradictions()
	return nil
}

// fillOne chooses, for each virtual block of hole h, the mapping to keep.
func (s *salvager) fillOne(h *hole, vs []*version, owners map[uint64][]liveRef) {
	judged := make([][]judgement, len(vs))
	for i, v := range vs {
		judged[i] = make([]judgement, len(v.maps))
		for j, m := range v.maps {
			jd := s.judge(m, owners)
			if jd.v == vStale && v.inLive[j] {
				// The newest trees hold this very leaf.
				jd = judgement{v: vConfirmed}
			}
			judged[i][j] = jd
			switch {
			case jd.v == vConfirmed:
				v.confirmed++
			case !jd.v.kept():
				v.contradicted++
			}
			v.maxTime = max(v.maxTime, m.Time)
		}
	}
	order := make([]int, len(vs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		va, vb := vs[a], vs[b]
		return cmp.Or(cmp.Compare(vb.confirmed, va.confirmed), cmp.Compare(va.contradicted, vb.contradicted),
			cmp.Compare(vb.maxTime, va.maxTime), cmp.Compare(vb.root, va.root))
	})
	type choice struct {
		m    thin.Mapping
		src  *version
		j    judgement
		rank int
	}
	best := make(map[uint64]*choice)
	if len(h.keep) > 0 {
		newest := &version{root: h.block, source: fmt.Sprintf("leaf %d of the newest metadata", h.block)}
		for _, m := range h.keep {
			if m.Block >= s.nrData {
				h.fill.dropped = append(h.fill.dropped, droppedMapping{m, newest, judgement{v: vBeyond}})
				continue
			}
			// The leaf is sealed but corrupted: an entry whose data block a
			// sound leaf maps elsewhere has a corrupted key or value.
			if jd := s.judge(m, owners); jd.v == vOwned {
				h.fill.dropped = append(h.fill.dropped, droppedMapping{m, newest, jd})
				continue
			}
			best[m.VBlock] = &choice{m, newest, judgement{v: vNewest}, -1}
		}
		for _, m := range h.bogus {
			h.fill.dropped = append(h.fill.dropped, droppedMapping{m, newest, judgement{v: vBadKey}})
		}
	}
	covers := func(v *version, k uint64) bool {
		for _, c := range v.covered {
			if c.lo <= k && k <= c.hi {
				return true
			}
		}
		return false
	}
	for rank, i := range order {
		v := vs[i]
		for j, m := range v.maps {
			jd := judged[i][j]
			cur := best[m.VBlock]
			switch {
			case cur != nil && cur.rank < 0:
				// The newest metadata's own entry.
			case jd.v == vConfirmed:
				if cur == nil || cur.j.v != vConfirmed {
					best[m.VBlock] = &choice{m, v, jd, rank}
				}
			case cur != nil:
				// A better-ranked version already said something.
			case jd.v == vUnconfirmed:
				// Only if no better-ranked version covers the block (and
				// so had it unmapped).
				shadowed := false
				for _, k := range order[:rank] {
					if covers(vs[k], m.VBlock) {
						shadowed = true
						break
					}
				}
				if !shadowed {
					best[m.VBlock] = &choice{m, v, jd, rank}
				}
			default:
				best[m.VBlock] = &choice{m, v, jd, rank}
			}
		}
	}
	keys := make([]uint64, 0, len(best))
	for k := range best {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		c := best[k]
		if c.j.v.kept() {
			h.fill.kept = append(h.fill.kept, keptMapping{c.m, c.src, c.j})
		} else {
			h.fill.dropped = append(h.fill.dropped, droppedMapping{c.m, c.src, c.j})
		}
	}
	h.fill.versions = len(vs)
}

// contradictions drops the kept mappings of holes that claim one data
// block through different virtual blocks.
func (s *salvager) contradictions() {
	type claim struct {
		h *hole
		i int
	}
	byBlock := make(map[uint64][]claim)
	for _, h := range s.holes {
		for i, k := range h.fill.kept {
			byBlock[k.m.Block] = append(byBlock[k.m.Block], claim{h, i})
		}
	}
	bad := make(map[*hole]map[int]bool)
	for _, cs := range byBlock {
		if len(cs) < 2 {
			continue
		}
		v := cs[0].h.fill.kept[cs[0].i].m.VBlock
		differ := false
		for _, c := range cs[1:] {
			differ = differ || c.h.fill.kept[c.i].m.VBlock != v
		}
		if !differ {
			continue
		}
		for _, c := range cs {
			if bad[c.h] == nil {
				bad[c.h] = make(map[int]bool)
			}
			bad[c.h][c.i] = true
		}
	}
	for h, is := range bad {
		var keep []keptMapping
		for i, k := range h.fill.kept {
			if is[i] {
				h.fill.dropped = append(h.fill.dropped, droppedMapping{k.m, k.src, judgement{v: vContradicted}})
				continue
			}
			keep = append(keep, k)
		}
		h.fill.kept = keep
		slices.SortFunc(h.fill.dropped, func(a, b droppedMapping) int { return cmp.Compare(a.m.VBlock, b.m.VBlock) })
	}
}
