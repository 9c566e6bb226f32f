package delta

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/thin/internal/walk"
)

// Kind says how a range of virtual blocks differs between the devices.
type Kind int

const (
	// LeftOnly blocks are mapped by the left device only.
	LeftOnly Kind = iota
	// RightOnly blocks are mapped by the right device only.
	RightOnly
	// Different blocks are mapped by both, to different data blocks.
	Different
	// Same blocks are mapped by both to the same data blocks.
	Same
)

var kindNames = [...]string{"left_only", "right_only", "different", "same"}

// String returns the XML element name thin_delta uses for the kind.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Range is a run of virtual blocks [Begin, Begin+Len) of one kind, mapped
// to consecutive data blocks from LeftData on the left device and from
// RightData on the right one (each meaningful only where that side maps
// the blocks).
type Range struct {
	Kind                Kind
	Begin, Len          uint64
	LeftData, RightData uint64
}

// extent is a run of consecutive virtual blocks mapped to consecutive data
// blocks.
type extent struct {
	v, d, n uint64
}

// Delta is the comparison of two devices, with the superblock fields
// thin_delta prints.
type Delta struct {
	// Time, Transaction and DataBlockSize come from the superblock of the
	// view compared.
	Time          uint32
	Transaction   uint64
	DataBlockSize uint32
	// NrDataBlocks is the data device size of a live view, and 0 for a
	// metadata snapshot (which records no space maps), as in thin_delta.
	NrDataBlocks uint64
	// MetadataSnap is the superblock's metadata-snapshot block, 0 if none.
	MetadataSnap uint64
	// Left and Right are the device ids compared, or the root blocks of
	// the mapping trees compared where LeftRoot or RightRoot is set.
	Left, Right         uint64
	LeftRoot, RightRoot bool

	left, right []extent
}

// ErrNoMappingTree means a device compared has no mapping tree (is not in
// the top level of the mapping tree).
var ErrNoMappingTree = errors.New("unable to find mapping tree")

// Compare reads the mappings of devices left and right of p (a live or
// metadata-snapshot view). As thin_delta does, a live view opens the
// metadata space map first, so a damaged space-map index fails the call.
// Damage in either mapping tree fails it with an error wrapping a
// *transaction.CorruptError; a device missing from the mapping tree fails
// it with ErrNoMappingTree. When ctx is done before the comparison is, it
// stops within a few milliseconds and returns ctx.Err().
func Compare(ctx context.Context, p *thin.Pool, left, right uint64) (*Delta, error) {
	return CompareTrees(ctx, p, Device(left), Device(right))
}

// Tree is one side of a comparison: a device of the pool, or the device
// mapping tree whose root is at a given block (thin_delta 1.1.0's --root1
// and --root2), such as a root a repair scan found or one of an older
// transaction.
type Tree struct {
	id     uint64 // device id, or root block
	isRoot bool
}

// Device is the mapping tree of device id.
func Device(id uint64) Tree { return Tree{id: id} }

// RootAt is the device mapping tree whose root is block b.
func RootAt(b uint64) Tree { return Tree{id: b, isRoot: true} }

// CompareTrees is Compare for two trees named by device or by root block.
// A root block that is not the root of a device mapping tree fails it
// with an error wrapping a *transaction.CorruptError.
func CompareTrees(ctx context.Context, p *thin.Pool, left, right Tree) (*Delta, error) {
	m := meter.New(ctx, nil, "", 0, 0)
	if err := m.Err(); err != nil {
		return nil, err
	}
	sb := p.Superblock()
	d := &Delta{
		Time:          sb.Time,
		Transaction:   sb.TransactionID,
		DataBlockSize: sb.DataBlockSize,
		MetadataSnap:  sb.HeldRoot,
		Left:          left.id,
		Right:         right.id,
		LeftRoot:      left.isRoot,
		RightRoot:     right.isRoot,
	}
	if !p.IsSnapshot() {
		if _, err := p.MetadataSpaceMap(); err != nil {
			return nil, err
		}
		d.NrDataBlocks = p.NrDataBlocks()
	}
	var roots [2]uint64
	for i, t := range [2]Tree{left, right} {
		if t.isRoot {
			roots[i] = t.id
			continue
		}
		id := t.id
		root, err := p.Root(id)
		if errors.Is(err, thin.ErrNoDevice) {
			return nil, fmt.Errorf("%w for snap%d (%d)", ErrNoMappingTree, i+1, id)
		}
		if err != nil {
			return nil, err
		}
		roots[i] = root
	}
	var exts [2][]extent
	err := walk.Parallel([]int{0, 1}, walk.Workers(0, 2), func(_, i int) error {
		var err error
		exts[i], err = extents(walk.NewReader(p), roots[i], m)
		return err
	})
	if err != nil {
		return nil, err
	}
	d.left, d.right = exts[0], exts[1]
	return d, nil
}

// extents reads the mapping tree at root into runs.
func extents(r btree.BlockReader, root uint64, m *meter.Meter) ([]extent, error) {
	var out []extent
	var cur extent
	err := walk.Mappings(r, root, func(_ uint64, l walk.Leaf) error {
		if err := m.Err(); err != nil {
			return err
		}
		for i := range l.Len() {
			v, b := l.VBlock(i), l.Block(i)
			if cur.n > 0 && v == cur.v+cur.n && b == cur.d+cur.n {
				cur.n++
				continue
			}
			if cur.n > 0 {
				if len(out) == cap(out) { // double: append grows big slices by a quarter
					out = append(make([]extent, 0, max(2*cap(out), 1024)), out...)
				}
				out = append(out, cur)
			}
			cur = extent{v: v, d: b, n: 1}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cur.n > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// Ranges yields the differences in virtual-block order, as thin_delta
// finds them: where one side's run ends or the other's begins, a range
// ends, so consecutive ranges may have the same kind.
func (d *Delta) Ranges() iter.Seq[Range] {
	return func(yield func(Range) bool) {
		ls, rs := d.left, d.right
		var lm, rm extent
		if len(ls) > 0 {
			lm = ls[0]
		}
		if len(rs) > 0 {
			rm = rs[0]
		}
		consume := func(s *[]extent, m *extent, n uint64) {
			if n == m.n {
				*s = (*s)[1:]
				if len(*s) > 0 {
					*m = (*s)[0]
				}
				return
			}
			m.v += n
			m.d += n
			m.n -= n
		}
		for len(ls) > 0 && len(rs) > 0 {
			var r Range
			switch {
			case lm.v < rm.v:
				r = Range{Kind: LeftOnly, Begin: lm.v, Len: min(lm.n, rm.v-lm.v), LeftData: lm.d}
				consume(&ls, &lm, r.Len)
			case lm.v > rm.v:
				r = Range{Kind: RightOnly, Begin: rm.v, Len: min(rm.n, lm.v-rm.v), RightData: rm.d}
				consume(&rs, &rm, r.Len)
			default:
				r = Range{Kind: Same, Begin: lm.v, Len: min(lm.n, rm.n), LeftData: lm.d, RightData: rm.d}
				if lm.d != rm.d {
					r.Kind = Different
				}
				consume(&ls, &lm, r.Len)
				consume(&rs, &rm, r.Len)
			}
			if !yield(r) {
				return
			}
		}
		for len(ls) > 0 {
			if !yield(Range{Kind: LeftOnly, Begin: lm.v, Len: lm.n, LeftData: lm.d}) {
				return
			}
			consume(&ls, &lm, lm.n)
		}
		for len(rs) > 0 {
			if !yield(Range{Kind: RightOnly, Begin: rm.v, Len: rm.n, RightData: rm.d}) {
				return
			}
			consume(&rs, &rm, rm.n)
		}
	}
}
