package check

import (
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
// in it and whether every node of it was sound.
func (c *checker) walk(root uint64, ctx *walkCtx) (uint64, bool) {
	return c.visit(root, ctx, 0, true, 0, maxKey)
}

func (c *checker) buf(depth int) []byte {
	for len(c.bufs) <= depth {
		c.bufs = append(c.bufs, make([]byte, transaction.BlockSize))
	}
	return c.bufs[depth]
}

func (c *checker) damaged(ctx *walkCtx, err error) (uint64, bool) {
	c.fatalf(ctx.area, ctx.dev, err)
	return 0, false
}

// visit follows one reference to node b, whose keys must lie in [lo, hi].
// A node already visited (a shared subtree) is counted but not read again.
func (c *checker) visit(b uint64, ctx *walkCtx, depth int, root bool, lo, hi uint64) (uint64, bool) {
	if !c.countMeta(b, ctx.kind, ctx.area) {
		return 0, false
	}
	info := c.blocks.at(b)
	if info.has(blockSeen) {
		// A node reached again is not read again, but it must fit this
		// parent's key range too, and must not be its own ancestor.
		if info.has(blockOnPath) {
			return c.damaged(ctx, transaction.Corruptf(b, btree.Kind, ErrCycle, "reached again from its own subtree"))
		}
		if !root && info.has(blockKeyed) {
			first, last := info.first, info.last
			switch {
			case first > last:
				return c.damaged(ctx, transaction.Corruptf(b, btree.Kind, ErrReachedAgain, "an empty root is also a non-root node"))
			case first < lo || last > hi:
				return c.damaged(ctx, transaction.Corruptf(b, btree.Kind, ErrReachedAgain,
					"keys %d..%d, another parent allows %d..%d", first, last, lo, hi))
			}
			if info.has(blockThinRoot) {
				// First seen as a root, where few entries are allowed.
				info.flags &^= blockThinRoot
				if !c.opts.IgnoreNonFatal {
					c.nonFatalf(ctx.area, ctx.dev, transaction.Corruptf(b, btree.Kind, btree.ErrUnderfull,
						"a root with too few entries for a non-root node, which it also is"))
				}
			}
		}
		if ctx.kind == kindBottom {
			if m := info.memo; m > 0 {
				return uint64(m - 1), true
			}
		}
		return 0, ctx.kind != kindBottom
	}
	info.flags |= blockSeen | blockOnPath
	defer func() { info.flags &^= blockOnPath }()
	if depth > btree.MaxDepth {
		return c.damaged(ctx, transaction.Corruptf(b, btree.Kind, btree.ErrDepth, "deeper than %d levels", btree.MaxDepth))
	}
	buf := c.buf(depth)
	if err := c.ra.ReadInto(b, buf, btree.Validator); err != nil {
		return c.damaged(ctx, err)
	}
	n := btree.Node(buf)
	want := ctx.valueSize
	if n.IsInternal() {
		want = btree.InternalValueSize
	}
	if n.ValueSize() != want {
		return c.damaged(ctx, transaction.Corruptf(b, btree.Kind, btree.ErrValueSize, "value size %d, expected %d", n.ValueSize(), want))
	}
	if n.MaxEntries()%3 != 0 {
		return c.damaged(ctx, transaction.Corruptf(b, btree.Kind, btree.ErrMaxEntries, "max_entries %d", n.MaxEntries()))
	}
	if err := btree.CheckKeys(n, b); err != nil {
		return c.damaged(ctx, err)
	}
	nr := n.NrEntries()
	if nr == 0 && (!root || n.IsInternal()) {
		// Only a root leaf may be empty: an internal node routes lookups
		// by its keys, and a non-root node without entries is never made.
		// (thin_check 0.9.0 fails on both, reading a first key that is not
		// there.)
		what := "internal node"
		if !root {
			what = "non-root node"
		}
		return c.damaged(ctx, transaction.Corruptf(b, btree.Kind, btree.ErrNodeHeader, "%s with no entries", what))
	}
	if !root {
		if nr > 0 && n.Key(0) < lo {
			return c.damaged(ctx, transaction.Corruptf(b, btree.Kind, btree.ErrKeyRange,
				"keys %d..%d, parent allows %d..%d", n.Key(0), n.Key(nr-1), lo, hi))
		}
		if nr > 0 && n.Key(nr-1) > hi {
			return c.damaged(ctx, transaction.Corruptf(b, btree.Kind, ErrNextKey,
				"keys %d..%d, parent allows %d..%d", n.Key(0), n.Key(nr-1), lo, hi))
		}
		// thin_check 0.9.0 reports under-populated nodes of every tree:
		// those of the details and mapping trees directly, the others as
		// leaked blocks (its counting pass skips them).
		if !c.opts.IgnoreNonFatal && nr < n.MaxEntries()/3 {
			c.nonFatalf(ctx.area, ctx.dev, transaction.Corruptf(b, btree.Kind, btree.ErrUnderfull,
				"%d entries, at least %d expected (max_entries %d)", nr, n.MaxEntries()/3, n.MaxEntries()))
		}
	}
	info.flags |= blockKeyed
	if root && nr < n.MaxEntries()/3 {
		info.flags |= blockThinRoot
	}
	if nr > 0 {
		info.first, info.last = n.Key(0), n.Key(nr-1)
	} else {
		info.first, info.last = 1, 0 // empty
	}
	if n.IsLeaf() {
		if ctx.leaf != nil {
			ctx.leaf(b, n)
		}
		setMemo(info, ctx, uint64(nr))
		return uint64(nr), true
	}
	var total uint64
	ok := true
	for i := range nr {
		clo, chi := n.Key(i), hi
		if i+1 < nr {
			chi = n.Key(i+1) - 1
		}
		cnt, cok := c.visit(n.Uint64Value(i), ctx, depth+1, false, clo, chi)
		total += cnt
		ok = ok && cok
		// Deeper levels use their own buffers, so n is still intact.
	}
	if ok {
		setMemo(info, ctx, total)
	}
	return total, ok
}

func setMemo(info *blockInfo, ctx *walkCtx, n uint64) {
	if ctx.kind == kindBottom && n < 1<<32-1 {
		info.memo = uint32(n + 1)
	}
}
