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
// The entries buffer holds, in order, the node last emitted but not yet
// passed on (if it is one of ours: "held"), then the pending entries.
// Holding one node back lets a final short run be merged with it instead
// of becoming an underfull leaf.

var (
	leafMax  = btree.MaxEntries(thin.MappingValueSize)
	halfFull = leafMax / 2
)

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
	bd   *builder
	k, v []uint64 // entries: [lo, lo+h) the held node if heldOwn, then pending
	lo   int
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
	if a.k == nil {
		a.k = make([]uint64, 0, 4*leafMax)
		a.v = make([]uint64, 0, 4*leafMax)
	}
	a.k, a.v = a.k[:0], a.v[:0]
	a.lo, a.h, a.held, a.nOut, a.out = 0, 0, heldNone, 0, out
}

func (a *leaves) pending() int { return len(a.k) - a.lo - a.h }

func (a *leaves) heldEntries() int {
	if a.held == heldShared {
		return a.shared.n
	}
	return a.h
}

// room makes space for n more entries at the end of the buffer.
func (a *leaves) room(n int) {
	if len(a.k)+n <= cap(a.k) {
		return
	}
	live := len(a.k) - a.lo
	if live+n > cap(a.k) {
		k := make([]uint64, live, live+n+leafMax)
		v := make([]uint64, live, live+n+leafMax)
		copy(k, a.k[a.lo:])
		copy(v, a.v[a.lo:])
		a.k, a.v, a.lo = k, v, 0
		return
	}
	copy(a.k, a.k[a.lo:])
	copy(a.v, a.v[a.lo:])
	a.k, a.v, a.lo = a.k[:live], a.v[:live], 0
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
		a.room(int(m))
		k, v := a.k, a.v
		for j := range m {
			k = append(k, origin+j)
			v = append(v, thin.PackBlockTime(data+j, t))
		}
		a.k, a.v = k, v
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
		r, err := a.bd.writeLeaf(a.k[a.lo:a.lo+a.h], a.v[a.lo:a.lo+a.h])
		if err != nil {
			return err
		}
		a.lo += a.h
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
	live := len(a.k) - a.lo
	k := make([]uint64, 0, max(cap(a.k), len(keys)+live+leafMax))
	v := make([]uint64, 0, cap(k))
	k = append(append(k, keys...), a.k[a.lo:]...)
	v = append(append(v, vals...), a.v[a.lo:]...)
	a.k, a.v, a.lo = k, v, 0
	return nil
}

// copyLeaf appends a shared leaf's entries to the pending ones.
func (a *leaves) copyLeaf(r leafRef) error {
	keys, vals, err := a.bd.copyLeaf(r)
	if err != nil {
		return err
	}
	a.room(len(keys))
	a.k = append(a.k, keys...)
	a.v = append(a.v, vals...)
	return nil
}
