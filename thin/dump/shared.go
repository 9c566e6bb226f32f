package dump

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/transaction"
)

// ErrUneven means the leaves of a mapping tree are not all at the depth
// of its leftmost leaf.
var ErrUneven = errors.New("mapping tree leaves at different depths")

// dump110 writes the pool in thin_dump 1.1.0's form (docs/DUMP.md):
//
//  1. the devices to dump are those of the mapping tree's top level
//     (those of the details tree with SkipMappings), selected by
//     opts.DevIDs;
//  2. each device's tree is walked down to its lowest internal nodes,
//     listing its leaves in key order without reading them;
//  3. the leaf lists of all selected devices are cut into atomic runs
//     (sharedRuns), and every run that more than one place uses becomes a
//     definition, named after the block of its first leaf;
//  4. the definitions are written in order of their names, then the
//     devices, each as its leaves with every shared run replaced by a
//     reference. Mappings are merged into ranges within a definition or
//     within the leaves between two references, never across them.
func dump110(w io.Writer, p *thin.Pool, opts *Options, e sharingEmitter, details map[uint64]thin.Device, m *meter.Meter) error {
	var secs []*section
	if opts.SkipMappings {
		ids := make([]uint64, 0, len(details))
		for id := range details {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			d := details[id]
			secs = append(secs, &section{name: fmt.Sprintf("device %d", id),
				begin: e.beginDevice(nil, id, d.Details, nil), end: e.endDevice(nil)})
		}
	} else {
		var err error
		if secs, err = sharedSections(p, opts, e, details, m); err != nil {
			return err
		}
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.Write(e.beginSuperblock(nil, opts.header(p)))
	if err := writeSections(w, bw, e, p, secs, m); err != nil {
		bw.Flush()
		return err
	}
	bw.Write(e.endSuperblock(nil))
	return bw.Flush()
}

// sharedSections works out the definitions and devices of a 1.1.0 dump.
func sharedSections(p *thin.Pool, opts *Options, e sharingEmitter, details map[uint64]thin.Device, m *meter.Meter) ([]*section, error) {
	var devs []thin.DeviceRoot
	for dr, err := range p.DeviceRoots() {
		if err != nil {
			return nil, err
		}
		if !opts.selected(dr.ID) {
			continue
		}
		if _, ok := details[dr.ID]; !ok {
			return nil, fmt.Errorf("mappings present for device %d, but it is not in the device details tree: %w", dr.ID, thin.ErrDetailsMismatch)
		}
		devs = append(devs, dr)
	}
	r := p.DeviceTree(0).R
	lists := make(map[uint64][]uint64)     // root → its leaves
	places := make(map[uint64]btree.Place) // leaf → where a parent put it first
	g := newLeafGraph()
	for _, d := range devs {
		if err := m.Err(); err != nil {
			return nil, err
		}
		ls, ok := lists[d.Root]
		if !ok {
			var err error
			if ls, err = listLeaves(r, d.Root, places); err != nil {
				return nil, fmt.Errorf("device %d: %w", d.ID, err)
			}
			lists[d.Root] = ls
		}
		g.sequence(ls)
	}
	runs, err := g.runs()
	if err != nil {
		return nil, err
	}
	var secs []*section
	for _, ru := range runs {
		if ru.shared {
			secs = append(secs, &section{name: fmt.Sprintf("shared leaves %d", ru.leaves[0]),
				begin: e.beginDef(nil, ru.leaves[0]), end: e.endDef(nil),
				parts: []part{{kind: partLeaves, leaves: ru.leaves}}})
		}
	}
	for _, d := range devs {
		det := details[d.ID]
		secs = append(secs, &section{name: fmt.Sprintf("device %d", d.ID),
			begin: e.beginDevice(nil, d.ID, det.Details, nil), end: e.endDevice(nil),
			parts: g.parts(lists[d.Root], runs)})
	}
	for _, s := range secs {
		for i := range s.parts {
			s.parts[i].places = places
		}
	}
	return secs, nil
}

// listLeaves returns the leaves of the mapping tree at root in key order,
// reading only its internal nodes (and the leftmost leaf, which gives the
// depth). Every node read is checked as a walk checks it (btree.Walker).
// The place of each leaf not yet in places is recorded there, for the
// leaf's own check when it is read.
func listLeaves(r btree.BlockReader, root uint64, places map[uint64]btree.Place) ([]uint64, error) {
	w := &btree.Walker{R: r, ValueSize: thin.MappingValueSize, Cached: true}
	w.Reset(root)
	depth := -1
	for depth < 0 {
		_, n, p, ok := w.Next()
		if !ok {
			if err := w.Err(); err != nil {
				return nil, err
			}
			return nil, nil // unreachable: a sound root is returned
		}
		if n.IsLeaf() {
			depth = p.Depth
		}
	}
	if depth == 0 {
		if _, ok := places[root]; !ok {
			places[root] = btree.RootPlace(thin.MappingValueSize)
		}
		return []uint64{root}, nil
	}
	var leaves []uint64
	w.Reset(root)
	w.Enter = func(b uint64, p btree.Place) bool {
		if p.Depth < depth {
			return true
		}
		leaves = append(leaves, b)
		if _, ok := places[b]; !ok {
			places[b] = p
		}
		return false
	}
	for {
		b, n, p, ok := w.Next()
		if !ok {
			break
		}
		if !n.IsInternal() {
			return nil, transaction.Corruptf(b, btree.Kind, ErrUneven, "a leaf %d levels above the leftmost leaf's depth", depth-p.Depth)
		}
	}
	if err := w.Err(); err != nil {
		return nil, err
	}
	limit := r.NrBlocks()
	for _, b := range leaves {
		if b >= limit {
			return nil, transaction.Corruptf(b, btree.Kind, transaction.ErrOutOfRange, "a leaf beyond the device's %d blocks", limit)
		}
	}
	return leaves, nil
}

// A leafGraph records the order in which devices use leaves, to cut their
// leaf lists into the atomic runs of thin_dump 1.1.0: maximal sequences
// of leaves that every device using any leaf of the run uses whole, in
// the same order. A run used by more than one device (or twice) is
// shared. The rules, as 1.1.0 applies them:
//
//   - a leaf that starts a device's list, or follows a different leaf
//     than where it was first seen, starts a run (is a head);
//   - a leaf that ends a list, has other than one successor, or whose
//     successor is a head, ends a run (is a tail), and every successor of
//     a tail is a head;
//   - a head is shared if it was made a head more than once, and a leaf
//     is shared if the same leaf was seen to follow the same predecessor
//     twice.
//
// A run is a head and the successors up to the first tail.
type leafGraph struct {
	index map[uint64]int32 // block → entry
	ents  []leafEntry
	prev  int32 // entry of the previous leaf in the current list, or -1
}

type leafEntry struct {
	block   uint64
	next    []uint64 // successors seen, ascending
	back    uint64   // the predecessor it was first seen after
	hasBack bool
	head    bool
	tail    bool
	shared  bool
	run     int32 // index of the run it heads, once cut
}

// newLeafGraph returns an empty graph. Its index is a map: it holds the
// leaves the trees reach, whatever the size of the device (a slice of
// the device's blocks made a huge sparse one run out of memory).
func newLeafGraph() *leafGraph {
	return &leafGraph{index: make(map[uint64]int32), prev: -1}
}

func (g *leafGraph) entry(b uint64) int32 {
	if i, ok := g.index[b]; ok {
		return i
	}
	g.ents = append(g.ents, leafEntry{block: b})
	g.index[b] = int32(len(g.ents) - 1)
	return int32(len(g.ents) - 1)
}

// markHead makes entry i a head; one made a head twice is shared.
func (g *leafGraph) markHead(i int32) {
	e := &g.ents[i]
	if e.head {
		e.shared = true
	}
	e.head = true
}

// sequence records one device's leaves, in order.
func (g *leafGraph) sequence(leaves []uint64) {
	g.end()
	for _, b := range leaves {
		i := g.entry(b)
		if g.prev < 0 {
			g.markHead(i)
		} else {
			p := &g.ents[g.prev]
			j, found := slices.BinarySearch(p.next, b)
			if found {
				g.ents[i].shared = true
			} else {
				p.next = slices.Insert(p.next, j, b)
			}
			e := &g.ents[i]
			if !e.hasBack {
				e.back, e.hasBack = p.block, true
			} else if e.back != p.block {
				g.markHead(i)
			}
		}
		g.prev = i
	}
	g.end()
}

// end closes the current list: its last leaf is a tail.
func (g *leafGraph) end() {
	if g.prev >= 0 {
		g.ents[g.prev].tail = true
	}
	g.prev = -1
}

// leafRun is one atomic run.
type leafRun struct {
	leaves []uint64
	shared bool
}

// runs cuts the recorded lists into runs, in order of their first leaf's
// block.
func (g *leafGraph) runs() ([]leafRun, error) {
	g.end()
	// Further tails, decided on the heads as they are now.
	var tails []int32
	for i := range g.ents {
		e := &g.ents[i]
		if len(e.next) != 1 || g.ents[g.index[e.next[0]]].head {
			tails = append(tails, int32(i))
		}
	}
	for _, i := range tails {
		g.ents[i].tail = true
	}
	// Every successor of a tail is a head.
	for i := range g.ents {
		if !g.ents[i].tail {
			continue
		}
		for _, s := range g.ents[i].next {
			g.markHead(g.index[s])
		}
	}
	var heads []int32
	for i := range g.ents {
		if g.ents[i].head {
			heads = append(heads, int32(i))
		}
	}
	slices.SortFunc(heads, func(a, b int32) int {
		return cmpUint64(g.ents[a].block, g.ents[b].block)
	})
	runs := make([]leafRun, 0, len(heads))
	for _, h := range heads {
		ru := leafRun{shared: g.ents[h].shared}
		for i, n := h, 0; ; n++ {
			if n > len(g.ents) {
				return nil, transaction.Corruptf(g.ents[h].block, btree.Kind, btree.ErrDepth, "mapping trees share leaves in a cycle")
			}
			e := &g.ents[i]
			ru.leaves = append(ru.leaves, e.block)
			if e.tail {
				break
			}
			i = g.index[e.next[0]]
		}
		g.ents[h].run = int32(len(runs))
		runs = append(runs, ru)
	}
	return runs, nil
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parts turns one device's leaves into what its dump holds: its unshared
// runs as leaves, its shared runs as references.
func (g *leafGraph) parts(leaves []uint64, runs []leafRun) []part {
	var ps []part
	add := func(ls []uint64) {
		if n := len(ps); n > 0 && ps[n-1].kind == partLeaves {
			ps[n-1].leaves = append(ps[n-1].leaves, ls...)
			return
		}
		ps = append(ps, part{kind: partLeaves, leaves: append([]uint64(nil), ls...)})
	}
	for i := 0; i < len(leaves); {
		e := &g.ents[g.index[leaves[i]]]
		if !e.head {
			add(leaves[i : i+1])
			i++
			continue
		}
		ru := runs[e.run]
		if ru.shared {
			ps = append(ps, part{kind: partRef, ref: ru.leaves[0]})
		} else {
			add(ru.leaves)
		}
		i += len(ru.leaves)
	}
	return ps
}
