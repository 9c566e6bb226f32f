package transaction

import (
	"sync"
	"sync/atomic"
)

// Pins keep what open views of earlier commits can reach out of reach of
// the allocator, as bbolt keeps the pages freed after its oldest open read
// transaction out of its freelist.
//
// The space map already refuses blocks that were in use at the last
// commit. A view of an older commit p can also reach blocks that commits
// after p freed, so the metadata space map records, at each commit k, the
// blocks that k freed (RecordFreed), and the manager keeps those records
// while a pin older than k is open. The pinned set is the union of the
// records of every commit after the oldest open pin: it holds every block
// used at any pinned commit and free now (and, conservatively, blocks used
// only at commits between pins).

// A Pin holds the blocks of one commit out of reach of the allocator until
// Release. It is safe for concurrent use.
type Pin struct {
	ps       *pinSet
	seq      uint64
	released atomic.Bool
}

type pinSet struct {
	mu    sync.Mutex
	seq   uint64         // commits made through the manager
	open  map[uint64]int // commit → open pins
	freed []freedAt      // records of commits after the oldest pin, in order
	gen   atomic.Uint64  // changes whenever the pinned set may have changed
}

type freedAt struct {
	seq    uint64
	blocks []uint64
}

func newPinSet() *pinSet { return &pinSet{open: make(map[uint64]int)} }

// Pin pins the last commit (the one the manager was opened on, before its
// first commit): until the pin is released, no block that commit uses is
// handed out by the metadata space map, so a reader of that commit keeps
// reading exactly what it held.
func (m *Manager) Pin() *Pin {
	ps := m.pins
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.open[ps.seq]++
	return &Pin{ps: ps, seq: ps.seq}
}

// Commit returns the number of the commit the pin holds: commits are
// counted from 0, the one the manager was opened on.
func (p *Pin) Commit() uint64 { return p.seq }

// Clone returns a second pin of the same commit, released on its own. It
// returns nil if p was released.
func (p *Pin) Clone() *Pin {
	ps := p.ps
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p.released.Load() {
		return nil
	}
	ps.open[p.seq]++
	return &Pin{ps: ps, seq: p.seq}
}

// Release drops the pin. Releasing a pin twice is harmless.
func (p *Pin) Release() {
	if p == nil || p.released.Swap(true) {
		return
	}
	ps := p.ps
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.open[p.seq]--; ps.open[p.seq] == 0 {
		delete(ps.open, p.seq)
	}
	ps.prune()
}

// oldest returns the oldest pinned commit.
func (ps *pinSet) oldest() (uint64, bool) {
	var o uint64
	ok := false
	for s := range ps.open {
		if !ok || s < o {
			o, ok = s, true
		}
	}
	return o, ok
}

// prune drops the records no open pin needs.
func (ps *pinSet) prune() {
	o, ok := ps.oldest()
	i := 0
	for i < len(ps.freed) && (!ok || ps.freed[i].seq <= o) {
		i++
	}
	if i > 0 {
		ps.freed = append(ps.freed[:0], ps.freed[i:]...)
		ps.gen.Add(1)
	}
}

// RecordFreed records blocks that the commit just made freed (they were in
// use at the commit before). The metadata space map calls it once per
// commit, after the superblock is written; the record is kept only while a
// pin of an older commit is open.
func (m *Manager) RecordFreed(blocks []uint64) {
	ps := m.pins
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if o, ok := ps.oldest(); !ok || o >= ps.seq || len(blocks) == 0 {
		return
	}
	ps.freed = append(ps.freed, freedAt{seq: ps.seq, blocks: append([]uint64(nil), blocks...)})
	ps.gen.Add(1)
}

// PinGeneration changes whenever the set of pinned blocks may have
// changed, so a space map can cache what it derives from PinnedBlocks.
func (m *Manager) PinGeneration() uint64 { return m.pins.gen.Load() }

// PinnedBlocks calls fn for every block pinned by an open view (a block may
// come more than once), and returns the generation the set belongs to.
func (m *Manager) PinnedBlocks(fn func(b uint64)) uint64 {
	ps := m.pins
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, f := range ps.freed {
		for _, b := range f.blocks {
			fn(b)
		}
	}
	return ps.gen.Load()
}

// OpenPins returns the number of pins not yet released.
func (m *Manager) OpenPins() int {
	ps := m.pins
	ps.mu.Lock()
	defer ps.mu.Unlock()
	n := 0
	for _, c := range ps.open {
		n += c
	}
	return n
}

// committed counts a commit: pins taken from now on hold it.
func (ps *pinSet) committed() {
	ps.mu.Lock()
	ps.seq++
	ps.mu.Unlock()
}
