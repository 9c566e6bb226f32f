package restore

import (
	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
)

// Leaf-level assembly of one mapping tree (a device's, or a def's leaves).
//
// Leaves are packed full, and the last two of a run are balanced, so every
// leaf that is not the root holds at least half its capacity: thin_check
// rejects a non-root node with fewer than a third. Shared leaves (from a
// <def>) are used by reference when they fit that rule; when too few
// mappings precede or follow them to fill a leaf of their own, the shared
// leaf's mappings are copied into a new leaf instead, as thin_restore 1.x
// does (FORMAT.md §8.3).
//
// The entries are held as spans (a range of mappings to consecutive data
// blocks at one time, as a range element gives them), not one by one: a
// leaf's entries are encoded only by the leaf writer, on its goroutine
// (leafwriter.go), so the builder's cost is per element and per leaf,
// not per mapping. The spans hold, in order, the entries of the node last
// emitted but not yet passed on (if it is one of ours: "held"), then the
// pending entries. Holding one node back lets a final short run be merged
// with it instead of becoming an underfull leaf.

var (
	leafMax  = btree.MaxEntries(thin.MappingValueSize)
	halfFull = leafMax / 2
)

// span is n entries: virtual blocks origin..origin+n-1 mapped to data
// blocks data..data+n-1 at time t.
type span struct {
	origin, data uint64
	n, t         uint32
}

// leafRef describes a written leaf.
type leafRef struct {
	block       uint64
	first, last uint64 // its first and last keys
	n           int    // entries
}

// held node kinds.
const (
	heldNone = iota
	heldOwn
	heldShared
)

type leaves struct {
	bd *builder
	// rs[lo:] are the live spans: the held node's h entries first if
	// heldOwn, then the pending ones; live counts their entries.
	rs   []span
	lo   int
	live int
	h    int
	held int
	// shared is the held node if heldShared.
	shared leafRef
	// nOut counts nodes passed on.
	nOut int
	// out passes a finished node on; shared nodes were built before.
	out func(r leafRef, shared bool) error
}

func (a *leaves) reset(out func(leafRef, bool) error) {
	if a.rs == nil {
		a.rs = make([]span, 0, 4*leafMax)
	}
	a.rs = a.rs[:0]
	a.lo, a.live, a.h, a.held, a.nOut, a.out = 0, 0, 0, heldNone, 0, out
}

func (a *leaves) pending() int { return a.live - a.h }

func (a *leaves) heldEntries() int {
	if a.held == heldShared {
		return a.shared.n
	}
	return a.h
}

// push appends span r (r.n > 0) to the pending entries.
func (a *leaves) push(r span) {
	if len(a.rs) == cap(a.rs) && a.lo > 0 {
		// Reuse the room of the spans taken: the live ones are few.
		n := copy(a.rs, a.rs[a.lo:])
		a.rs, a.lo = a.rs[:n], 0
	}
	a.rs = append(a.rs, r)
	a.live += int(r.n)
}

// take moves the first n live entries (n > 0, at most live), as spans,
// onto the end of dst and returns it.
func (a *leaves) take(n int, dst []span) []span {
	a.live -= n
	for n > 0 {
		r := &a.rs[a.lo]
		if int(r.n) <= n {
			dst = append(dst, *r)
			n -= int(r.n)
			a.lo++
			continue
		}
		k := uint32(n)
		dst = append(dst, span{origin: r.origin, data: r.data, n: k, t: r.t})
		r.origin += uint64(k)
		r.data += uint64(k)
		r.n -= k
		n = 0
	}
	if a.lo == len(a.rs) {
		a.rs, a.lo = a.rs[:0], 0
	}
	return dst
}

// pushRange adds mappings origin..origin+n-1 to data blocks data.. at
// time t. Their data references are counted as their leaves are written
// (leafwriter.go), so a huge range on a small metadata device touches no
// more counts than fit in leaves.
func (a *leaves) pushRange(origin, data, n uint64, t uint32) error {
	if a.nOut == 0 && a.held != heldNone && a.heldEntries() < halfFull {
		if err := a.unshift(); err != nil {
			return err
		}
	}
	a.bd.stats.Mappings += n
	for n > 0 {
		p := a.pending()
		for p >= 2*leafMax {
			if err := a.emitOwn(leafMax); err != nil {
				return err
			}
			p = a.pending()
		}
		m := min(n, uint64(2*leafMax-p))
		a.push(span{origin: origin, data: data, n: uint32(m), t: t})
		origin += m
		data += m
		n -= m
	}
	return nil
}

// pushLeaves adds the leaves of a def.
func (a *leaves) pushLeaves(ls []leafRef) error {
	if len(ls) == 0 {
		return nil
	}
	a.bd.stats.Mappings += uint64(totalEntries(ls))
	if len(ls) == 1 && a.nOut == 0 && a.held == heldNone && a.pending() == 0 {
		// Perhaps the whole tree: keep it whatever its size.
		a.held, a.shared = heldShared, ls[0]
		return nil
	}
	if a.nOut == 0 && a.held != heldNone && a.heldEntries() < halfFull {
		if err := a.unshift(); err != nil {
			return err
		}
	}
	if p := a.pending(); p > 0 && p < halfFull {
		// Too few entries before the def for a leaf: take the def's first
		// leaf's entries to make one.
		if err := a.copyLeaf(ls[0]); err != nil {
			return err
		}
		ls = ls[1:]
		if len(ls) == 0 {
			return nil
		}
	}
	if err := a.emitAll(); err != nil {
		return err
	}
	if len(ls) == 1 && ls[0].n < halfFull {
		return a.copyLeaf(ls[0])
	}
	for _, l := range ls {
		if err := a.commitHeld(); err != nil {
			return err
		}
		a.held, a.shared = heldShared, l
	}
	return nil
}

func totalEntries(ls []leafRef) int {
	n := 0
	for _, l := range ls {
		n += l.n
	}
	return n
}

// complete writes everything left. Nothing is passed on for an empty tree.
func (a *leaves) complete() error {
	if p := a.pending(); p > 0 && p < halfFull && a.held != heldNone {
		if err := a.unshift(); err != nil {
			return err
		}
	}
	if err := a.emitAll(); err != nil {
		return err
	}
	return a.commitHeld()
}

// emitAll turns the pending entries into one node, or two balanced ones.
func (a *leaves) emitAll() error {
	for a.pending() > 2*leafMax {
		if err := a.emitOwn(leafMax); err != nil {
			return err
		}
	}
	switch p := a.pending(); {
	case p == 0:
		return nil
	case p <= leafMax:
		return a.emitOwn(p)
	default:
		if err := a.emitOwn(p / 2); err != nil {
			return err
		}
		return a.emitOwn(p - p/2)
	}
}

// emitOwn passes the held node on and holds the first n pending entries as
// the next node.
func (a *leaves) emitOwn(n int) error {
	if err := a.commitHeld(); err != nil {
		return err
	}
	a.held, a.h = heldOwn, n
	return nil
}

// commitHeld writes the held node if it is ours and passes it on.
func (a *leaves) commitHeld() error {
	switch a.held {
	case heldNone:
		return nil
	case heldOwn:
		r, err := a.bd.writeLeaf(a, a.h)
		if err != nil {
			return err
		}
		a.h, a.held = 0, heldNone
		a.nOut++
		return a.out(r, false)
	default:
		a.held = heldNone
		a.nOut++
		return a.out(a.shared, true)
	}
}

// unshift makes the held node's entries pending again, to be packed with
// what follows. A shared node's entries are copied.
func (a *leaves) unshift() error {
	if a.held == heldOwn {
		a.h, a.held = 0, heldNone
		return nil
	}
	a.held = heldNone
	keys, vals, err := a.bd.copyLeaf(a.shared)
	if err != nil {
		return err
	}
	rs := make([]span, 0, max(cap(a.rs), len(keys)+len(a.rs)-a.lo+leafMax))
	rs = appendEntries(rs, keys, vals)
	rs = append(rs, a.rs[a.lo:]...)
	a.rs, a.lo = rs, 0
	a.live += len(keys)
	return nil
}

// copyLeaf appends a shared leaf's entries to the pending ones.
func (a *leaves) copyLeaf(r leafRef) error {
	keys, vals, err := a.bd.copyLeaf(r)
	if err != nil {
		return err
	}
	for _, r := range appendEntries(nil, keys, vals) {
		a.push(r)
	}
	return nil
}

// appendEntries appends the entries keys[i], vals[i] (packed data block
// and time) to rs as spans, and returns it.
func appendEntries(rs []span, keys, vals []uint64) []span {
	for i, k := range keys {
		b, t := thin.UnpackBlockTime(vals[i])
		if n := len(rs); n > 0 {
			if l := &rs[n-1]; l.t == t && k == l.origin+uint64(l.n) && b == l.data+uint64(l.n) {
				l.n++
				continue
			}
		}
		rs = append(rs, span{origin: k, data: b, n: 1, t: t})
	}
	return rs
}
