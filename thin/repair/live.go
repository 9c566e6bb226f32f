package repair

import (
	"fmt"
	"math"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// The newest metadata's mapping trees are walked in two passes. The first
// (mark) reads every node once, whatever number of devices reach it:
// it records each node's state and key span, counts the data blocks of
// its usable leaves, and marks nodes reached more than once (shared by
// snapshots). The second (items) describes each device's tree as a
// sequence of items in key order — usable leaves, shared nodes (a def,
// described once), holes — reading only internal nodes again.

// Node states of the mark pass.
const (
	stUnseen uint8 = iota
	stSound
	stUnsorted // a usable leaf whose entries must be sorted
	stBad
	stateMask = 3

	stShared = 1 << 2 // reached more than once
	stOnPath = 1 << 3 // being walked (an ancestor)
	stFix    = 1 << 4 // a leaf with a mapping beyond the data device or the pool's time
)

type itemKind uint8

const (
	itemLeaf   itemKind = iota // a usable leaf of the input, kept whole
	itemShared                 // a node reached from several places: a def
	itemHole                   // a damaged subtree
	itemMaps                   // explicit mappings
)

// item is one piece of a device's (or def's) tree, in key order.
type item struct {
	kind  itemKind
	block uint64
	def   *def
	hole  *hole
	maps  []thin.Mapping
	from  string // itemMaps: where the mappings came from
}

// def is a node reached from several places, described once and shared.
type def struct {
	node  uint64
	items []item
	devs  []*device
	num   int // the writer's def number, -1 before it is written
}

// hole is a damaged subtree: the key range [lo, hi] its parent gives it.
type hole struct {
	block  uint64
	lo, hi uint64
	reason error
	parent uint64 // a parent of the damaged node (0: none, it is a root)
	devs   []*device
	// keep are the entries of a usable leaf that lie in the range its
	// parent gives it, when others do not (a corrupted key): they stay,
	// and older copies fill the rest of the range. bogus are the others.
	keep, bogus []thin.Mapping
	// What filling it found.
	fill fillResult
}

// device is a device being salvaged.
type device struct {
	id          uint64
	details     thin.Details
	detailsFrom string
	blob        []byte
	root        uint64
	rootFrom    string // "" for the newest metadata's top-level tree
	items       []item
	rep         *DeviceReport
	// older is set for a device whose whole tree comes from an older copy.
	older bool
}

// spanOf is a key range [lo, hi].
type spanOf struct{ lo, hi uint64 }

// nodeInfo is what the mark pass keeps of a usable node: its key span
// (lo > hi if empty) and its number of entries.
type nodeInfo struct {
	lo, hi uint64
	nr     int
}

type liveState struct {
	st       []uint8
	spans    map[uint64]nodeInfo
	reasons  map[uint64]error
	badRange map[uint64]spanOf
	defs     map[uint64]*def
	holes    map[uint64]*hole
	leaves   uint64
	// uncounted are leaves whose out-of-range entries were taken out of
	// the data references (once per leaf).
	uncounted map[uint64]bool
}

func newLiveState(n uint64) *liveState {
	return &liveState{st: make([]uint8, n), spans: make(map[uint64]nodeInfo), reasons: make(map[uint64]error),
		badRange: make(map[uint64]spanOf), defs: make(map[uint64]*def), holes: make(map[uint64]*hole),
		uncounted: make(map[uint64]bool)}
}

// mark is the first pass over the tree rooted at b.
func (s *salvager) mark(b uint64, depth int, klo, khi uint64, buf [][]byte) {
	ls := s.live
	if b >= s.n || depth > btree.MaxDepth || s.err != nil {
		return
	}
	st := ls.st[b]
	if st&stOnPath != 0 {
		return // a cycle: the items pass makes it a hole
	}
	if st != stUnseen {
		ls.st[b] |= stShared
		if st&stateMask == stBad {
			r := ls.badRange[b]
			ls.badRange[b] = spanOf{max(r.lo, klo), min(r.hi, khi)}
		}
		return
	}
	if err := s.m.Add(1); err != nil {
		s.err = err
		return
	}
	n, err := s.readNode(b, buf[depth], thin.MappingValueSize)
	unsorted := err == errUnsorted
	if err != nil && !unsorted {
		ls.st[b] = stBad
		ls.reasons[b] = err
		ls.badRange[b] = spanOf{klo, khi}
		return
	}
	info := nodeInfo{lo: 1, hi: 0, nr: n.NrEntries()} // empty
	if lo, hi, ok := span(n, unsorted); ok {
		info.lo, info.hi = lo, hi
	}
	ls.spans[b] = info
	if n.IsLeaf() {
		ls.st[b] = stSound
		if unsorted {
			ls.st[b] = stUnsorted
		}
		ls.leaves++
		for i := range n.NrEntries() {
			blk, t := thin.UnpackBlockTime(n.Uint64Value(i))
			s.dataRefs.inc(blk)
			s.highest = max(s.highest, blk)
			if blk >= s.slotNr || t > s.time {
				ls.st[b] |= stFix
			}
		}
		return
	}
	ls.st[b] = stSound | stOnPath
	nr := n.NrEntries()
	for i := range nr {
		clo, chi := childRange(n, i, khi)
		if clo > chi {
			continue
		}
		// buf[depth] holds n: deeper levels use their own buffers.
		s.mark(btree.Node(buf[depth]).Uint64Value(i), depth+1, clo, chi, buf)
	}
	ls.st[b] &^= stOnPath
}

// markBufs returns buffers for a walk of MaxDepth levels.
func markBufs() [][]byte {
	bufs := make([][]byte, btree.MaxDepth+2)
	for i := range bufs {
		bufs[i] = make([]byte, transaction.BlockSize)
	}
	return bufs
}

// items is the second pass: it appends the items of the subtree at b,
// whose parent gives it [klo, khi], to out. Inside a def (inDef), shared
// nodes are expanded in place.
func (s *salvager) items(b, parent uint64, depth int, klo, khi uint64, root, inDef bool, onPath map[uint64]bool, out []item) []item {
	ls := s.live
	var reason error
	switch {
	case b >= s.n:
		reason = fmt.Errorf("block %d beyond the end of the device (%d blocks)", b, s.n)
	case depth > btree.MaxDepth || onPath[b]:
		reason = transaction.Corruptf(b, btree.Kind, btree.ErrDepth, "tree too deep or cyclic")
	}
	if reason != nil {
		return append(out, item{kind: itemHole, block: b, hole: s.contextHole(b, parent, klo, khi, reason)})
	}
	st := ls.st[b]
	if st&stateMask == stBad {
		if st&stShared != 0 && !inDef {
			return append(out, item{kind: itemShared, block: b, def: s.defOf(b, parent, klo, khi, root)})
		}
		return append(out, item{kind: itemHole, block: b, hole: s.badHole(b, parent)})
	}
	if sp := ls.spans[b]; !root && sp.lo <= sp.hi && (sp.lo < klo || sp.hi > khi) {
		err := transaction.Corruptf(b, btree.Kind, btree.ErrKeyRange, "keys %d..%d outside %d..%d", sp.lo, sp.hi, klo, khi)
		h := s.contextHole(b, parent, klo, khi, err)
		s.partialLeaf(b, h)
		return append(out, item{kind: itemHole, block: b, hole: h})
	}
	if st&stShared != 0 && !inDef {
		return append(out, item{kind: itemShared, block: b, def: s.defOf(b, parent, klo, khi, root)})
	}
	buf := s.nodeBuf()
	defer s.putNodeBuf(buf)
	n, err := s.readNode(b, buf, thin.MappingValueSize)
	if err != nil && err != errUnsorted {
		// Read fine in the first pass: the device changed under us.
		return append(out, item{kind: itemHole, block: b, hole: s.contextHole(b, parent, klo, khi, err)})
	}
	if n.IsLeaf() {
		return append(out, item{kind: itemLeaf, block: b})
	}
	onPath[b] = true
	defer delete(onPath, b)
	nr := n.NrEntries()
	if nr == 0 {
		return append(out, item{kind: itemHole, block: b, hole: s.contextHole(b, parent, klo, khi, fmt.Errorf("internal node %d has no entries", b))})
	}
	if root && n.Key(0) > klo {
		klo = n.Key(0)
	}
	for i := range nr {
		clo, chi := childRange(n, i, khi)
		if i == 0 {
			clo = max(clo, klo)
		}
		if clo > chi {
			continue
		}
		out = s.items(n.Uint64Value(i), b, depth+1, clo, chi, false, inDef, onPath, out)
	}
	return out
}

// nodeBuf returns a node buffer: one items is done with, or a new one.
func (s *salvager) nodeBuf() []byte {
	if n := len(s.freeBufs); n > 0 {
		b := s.freeBufs[n-1]
		s.freeBufs = s.freeBufs[:n-1]
		return b
	}
	return make([]byte, transaction.BlockSize)
}

// putNodeBuf gives back a buffer from nodeBuf once nothing refers to it.
func (s *salvager) putNodeBuf(b []byte) { s.freeBufs = append(s.freeBufs, b) }

// defOf returns the def of shared node b, describing it on first use.
func (s *salvager) defOf(b, parent, klo, khi uint64, root bool) *def {
	if d := s.live.defs[b]; d != nil {
		return d
	}
	d := &def{node: b, num: -1}
	s.live.defs[b] = d
	d.items = s.items(b, parent, 0, klo, khi, root, true, make(map[uint64]bool), nil)
	return d
}

// badHole returns the hole of damaged node b (one per node, whatever the
// number of parents).
func (s *salvager) badHole(b, parent uint64) *hole {
	if h := s.live.holes[b]; h != nil {
		return h
	}
	r := s.live.badRange[b]
	h := &hole{block: b, lo: r.lo, hi: r.hi, reason: s.live.reasons[b], parent: parent}
	s.live.holes[b] = h
	s.holes = append(s.holes, h)
	return h
}

// contextHole makes a hole for a node that is unusable only where it is
// reached from (out of range, a cycle).
func (s *salvager) contextHole(b, parent, lo, hi uint64, reason error) *hole {
	h := &hole{block: b, lo: lo, hi: hi, reason: reason, parent: parent}
	s.holes = append(s.holes, h)
	return h
}

// walkDevices runs both passes over every device's tree, then records
// which devices reach each def and each hole.
func (s *salvager) walkDevices() {
	bufs := markBufs()
	for _, d := range s.devs {
		if !d.older {
			s.mark(d.root, 0, 0, math.MaxUint64, bufs)
		}
	}
	for _, d := range s.devs {
		if !d.older {
			d.items = s.items(d.root, 0, 0, 0, math.MaxUint64, true, false, make(map[uint64]bool), nil)
		}
	}
	for _, d := range s.devs {
		seen := make(map[*def]bool)
		var note func(items []item)
		note = func(items []item) {
			for _, it := range items {
				switch it.kind {
				case itemHole:
					if n := len(it.hole.devs); n == 0 || it.hole.devs[n-1] != d {
						it.hole.devs = append(it.hole.devs, d)
					}
				case itemShared:
					if !seen[it.def] {
						seen[it.def] = true
						it.def.devs = append(it.def.devs, d)
						note(it.def.items)
					}
				}
			}
		}
		note(d.items)
	}
}

// partialLeaf splits the entries of leaf b, some of whose keys lie outside
// the range of hole h, into those kept and the bogus ones, whose data
// blocks no longer count as referenced by a readable leaf (so that an
// older copy's mapping of the block can be confirmed).
func (s *salvager) partialLeaf(b uint64, h *hole) {
	buf := make([]byte, transaction.BlockSize)
	n, err := s.readNode(b, buf, thin.MappingValueSize)
	if err != nil && err != errUnsorted || !n.IsLeaf() {
		return
	}
	first := !s.live.uncounted[b]
	s.live.uncounted[b] = true
	for _, m := range leafMappings(nil, n, err == errUnsorted, 0, math.MaxUint64) {
		if m.VBlock >= h.lo && m.VBlock <= h.hi {
			if m.Time > s.time {
				m.Time = 0 // as fixLiveLeaves does: the kernel then copies the block
			}
			h.keep = append(h.keep, m)
			continue
		}
		h.bogus = append(h.bogus, m)
		if first {
			s.dataRefs.dec(m.Block)
		}
	}
	if len(h.keep) == 0 {
		h.bogus = nil
	}
}
