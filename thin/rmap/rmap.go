package rmap

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/thin/internal/walk"
)

// Region is a range of data blocks, Begin inclusive, End exclusive.
type Region struct {
	Begin, End uint64
}

// Contains reports whether data block b lies in the region.
func (r Region) Contains(b uint64) bool { return b >= r.Begin && b < r.End }

// Entry is one line of thin_rmap's output: data blocks
// [DataBegin, DataEnd) are mapped by device Dev from virtual block
// ThinBegin on.
type Entry struct {
	DataBegin, DataEnd uint64
	// Dev is the thin device id, truncated to 32 bits as thin_rmap does.
	Dev       uint32
	ThinBegin uint64
}

// ThinEnd returns the virtual block after the last one of the entry.
func (e Entry) ThinEnd() uint64 { return e.ThinBegin + (e.DataEnd - e.DataBegin) }

// regionSet answers membership in a union of regions.
type regionSet struct {
	rs     []Region // sorted, disjoint, not adjacent
	lo, hi uint64   // bounds of the union
}

func newRegionSet(regions []Region) regionSet {
	rs := slices.Clone(regions)
	rs = slices.DeleteFunc(rs, func(r Region) bool { return r.End <= r.Begin })
	slices.SortFunc(rs, func(a, b Region) int { return cmp.Compare(a.Begin, b.Begin) })
	var out []Region
	for _, r := range rs {
		if n := len(out); n > 0 && r.Begin <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	s := regionSet{rs: out}
	if len(out) > 0 {
		s.lo, s.hi = out[0].Begin, out[len(out)-1].End
	}
	return s
}

func (s *regionSet) contains(b uint64) bool {
	if b < s.lo || b >= s.hi {
		return false
	}
	if len(s.rs) == 1 {
		return true
	}
	i, _ := slices.BinarySearchFunc(s.rs, b, func(r Region, b uint64) int {
		if r.End <= b {
			return -1
		}
		if r.Begin > b {
			return 1
		}
		return 0
	})
	return i < len(s.rs) && s.rs[i].Contains(b)
}

// A page of the set of nodes Map has read: 32768 blocks in 4 KiB.
const (
	seenPageWords  = 512
	seenPageBlocks = 64 * seenPageWords
)

// Map returns the reverse map of the given data regions in p's mapping
// tree, sorted by first data block as thin_rmap sorts it. Consecutive
// virtual blocks of one device mapped to consecutive data blocks in the
// regions form one entry. Damage in the mapping tree fails the call with an
// error wrapping a *transaction.CorruptError.
//
// As thin_rmap does, it walks the two-level mapping tree depth first and
// reads every node at most once, so a node shared by several devices is
// visited (and its mappings reported) under the first of them only. A
// region that ends where it begins or before is refused (ErrRegionEmpty),
// as thin_rmap refuses it.
//
// When ctx is done before the walk is, Map stops within a few
// milliseconds and returns ctx.Err().
func Map(ctx context.Context, p *thin.Pool, regions []Region) ([]Entry, error) {
	t, err := collect(ctx, p, regions)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, t.n)
	for i := range out {
		out[i] = t.entry(i)
	}
	return out, nil
}

// WriteMap writes the reverse map that Map returns, as Write writes it,
// without holding it as a []Entry: over a whole data device of many
// millions of blocks it needs about a third of the memory.
func WriteMap(ctx context.Context, w io.Writer, p *thin.Pool, regions []Region) error {
	t, err := collect(ctx, p, regions)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var b []byte
	for i := range t.n {
		b = appendEntry(b[:0], t.entry(i))
		bw.Write(b)
	}
	return bw.Flush()
}

// collect walks p's mapping tree for the entries in regions and returns
// them sorted.
func collect(ctx context.Context, p *thin.Pool, regions []Region) (*table, error) {
	m := meter.New(ctx, nil, "", 0, 0)
	if err := m.Err(); err != nil {
		return nil, err
	}
	for _, r := range regions {
		if r.End <= r.Begin {
			return nil, fmt.Errorf("region %d..%d: %w", r.Begin, r.End, ErrRegionEmpty)
		}
	}
	set := newRegionSet(regions)
	top, dev := walk.NewReader(p), walk.NewReader(p) // one read-ahead stream per level
	// Nodes read so far, in pages allocated as they are reached: memory
	// follows the trees, not the size of the device.
	seen := make(map[uint64]*[seenPageWords]uint64)
	skip := func(b uint64) bool {
		pg := seen[b/seenPageBlocks]
		if pg == nil {
			pg = new([seenPageWords]uint64)
			seen[b/seenPageBlocks] = pg
		}
		w, bit := b%seenPageBlocks/64, uint64(1)<<(b%64)
		if pg[w]&bit != 0 {
			return true
		}
		pg[w] |= bit
		return false
	}
	var (
		out = newTable()
		cur Entry
		has bool
		id  uint32
	)
	visit := func(_ uint64, l walk.Leaf) error {
		if err := m.Err(); err != nil {
			return err
		}
		for i := range l.Len() {
			d := l.Block(i)
			if !set.contains(d) {
				continue
			}
			v := l.VBlock(i)
			if has && cur.Dev == id && d == cur.DataEnd && v == cur.ThinEnd() {
				cur.DataEnd++
				continue
			}
			if has {
				out.add(cur)
			}
			cur, has = Entry{DataBegin: d, DataEnd: d + 1, Dev: id, ThinBegin: v}, true
		}
		return nil
	}
	err := walk.MappingsSkipping(top, p.Superblock().DataMappingRoot, skip, func(_ uint64, devs walk.Leaf) error {
		for i := range devs.Len() {
			id = uint32(devs.VBlock(i))
			if err := walk.MappingsSkipping(dev, devs.Value(i), skip, visit); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if has {
		out.add(cur)
	}
	out.sort()
	return out, nil
}

// Write writes entries as thin_rmap prints them, one per line:
// "data B..E -> thin(DEV) T..U".
func Write(w io.Writer, entries []Entry) error {
	bw := bufio.NewWriter(w)
	var b []byte
	for _, e := range entries {
		b = appendEntry(b[:0], e)
		bw.Write(b)
	}
	return bw.Flush()
}

// appendEntry appends e's line of thin_rmap's output to b.
func appendEntry(b []byte, e Entry) []byte {
	b = append(b, "data "...)
	b = strconv.AppendUint(b, e.DataBegin, 10)
	b = append(b, ".."...)
	b = strconv.AppendUint(b, e.DataEnd, 10)
	b = append(b, " -> thin("...)
	b = strconv.AppendUint(b, uint64(e.Dev), 10)
	b = append(b, ") "...)
	b = strconv.AppendUint(b, e.ThinBegin, 10)
	b = append(b, ".."...)
	b = strconv.AppendUint(b, e.ThinEnd(), 10)
	return append(b, '\n')
}
