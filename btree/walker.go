package btree

import (
	"math"

	"github.com/thinmeta/thinmeta/transaction"
)

// A Walker reads the nodes of one tree in key order, each internal node
// before its children, and checks every node it reads by Validator and
// CheckNode: thinmeta's one validated traversal. Tree's walks and lookups,
// Cursor, the query tools' walks and thin/check all run on it.
//
// By default the first problem (a read error, a defect, a tree too deep)
// ends the walk and Err returns it. A checker that sets Defect is told of
// every problem instead and the walk goes on past the damaged node.
//
// Set the fields, call Reset with the root, then call Next until it
// returns false. A Walker may be reset and reused; it is not safe for
// concurrent use.
type Walker struct {
	// R reads the blocks.
	R BlockReader
	// ValueSize is the size of the values of the tree's leaves.
	ValueSize int
	// Conventions are the checks beyond a reader's needs (CheckNode).
	Conventions Conventions
	// Lo and Hi (inclusive) limit the walk to the nodes that may hold keys
	// in [Lo, Hi]; Reset sets them to the whole key space.
	Lo, Hi uint64
	// Cached reads nodes with R.Read (through the reader's cache, without
	// copying) instead of R.ReadInto into the Walker's own buffers: for
	// lookups, which revisit the upper levels.
	Cached bool
	// Plan reads through R's View and tells R, by Plan, the children of
	// each internal node before it reads them: a *transaction.ReadAhead then
	// reads the runs of them in one read each and lends the leaves without
	// a copy (R must be a Planner). Nodes and errors are the same as
	// without it. Not with Cached.
	Plan bool
	// Enter, if set, is asked about every node before it is read. If it
	// returns false the node is neither read nor descended into.
	Enter func(b uint64, p Place) bool
	// Leave, if set, is called for every node Enter let through, once
	// its subtree has been walked (at once if the node could not be read
	// or was rejected); sound reports whether nothing in the node or below
	// it was rejected (problems Defect kept do not count).
	Leave func(b uint64, sound bool)
	// Defect, if set, receives every problem instead of ending the walk:
	// a *transaction.CorruptError or *transaction.IOError naming the
	// block. It returns whether the node may still be walked (a checker
	// may accept an under-full node, say); a node that cannot be read is
	// never walked.
	Defect func(err error) (keep bool)

	root    uint64
	started bool
	stack   []frame
	bufs    [][]byte
	err     error
	visited uint64
	limit   uint64
}

// A Planner is a BlockReader that can lend blocks and be told which ones
// a walk reads next (Walker.Plan), as *transaction.ReadAhead can.
type Planner interface {
	BlockReader
	// View returns block b validated by v, valid until the next call on
	// the Planner; the slice must not be modified.
	View(b uint64, v *transaction.Validator) ([]byte, error)
	// Plan tells the Planner that the walk reads next, in that order
	// (skipping some), the blocks whose numbers next holds as little-endian
	// 64-bit words: an internal node's values.
	Plan(next []byte)
}

// frame is a node on the path from the root to the current node.
type frame struct {
	b     uint64
	n     Node
	p     Place
	next  int  // next child to visit; for a leaf, NrEntries
	sound bool // nothing wrong found in the node or below it so far
}

// Reset starts a walk of the tree rooted at root over the whole key space.
func (w *Walker) Reset(root uint64) {
	w.root, w.started, w.err = root, false, nil
	w.stack = w.stack[:0]
	w.Lo, w.Hi = 0, math.MaxUint64
	w.visited, w.limit = 0, w.R.NrBlocks()+1
}

// Err returns the problem that ended the walk, if any.
func (w *Walker) Err() error { return w.err }

// Next returns the next sound node of the walk (or one Defect kept) with
// its block and place; ok is false at the end of the walk or after a
// problem (see Err). The node is valid until the next call to Next or
// Reset and must not be modified.
func (w *Walker) Next() (b uint64, n Node, p Place, ok bool) {
	if w.err != nil {
		return 0, nil, Place{}, false
	}
	if !w.started {
		w.started = true
		if w.visit(w.root, RootPlace(w.ValueSize)) {
			f := &w.stack[len(w.stack)-1]
			return f.b, f.n, f.p, true
		}
	}
	for len(w.stack) > 0 && w.err == nil {
		top := &w.stack[len(w.stack)-1]
		nr := top.n.NrEntries()
		if top.next >= nr {
			w.pop()
			continue
		}
		i := top.next
		top.next++
		cp := top.p.Child(top.n, i)
		if cp.Lo > w.Hi {
			top.next = nr // the later children hold larger keys still
			continue
		}
		if cp.Hi < w.Lo {
			continue
		}
		if w.visit(top.n.Uint64Value(i), cp) {
			f := &w.stack[len(w.stack)-1]
			return f.b, f.n, f.p, true
		}
	}
	return 0, nil, Place{}, false
}

// pop ends the subtree of the top frame.
func (w *Walker) pop() {
	f := w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
	if !f.sound && len(w.stack) > 0 {
		w.stack[len(w.stack)-1].sound = false
	}
	if w.Leave != nil {
		w.Leave(f.b, f.sound)
	}
}

// problem hands err to Defect or ends the walk with it. Unless Defect
// keeps the node, the current path is marked unsound. It returns whether
// the node may still be walked.
func (w *Walker) problem(err error) bool {
	if w.Defect != nil && w.Defect(err) {
		return true
	}
	if len(w.stack) > 0 {
		w.stack[len(w.stack)-1].sound = false
	}
	if w.Defect == nil {
		w.err = err
	}
	return false
}

// visit reads node b found at p. If the node is to be walked it pushes it
// and returns true.
func (w *Walker) visit(b uint64, p Place) bool {
	if w.Enter != nil && !w.Enter(b, p) {
		return false
	}
	// Push the frame first, so that what goes wrong with the node is
	// marked against it and Leave sees it.
	w.stack = append(w.stack, frame{b: b, p: p, sound: true})
	reject := func(err error) bool {
		w.problem(err)
		w.pop()
		return false
	}
	if p.Depth > MaxDepth {
		return reject(transaction.Corruptf(b, Kind, ErrDepth, "deeper than %d levels", MaxDepth))
	}
	if w.visited++; w.visited > w.limit {
		return reject(transaction.Corruptf(b, Kind, ErrDepth, "more nodes in one tree than blocks on the device"))
	}
	var blk []byte
	if w.Cached {
		var err error
		if blk, err = w.R.Read(b, Validator); err != nil {
			return reject(err)
		}
	} else if w.Plan {
		var err error
		if blk, err = w.R.(Planner).View(b, Validator); err != nil {
			return reject(err)
		}
		if Node(blk).IsInternal() {
			// A view lasts until the next read; the node must last until
			// its children have been walked.
			blk = append(w.buf(p.Depth)[:0], blk...)
		}
	} else {
		blk = w.buf(p.Depth)
		if err := w.R.ReadInto(b, blk, Validator); err != nil {
			return reject(err)
		}
	}
	n := Node(blk)
	keep := true
	if w.Defect == nil {
		if err := CheckNode(n, b, p, w.Conventions); err != nil {
			return reject(err)
		}
	} else {
		NodeDefects(n, b, p, w.Conventions, func(e *transaction.CorruptError) bool {
			if !w.problem(e) {
				keep = false
			}
			return true
		})
	}
	if !keep {
		w.pop()
		return false
	}
	f := &w.stack[len(w.stack)-1]
	f.n = n
	if n.IsLeaf() {
		f.next = n.NrEntries()
	} else if w.Plan {
		// The values of a node Defect kept may not be block numbers: a
		// plan only guides the reads.
		off := HeaderSize + 8*n.MaxEntries()
		end := min(off+8*n.NrEntries(), len(n))
		w.R.(Planner).Plan(n[min(off, end):end])
	}
	return true
}

// buf returns the Walker's buffer for a node at depth d.
func (w *Walker) buf(d int) []byte {
	for len(w.bufs) <= d {
		w.bufs = append(w.bufs, make([]byte, transaction.BlockSize))
	}
	return w.bufs[d]
}
