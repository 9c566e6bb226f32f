package ls

import (
	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/thin/internal/walk"
)

// walkReader walks device trees for one goroutine.
type walkReader struct {
	r btree.BlockReader
	m *meter.Meter
}

func newWalkReader(p *thin.Pool, m *meter.Meter) *walkReader {
	return &walkReader{r: walk.NewReader(p), m: m}
}

// inc counts every mapping of the tree at root into c.
func (wr *walkReader) inc(root uint64, c *counts) error {
	last := ^uint64(0)
	var pg *page
	return walk.Mappings(wr.r, root, func(_ uint64, l walk.Leaf) error {
		if err := wr.m.Add(uint64(l.Len())); err != nil {
			return err
		}
		for i := range l.Len() {
			b := l.Block(i)
			if pi := b >> pageShift; pi != last {
				pg, last = c.pageFor(pi), pi
			}
			j, m := (b>>6)&wordMask, uint64(1)<<(b&63)
			pg.multi[j] |= pg.seen[j] & m
			pg.seen[j] |= m
		}
		return nil
	})
}

// exclusive counts the mappings of the tree at root whose block c counts
// exactly once.
func (wr *walkReader) exclusive(root uint64, c *counts) (uint64, error) {
	var n uint64
	last := ^uint64(0)
	var pg *page
	err := walk.Mappings(wr.r, root, func(_ uint64, l walk.Leaf) error {
		if err := wr.m.Add(uint64(l.Len())); err != nil {
			return err
		}
		for i := range l.Len() {
			b := l.Block(i)
			if pi := b >> pageShift; pi != last {
				pg, last = c.lookup(pi), pi
			}
			if pg == nil {
				continue
			}
			j, m := (b>>6)&wordMask, uint64(1)<<(b&63)
			if (pg.seen[j]&^pg.multi[j])&m != 0 {
				n++
			}
		}
		return nil
	})
	return n, err
}
