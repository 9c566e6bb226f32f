package repair

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// A lost superblock (docs/REPAIR.md §5): block 0 is torn, zeroed or
// otherwise not a valid superblock. Its fields that never change after
// format (data block size, blob size) are still trusted if its magic and
// location are right; its roots are only candidates. The generations —
// pairs of a top-level mapping root and a details root with the same
// devices — are found by scanning; the newest is chosen by the times and
// transaction ids their contents record, then by allocation order.

// rootEval is what walking one device tree found.
type rootEval struct {
	maxTime  uint32
	holes    int
	mappings uint64
	newest   uint64
}

// generation is a candidate pair of roots.
type generation struct {
	mapping, details uint64
	from             string
	ids              []uint64
	holes            int    // damaged nodes met walking its two trees and the device trees
	mismatched       int    // devices whose mapped_blocks differ from their trees
	maxTime          uint32 // largest time in its mappings and details
	maxTid           uint64 // largest transaction id in its details
	newest           uint64 // largest block of its mapping trees
	newestDetails    uint64 // largest block of its details tree
	tid              *uint64
	time             *uint32
}

func (s *salvager) lostSuperblock(cause error) error {
	blk := make([]byte, transaction.BlockSize)
	var hint *superblock.Superblock
	state, problem := "missing", reasonText(cause)
	if err := s.r.ReadRaw(superblock.Location, blk); err == nil {
		if h := superblock.Decode(blk); h.Magic == superblock.Magic && h.Blocknr == superblock.Location {
			hint, state = &h, "damaged"
		} else if bytes.Equal(blk, make([]byte, transaction.BlockSize)) {
			problem = "block 0 is all zeros"
		}
	}
	s.rep.Superblock = SuperblockReport{State: state, Problem: problem}
	sc, err := s.doScan()
	if err != nil {
		return err
	}
	// The details value size: from the damaged superblock, else the most
	// common leaf value size of 24 bytes or more.
	s.detailsVS = thin.DetailsSize
	if hint != nil && hint.Extended() && hint.BlobSize >= 1 && int(hint.BlobSize) <= thin.MaxBlobSize {
		s.detailsVS += int(hint.BlobSize)
	} else if hint == nil {
		count := map[int]int{}
		for b, c := range sc.class {
			if c == clLeaf && sc.vsize[b] >= thin.DetailsSize {
				count[int(sc.vsize[b])]++
			}
		}
		best := 0
		for vs, n := range count {
			if n > best || n == best && vs < s.detailsVS {
				s.detailsVS, best = vs, n
			}
		}
	}
	gens := s.generations(sc, hint)
	if len(gens) == 0 {
		return fmt.Errorf("%w: %s, and no mapping tree with matching device details was found", ErrNoMetadata, problem)
	}
	slices.SortStableFunc(gens, func(a, b *generation) int {
		return cmp.Or(cmp.Compare(b.maxTime, a.maxTime), cmp.Compare(b.maxTid, a.maxTid),
			cmp.Compare(b.newest, a.newest), cmp.Compare(b.newestDetails, a.newestDetails),
			cmp.Compare(a.holes, b.holes), cmp.Compare(a.mismatched, b.mismatched))
	})
	g := gens[0]
	from := fmt.Sprintf("%s, the newest of %d generations found by scanning", g.from, len(gens))
	if len(gens) > 1 {
		r := gens[1]
		from += fmt.Sprintf(" (next: mapping root %d, details root %d, time %d, transaction %d)", r.mapping, r.details, r.maxTime, r.maxTid)
	}
	s.rep.Superblock.MappingRoot, s.rep.Superblock.DetailsRoot, s.rep.Superblock.From = g.mapping, g.details, from

	// The superblock the salvage works from.
	sb := superblock.Superblock{Magic: superblock.Magic, Version: superblock.Version,
		DataMappingRoot: g.mapping, DeviceDetailsRoot: g.details}
	if hint != nil {
		sb.Version = hint.Version
		sb.DataBlockSize = hint.DataBlockSize
		sb.DataSpaceMapRoot = hint.DataSpaceMapRoot
		if s.detailsVS > thin.DetailsSize {
			sb.IncompatFlags = superblock.IncompatBlobs
			sb.BlobSize, sb.IndexBytes, sb.NextThinID = hint.BlobSize, hint.IndexBytes, hint.NextThinID
		}
	} else if s.detailsVS > thin.DetailsSize {
		sb.IncompatFlags = superblock.IncompatBlobs
		sb.BlobSize = uint32(s.detailsVS - thin.DetailsSize)
		s.infer("blob_size", uint64(sb.BlobSize), "the value size of the device-details leaves")
		s.note("the blob index width is not recorded anywhere readable: the salvaged pool has no blob index")
	}
	// Time: at least every time the generation records.
	sb.Time = g.maxTime
	switch {
	case g.time != nil:
		sb.Time = max(sb.Time, *g.time)
	case hint != nil && hint.Time >= g.maxTime:
		sb.Time = hint.Time
		s.infer("time", uint64(sb.Time), "the damaged superblock (not below any time the metadata records)")
	default:
		s.infer("time", uint64(sb.Time), "the largest time in the mappings and device details")
	}
	switch {
	case g.tid != nil:
		sb.TransactionID = *g.tid
	case hint != nil && hint.TransactionID > g.maxTid:
		sb.TransactionID = hint.TransactionID
		s.infer("transaction_id", sb.TransactionID, "the damaged superblock (above every device's transaction id)")
	default:
		sb.TransactionID = g.maxTid + 1
		s.infer("transaction_id", sb.TransactionID, "one more than the largest transaction id in the device details")
	}
	if !thin.ValidDataBlockSize(sb.DataBlockSize) {
		sb.DataBlockSize = 0
		for _, b := range sc.superblocks {
			if c, err := superblock.Read(s.r, b, math.MaxUint32); err == nil && thin.ValidDataBlockSize(c.DataBlockSize) {
				sb.DataBlockSize = c.DataBlockSize
				s.infer("data_block_size", uint64(c.DataBlockSize), fmt.Sprintf("the superblock copy at block %d", b))
				break
			}
		}
	} else {
		s.infer("data_block_size", uint64(sb.DataBlockSize), "the damaged superblock (it never changes after format)")
	}
	if sb.DataBlockSize == 0 && s.opts.DataBlockSize == nil {
		return ErrNeedDataBlockSize
	}
	s.sb = sb
	s.fieldsFrom(&sb)
	if s.ext && s.indexB == 0 && hint != nil {
		s.indexB = int(hint.IndexBytes)
	}
	return nil
}

// generations finds the candidate pairs of roots.
func (s *salvager) generations(sc *scan, hint *superblock.Superblock) []*generation {
	topLeaf := make(map[uint64]bool)
	for _, es := range sc.top {
		for _, e := range es {
			topLeaf[e.leaf] = true
		}
	}
	detailsLeaf := make(map[uint64]bool)
	for _, es := range s.detailsOf(s.detailsVS) {
		for _, e := range es {
			detailsLeaf[e.leaf] = true
		}
	}
	// A tree all of whose leaves are of the given set; its keys and the
	// largest node block.
	treeOf := func(root uint64, vs int, leafOK map[uint64]bool) (ids []uint64, newest uint64, ok bool) {
		ok = true
		s.walkTree(root, vs, 0, math.MaxUint64, visitor{
			node: func(b uint64, _ btree.Node) { newest = max(newest, b) },
			leaf: func(b uint64, n btree.Node, _ bool, _, _ uint64) {
				if !leafOK[b] {
					ok = false
				}
				for i := range n.NrEntries() {
					ids = append(ids, n.Key(i))
				}
			},
			hole: func(_, _, _ uint64, _ error) { ok = false },
		})
		slices.Sort(ids)
		return ids, newest, ok
	}
	type rootInfo struct {
		root, newest uint64
		ids          []uint64
	}
	var tops, dets []rootInfo
	for b, c := range sc.class {
		if (c != clInternal && c != clLeaf) || sc.referenced.has(uint64(b)) {
			continue
		}
		if c == clInternal || sc.vsize[b] == thin.MappingValueSize {
			if ids, nb, ok := treeOf(uint64(b), thin.MappingValueSize, topLeaf); ok && len(ids) > 0 {
				tops = append(tops, rootInfo{uint64(b), nb, ids})
			}
		}
		if c == clInternal || int(sc.vsize[b]) == s.detailsVS {
			if ids, nb, ok := treeOf(uint64(b), s.detailsVS, detailsLeaf); ok && len(ids) > 0 {
				dets = append(dets, rootInfo{uint64(b), nb, ids})
			}
		}
	}
	var gens []*generation
	seen := make(map[[2]uint64]bool)
	add := func(m, d uint64, from string, tid *uint64, time *uint32) {
		if seen[[2]uint64{m, d}] {
			return
		}
		seen[[2]uint64{m, d}] = true
		g := &generation{mapping: m, details: d, from: from, tid: tid, time: time}
		s.evaluate(g)
		if len(g.ids) > 0 || g.holes == 0 {
			gens = append(gens, g)
		}
	}
	if hint != nil {
		add(hint.DataMappingRoot, hint.DeviceDetailsRoot, "the damaged superblock's roots", nil, nil)
	}
	for _, b := range sc.superblocks {
		if b == superblock.Location {
			continue
		}
		c, err := superblock.Read(s.r, b, math.MaxUint32)
		if err != nil {
			continue
		}
		tid, t := c.TransactionID, c.Time
		add(c.DataMappingRoot, c.DeviceDetailsRoot, fmt.Sprintf("the superblock copy at block %d (a metadata snapshot, transaction %d)", b, tid), &tid, &t)
	}
	for _, t := range tops {
		for _, d := range dets {
			if slices.Equal(t.ids, d.ids) {
				add(t.root, d.root, fmt.Sprintf("unreferenced roots (mapping %d, details %d)", t.root, d.root), nil, nil)
			}
		}
	}
	return gens
}

// evaluate walks a generation's trees and records what ranks it.
func (s *salvager) evaluate(g *generation) {
	hole := func(_, _, _ uint64, _ error) { g.holes++ }
	var roots, idRoots []uint64
	mapped := make(map[uint64]uint64)
	s.walkTree(g.mapping, thin.MappingValueSize, 0, math.MaxUint64, visitor{
		node: func(b uint64, _ btree.Node) { g.newest = max(g.newest, b) },
		leaf: func(_ uint64, n btree.Node, _ bool, _, _ uint64) {
			for i := range n.NrEntries() {
				g.ids = append(g.ids, n.Key(i))
				roots = append(roots, n.Uint64Value(i))
				idRoots = append(idRoots, n.Uint64Value(i))
			}
		},
		hole: hole,
	})
	var dids []uint64
	s.walkTree(g.details, s.detailsVS, 0, math.MaxUint64, visitor{
		node: func(b uint64, _ btree.Node) { g.newestDetails = max(g.newestDetails, b) },
		leaf: func(_ uint64, n btree.Node, _ bool, _, _ uint64) {
			for i := range n.NrEntries() {
				dids = append(dids, n.Key(i))
				d := thin.DecodeDetails(n.Value(i))
				mapped[n.Key(i)] = d.MappedBlocks
				g.maxTid = max(g.maxTid, d.TransactionID)
				g.maxTime = max(g.maxTime, d.CreationTime, d.SnapshottedTime)
			}
		},
		hole: hole,
	})
	slices.Sort(g.ids)
	slices.Sort(dids)
	if !slices.Equal(g.ids, dids) {
		g.holes++
	}
	slices.Sort(roots)
	if s.rootEval == nil {
		s.rootEval = make(map[uint64]rootEval)
	}
	for _, r := range slices.Compact(roots) {
		e, ok := s.rootEval[r]
		if !ok {
			s.walkTree(r, thin.MappingValueSize, 0, math.MaxUint64, visitor{
				node: func(b uint64, _ btree.Node) { e.newest = max(e.newest, b) },
				leaf: func(_ uint64, n btree.Node, _ bool, _, _ uint64) {
					e.mappings += uint64(n.NrEntries())
					for i := range n.NrEntries() {
						_, t := thin.UnpackBlockTime(n.Uint64Value(i))
						e.maxTime = max(e.maxTime, t)
					}
				},
				hole: func(_, _, _ uint64, _ error) { e.holes++ },
			})
			s.rootEval[r] = e
		}
		g.maxTime = max(g.maxTime, e.maxTime)
		g.holes += e.holes
		g.newest = max(g.newest, e.newest)
	}
	for i, id := range g.ids {
		if i < len(idRoots) && s.rootEval[idRoots[i]].mappings != mapped[id] {
			g.mismatched++
		}
	}
}
