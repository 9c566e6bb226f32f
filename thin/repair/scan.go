package repair

import (
	"errors"
	"io"
	"slices"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// blockClass is what the scan found in a block.
type blockClass uint8

const (
	clNone       blockClass = iota // zero, unknown, or damaged beyond recognition
	clSuperblock                   // a valid superblock (block 0 or a snapshot copy)
	clInternal                     // a sound internal node
	clLeaf                         // a sound leaf
	clUnsorted                     // a leaf with valid checksum and header, keys out of order
	clBadNode                      // node checksum, but wrong location or header
	clBitmap
	clIndex
)

// scan is what reading every block of the device found.
type scan struct {
	class []blockClass
	vsize []uint16 // value size of every node (internal: 8)
	// internals lists the sound internal nodes, in block order.
	internals []uint64
	// referenced marks blocks some sound internal node references.
	referenced bitset
	// top maps a device id to the roots recorded for it by every sound
	// top-level leaf found (older copies included), with the leaf.
	top map[uint64][]topEntry
	// details holds, per device id, every details value found in a sound
	// details leaf (older copies included); detailsVS is their size.
	details   map[uint64][]detailsEntry
	detailsVS int
	// wide lists the sound leaves whose values are 24 bytes or more
	// (details leaves, stock or extended).
	wide []uint64
	// superblocks lists the valid superblocks (and snapshot copies).
	superblocks []uint64
	rep         ScanReport
}

type topEntry struct {
	root, leaf uint64
}

type detailsEntry struct {
	value []byte
	leaf  uint64
}

// scanChunk is how many blocks the scan reads at once (1 MiB).
const scanChunk = 256

// doScan reads every block of the device and classifies it.
func (s *salvager) doScan() (*scan, error) {
	if s.sc != nil {
		return s.sc, nil
	}
	sc := &scan{class: make([]blockClass, s.n), vsize: make([]uint16, s.n), referenced: newBitset(s.n),
		top: make(map[uint64][]topEntry)}
	buf := make([]byte, scanChunk*transaction.BlockSize)
	var leaves8 []uint64
	s.m.Phase("scan")
	for base := uint64(0); base < s.n; base += scanChunk {
		cnt := min(uint64(scanChunk), s.n-base)
		if err := s.m.Add(cnt); err != nil {
			return nil, err
		}
		chunk := buf[:cnt*transaction.BlockSize]
		k, err := s.ra.ReadAt(chunk, int64(base)*transaction.BlockSize)
		if k < len(chunk) && (err == nil || errors.Is(err, io.EOF)) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			// Classify what was read; the rest is unreadable.
			cnt = uint64(k) / transaction.BlockSize
		}
		for i := range cnt {
			b := base + i
			blk := chunk[i*transaction.BlockSize : (i+1)*transaction.BlockSize]
			c := classify(blk, b)
			sc.class[b] = c
			switch c {
			case clInternal:
				n := btree.Node(blk)
				sc.vsize[b] = btree.InternalValueSize
				sc.internals = append(sc.internals, b)
				for j := range n.NrEntries() {
					if ch := n.Uint64Value(j); ch < s.n {
						sc.referenced.set(ch)
					}
				}
			case clLeaf, clUnsorted:
				n := btree.Node(blk)
				vs := n.ValueSize()
				sc.vsize[b] = uint16(vs)
				if c == clLeaf && vs == thin.MappingValueSize && valuesBelow(n, s.n) {
					leaves8 = append(leaves8, b)
				}
				if c == clLeaf && vs >= thin.DetailsSize {
					sc.wide = append(sc.wide, b)
				}
			}
		}
		if err != nil {
			break
		}
	}
	for b, c := range sc.class {
		switch c {
		case clSuperblock:
			sc.rep.Superblocks++
			sc.superblocks = append(sc.superblocks, uint64(b))
		case clInternal, clLeaf:
			sc.rep.Nodes++
		case clUnsorted:
			sc.rep.Nodes++
			sc.rep.Unsorted++
		case clBadNode:
			sc.rep.BadNodes++
		case clBitmap:
			sc.rep.Bitmaps++
		case clIndex:
			sc.rep.Indexes++
		default:
			sc.rep.Other++
		}
	}
	// A top-level leaf's values are roots of mapping trees: nodes whose
	// values are 8 bytes.
	nb := make([]byte, transaction.BlockSize)
	for _, b := range leaves8 {
		if err := s.readNodeBlock(b, nb); err != nil {
			continue
		}
		n := btree.Node(nb)
		top := true
		for i := range n.NrEntries() {
			v := n.Uint64Value(i)
			if c := sc.class[v]; (c != clInternal && c != clLeaf && c != clUnsorted) || sc.vsize[v] != thin.MappingValueSize {
				top = false
				break
			}
		}
		if !top {
			continue
		}
		for i := range n.NrEntries() {
			id := n.Key(i)
			sc.top[id] = append(sc.top[id], topEntry{root: n.Uint64Value(i), leaf: b})
		}
	}
	s.sc = sc
	return sc, nil
}

// valuesBelow reports whether every value of an 8-byte-value node is a
// block number below n (and the node is not empty).
func valuesBelow(n btree.Node, nr uint64) bool {
	if n.NrEntries() == 0 {
		return false
	}
	for i := range n.NrEntries() {
		if n.Uint64Value(i) >= nr {
			return false
		}
	}
	return true
}

// classify says what block blk, read from location b, holds.
func classify(blk []byte, b uint64) blockClass {
	salt, ok := transaction.SaltOf(blk)
	if !ok {
		return clNone
	}
	located := transaction.StoredBlocknr(blk) == b
	switch salt {
	case transaction.SaltSuperblock:
		if located && superblock.Decode(blk).Magic == superblock.Magic {
			return clSuperblock
		}
	case transaction.SaltNode:
		if !located {
			return clBadNode
		}
		if err := btree.Validator.Check(blk, b); err != nil {
			if !errors.Is(err, btree.ErrNodeFlags) {
				return clBadNode
			}
			blk = slices.Clone(blk)
			if !typeFlags(blk) || btree.Validator.Check(blk, b) != nil {
				return clBadNode
			}
		}
		n := btree.Node(blk)
		// Leaves are taken at their own value size.
		if err := btree.CheckNode(n, b, btree.RootPlace(n.ValueSize()), 0); err != nil {
			if errors.Is(err, btree.ErrKeyOrder) && n.IsLeaf() && !repeats(n) {
				return clUnsorted
			}
			return clBadNode
		}
		if n.IsInternal() {
			return clInternal
		}
		return clLeaf
	case transaction.SaltBitmap:
		if located {
			return clBitmap
		}
	case transaction.SaltIndex:
		if located {
			return clIndex
		}
	}
	return clNone
}

// parentsOf returns, for each block of targets, the sound internal nodes
// that reference it, reading the internal nodes again.
func (s *salvager) parentsOf(targets map[uint64]bool) map[uint64][]uint64 {
	ps := make(map[uint64][]uint64)
	if len(targets) == 0 {
		return ps
	}
	buf := make([]byte, transaction.BlockSize)
	for _, b := range s.sc.internals {
		if err := s.readNodeBlock(b, buf); err != nil {
			continue
		}
		n := btree.Node(buf)
		for i := range n.NrEntries() {
			if ch := n.Uint64Value(i); targets[ch] {
				if l := ps[ch]; len(l) == 0 || l[len(l)-1] != b {
					ps[ch] = append(l, b)
				}
			}
		}
	}
	return ps
}

// detailsOf returns every details value of vs bytes found in a sound leaf,
// by device id (gathered on first use for that size).
func (s *salvager) detailsOf(vs int) map[uint64][]detailsEntry {
	sc := s.sc
	if sc.details != nil && sc.detailsVS == vs {
		return sc.details
	}
	sc.details, sc.detailsVS = make(map[uint64][]detailsEntry), vs
	nb := make([]byte, transaction.BlockSize)
	for _, b := range sc.wide {
		if int(sc.vsize[b]) != vs {
			continue
		}
		if err := s.readNodeBlock(b, nb); err != nil {
			continue
		}
		n := btree.Node(nb)
		for i := range n.NrEntries() {
			sc.details[n.Key(i)] = append(sc.details[n.Key(i)], detailsEntry{value: slices.Clone(n.Value(i)), leaf: b})
		}
	}
	return sc.details
}
