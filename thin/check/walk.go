package check

import (
	"encoding/binary"
	"errors"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/transaction"
)

// treeKind records which structure a metadata block belongs to.
type treeKind uint8

const (
	kindNone treeKind = iota
	kindSuperblock
	kindDetails
	kindTop
	kindBottom
	kindDataIndex
	kindOverflow
	kindBitmap
	kindMetadataIndex
	kindBlobIndex
)

func (k treeKind) String() string {
	switch k {
	case kindSuperblock:
		return "superblock"
	case kindDetails:
		return "device details node"
	case kindTop:
		return "top-level mapping node"
	case kindBottom:
		return "mapping node"
	case kindDataIndex:
		return "data space map index node"
	case kindOverflow:
		return "space map overflow node"
	case kindBitmap:
		return "space map bitmap"
	case kindMetadataIndex:
		return "metadata space map index"
	case kindBlobIndex:
		return "blob index node"
	}
	return "unused block"
}

// walkCtx describes the tree being walked.
type walkCtx struct {
	kind      treeKind
	area      string
	dev       *uint64
	valueSize int
	leaf      func(b uint64, n btree.Node)
}

// walk checks the tree rooted at root and returns the number of leaf entries
// in it and whether every node of it was sound. The nodes are read and
// judged by btree.Walker (btree.CheckNode with the capacity check, and the
// fill check unless non-fatal findings are ignored), which hands every
// defect to the checker and goes on past damaged nodes; the checker counts
// each reference to a block, and a node already visited (a shared subtree)
// is checked against the new parent but not read again. The walks plan
// their reads through c.ra (btree.Walker.Plan), so a leaf handed to
// ctx.leaf is lent, valid only until the walk reads on: ctx.leaf must not
// keep it, nor read through c.ra itself.
func (c *checker) walk(root uint64, ctx *walkCtx) (uint64, bool) {
	t := c.treeWalk()
	defer func() { c.walks = append(c.walks, t) }()
	t.ctx, t.total, t.ok, t.opens = ctx, 0, true, t.opens[:0]
	w := &t.w
	w.ValueSize = ctx.valueSize
	w.Conventions = btree.CheckCapacity
	if !c.opts.IgnoreNonFatal {
		w.Conventions |= btree.CheckFill
	}
	w.Reset(root)
	for {
		b, n, p, more := w.Next()
		if !more {
			break
		}
		info := c.blocks.at(b)
		*info |= blockKeyed
		nr := n.NrEntries()
		if p.Root && nr < n.MaxEntries()/3 {
			*info |= blockThinRoot
		}
		c.blocks.node(b, n, !n.IsLeaf() || c.isShared(b))
		if !n.IsLeaf() {
			t.opens[len(t.opens)-1].internal = true
		} else {
			if ctx.leaf != nil {
				ctx.leaf(b, n)
			}
			t.total += uint64(nr)
		}
	}
	return t.total, t.ok
}

// treeWalk is the state of one walk of the check: a btree.Walker whose
// hooks are bound once to it, so that walks cost no allocations.
type treeWalk struct {
	c     *checker
	w     btree.Walker
	ctx   *walkCtx
	total uint64 // entries of the leaves walked, and of memoized subtrees
	ok    bool   // no reference was refused
	// opens holds, for each node being walked, total when it was entered
	// and whether a reference below it was refused.
	opens []openNode
}

type openNode struct {
	start    uint64
	ok       bool
	internal bool // read, and an internal node
}

// treeWalk returns an idle walk; walks may nest (a leaf callback may start
// another), so each has its own.
func (c *checker) treeWalk() *treeWalk {
	if k := len(c.walks); k > 0 {
		t := c.walks[k-1]
		c.walks = c.walks[:k-1]
		return t
	}
	t := &treeWalk{c: c}
	t.w = btree.Walker{R: &c.planner, Plan: true, Enter: t.enter, Leave: t.leave, Defect: t.defect}
	return t
}

func (t *treeWalk) notOK() {
	if len(t.opens) > 0 {
		t.opens[len(t.opens)-1].ok = false
	} else {
		t.ok = false
	}
}

func (t *treeWalk) enter(b uint64, p btree.Place) bool {
	read, n, sound := t.c.enter(b, t.ctx, p)
	t.total += n
	if !sound {
		t.notOK()
	}
	if read {
		t.opens = append(t.opens, openNode{start: t.total, ok: true})
	}
	return read
}

func (t *treeWalk) leave(b uint64, sound bool) {
	o := t.opens[len(t.opens)-1]
	t.opens = t.opens[:len(t.opens)-1]
	*t.c.blocks.at(b) &^= blockOnPath
	if o.ok && sound {
		// A leaf that Next returned is always left sound: its memo is
		// its entries, which the blocks table keeps.
		if o.internal && t.ctx.kind == kindBottom {
			t.c.blocks.setMemo(b, t.total-o.start)
		}
	} else {
		t.notOK()
	}
}

func (t *treeWalk) defect(err error) bool {
	if errors.Is(err, btree.ErrUnderfull) {
		// thin_check 0.9.0 reports under-populated nodes of every tree:
		// those of the details and mapping trees directly, the others as
		// leaked blocks (its counting pass skips them).
		t.c.nonFatalf(t.ctx.area, t.ctx.dev, err)
		return true
	}
	t.c.fatalf(t.ctx.area, t.ctx.dev, err)
	return false
}

func (c *checker) buf(depth int) []byte {
	for len(c.bufs) <= depth {
		c.bufs = append(c.bufs, make([]byte, transaction.BlockSize))
	}
	return c.bufs[depth]
}

// enter counts one reference to node b, found at p, and says whether to
// read it. A node reached before is not read again: it must fit this
// parent's key range too and must not be its own ancestor, and for a
// device's mapping tree the mappings below it, known from the first
// visit, are returned as n. sound is false when the reference is refused.
func (c *checker) enter(b uint64, ctx *walkCtx, p btree.Place) (read bool, n uint64, sound bool) {
	if c.err != nil {
		return false, 0, false // abandoned: nothing more is read
	}
	if !c.countMeta(b, ctx.kind, ctx.area) {
		return false, 0, false
	}
	info := c.blocks.at(b)
	if !info.has(blockSeen) {
		if !c.tick() {
			return false, 0, false
		}
		*info |= blockSeen | blockOnPath
		return true, 0, true
	}
	damaged := func(err error) (bool, uint64, bool) {
		c.fatalf(ctx.area, ctx.dev, err)
		return false, 0, false
	}
	if info.has(blockOnPath) {
		return damaged(transaction.Corruptf(b, btree.Kind, ErrCycle, "reached again from its own subtree"))
	}
	var keys nodeKeys
	if info.has(blockKeyed) {
		var kept bool
		if keys, kept = c.blocks.nodeKeys(b); !kept {
			var err error
			if keys, err = c.rereadKeys(b); err != nil {
				return damaged(err)
			}
		}
	}
	if !p.Root && info.has(blockKeyed) {
		first, last := keys.first, keys.last
		switch {
		case first > last:
			return damaged(transaction.Corruptf(b, btree.Kind, ErrReachedAgain, "an empty root is also a non-root node"))
		case first < p.Lo || last > p.Hi:
			return damaged(transaction.Corruptf(b, btree.Kind, ErrReachedAgain,
				"keys %d..%d, another parent allows %d..%d", first, last, p.Lo, p.Hi))
		}
		if info.has(blockThinRoot) {
			// First seen as a root, where few entries are allowed.
			*info &^= blockThinRoot
			if !c.opts.IgnoreNonFatal {
				c.nonFatalf(ctx.area, ctx.dev, transaction.Corruptf(b, btree.Kind, btree.ErrUnderfull,
					"a root with too few entries for a non-root node, which it also is"))
			}
		}
	}
	if ctx.kind == kindBottom {
		if m := keys.memo; m > 0 {
			return false, uint64(m - 1), true
		}
	}
	return false, 0, ctx.kind != kindBottom
}

// planner is the tree walks' reader: c.ra, told only the children the
// walk reads. A child read before (a subtree shared with a tree walked
// earlier, as a snapshot shares its origin's) is not read again, so it is
// left out of the plan: a planned read takes in no block the walk passes
// over (except gaps of at most planGap blocks between planned ones).
type planner struct {
	*transaction.ReadAhead
	c    *checker
	next []byte
}

func (p *planner) Plan(next []byte) {
	p.next = p.next[:0]
	for i := 0; i+8 <= len(next); i += 8 {
		if !p.c.blocks.seen(binary.LittleEndian.Uint64(next[i:])) {
			p.next = append(p.next, next[i:i+8]...)
		}
	}
	p.ReadAhead.Plan(p.next)
}
