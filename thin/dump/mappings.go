package dump

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/transaction"
)

// Mappings are formatted into chunks of about chunkSize bytes; a section
// being formatted ahead of the one being written may hold up to
// chunksAhead chunks before it waits.
const (
	chunkSize   = 256 << 10
	chunksAhead = 4
	// chunkCap is a chunk's capacity: a chunk is handed on once a leaf
	// takes it past chunkSize, and a leaf holds at most 252 mappings.
	chunkCap = chunkSize + 256*maxRunLine
	// readAheadBlocks bounds the reads of a device's tree: thin_restore
	// and the kernel often place a tree's nodes in long runs of blocks.
	// With planned reads 64 blocks beat 256: the window (256 KiB) stays in
	// the core's cache until the leaves in it are checksummed and read.
	readAheadBlocks = 64
)

// section is one element of the output that holds mappings: a device, or
// (in 1.1.0's form) a definition of shared leaves. Its mappings come from
// parts, formatted in order; runs are merged within a part, never across.
type section struct {
	name       string // for errors: "device 3", "shared leaves 26"
	begin, end []byte // the element's opening and closing text
	parts      []part
	chunks     chan []byte
	err        error
}

// part is a piece of a section: the whole tree at root, a list of leaves,
// or a reference to a definition.
type part struct {
	kind   partKind
	root   uint64   // partTree
	leaves []uint64 // partLeaves
	// places holds where a parent put each leaf of partLeaves, for the
	// leaf's check (the first parent: a shared leaf is checked once).
	places map[uint64]btree.Place
	ref    uint64 // partRef: the definition's name
}

type partKind uint8

const (
	partTree partKind = iota
	partLeaves
	partRef
)

// writeSections writes the sections in order. The mappings of several
// sections are formatted concurrently (one goroutine per CPU, each on one
// section at a time) while the writer copies the chunks of the earliest
// unfinished section to bw, so the output is the same as a sequential
// dump, including when a tree is damaged: everything before the damage is
// written, then the section is closed and the error returned.
//
// The chunks go to w directly, not through bw (whose buffered text, the
// sections' begin and end, is flushed first): copying each chunk into bw
// was about 4% of a dump's CPU time. A failed write of w stops the dump.
func writeSections(w io.Writer, bw *bufio.Writer, e emitter, p *thin.Pool, secs []*section, m *meter.Meter) error {
	workers := min(runtime.GOMAXPROCS(0), len(secs))
	if workers <= 1 {
		buf := make([]byte, 0, chunkCap)
		ra := transaction.NewReadAhead(p.Reader(), readAheadBlocks)
		w := newWalker(ra)
		for _, s := range secs {
			bw.Write(s.begin)
			f := formatter{e: e, form: formOf(e), buf: buf, reuse: true, ra: ra, w: w, m: m, emit: func(b []byte) bool {
				bw.Write(b)
				return true
			}}
			err := f.section(p, s)
			bw.Write(s.end)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
		}
		return nil
	}

	for _, s := range secs {
		s.chunks = make(chan []byte, chunksAhead)
	}
	done := make(chan struct{})
	free := make(chan []byte, workers*(chunksAhead+2))
	next := make(chan *section)
	var wg sync.WaitGroup
	defer func() {
		close(done)
		wg.Wait()
	}()
	wg.Add(1)
	go func() { // hand out the sections in order
		defer wg.Done()
		defer close(next)
		for _, s := range secs {
			select {
			case next <- s:
			case <-done:
				return
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ra := transaction.NewReadAhead(p.Reader(), readAheadBlocks)
			w := newWalker(ra)
			for s := range next {
				f := formatter{e: e, form: formOf(e), free: free, ra: ra, w: w, m: m, emit: func(b []byte) bool {
					select {
					case s.chunks <- b:
						return true
					case <-done:
						return false
					}
				}}
				s.err = f.section(p, s)
				close(s.chunks)
			}
		}()
	}
	for _, s := range secs {
		bw.Write(s.begin)
		for b := range s.chunks {
			if err := bw.Flush(); err != nil {
				return err
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			select {
			case free <- b[:0]:
			default:
			}
		}
		bw.Write(s.end)
		if s.err != nil {
			return fmt.Errorf("%s: %w", s.name, s.err)
		}
	}
	return nil
}

// formatter formats one section's mappings, merged into runs as thin_dump
// merges them, and hands the text on in chunks.
type formatter struct {
	e    emitter
	form *runForm // e's mapping lines, if appendRun writes them
	buf  []byte
	free chan []byte         // recycled chunks, if not nil
	emit func(b []byte) bool // false: stop, the dump is abandoned
	// reuse: emit is done with b when it returns, so buf can be reused.
	reuse bool
	run   thin.Run
	ra    *transaction.ReadAhead // one per goroutine, kept across sections
	w     *btree.Walker          // walks the trees through ra
	leafb []byte                 // buffer for reading listed leaves
	m     *meter.Meter           // counts the mappings; notices cancellation
}

// errAbandoned stops a walk whose output is no longer wanted.
var errAbandoned = errors.New("dump abandoned")

// section formats the parts of s. On damage it first emits the mappings
// read before it, as a sequential walk would.
func (f *formatter) section(p *thin.Pool, s *section) error {
	if err := f.m.Err(); err != nil {
		return err
	}
	if f.buf == nil {
		f.buf = f.chunk()
	}
	if f.ra == nil {
		f.ra = transaction.NewReadAhead(p.Reader(), readAheadBlocks)
	}
	var err error
	for _, pt := range s.parts {
		switch pt.kind {
		case partTree:
			err = f.tree(pt.root)
		case partLeaves:
			err = f.leaves(pt.leaves, pt.places)
		case partRef:
			f.buf = f.e.(sharingEmitter).ref(f.buf, pt.ref)
		}
		f.flushRun()
		if err != nil {
			break
		}
	}
	if err == errAbandoned {
		return nil
	}
	if len(f.buf) > 0 {
		f.emit(f.buf)
	}
	f.buf = f.buf[:0]
	if !f.reuse {
		f.buf = nil
	}
	return err
}

// tree formats the mappings of the mapping tree at root. The walk plans
// its reads (btree.Walker.Plan): thin_restore writes each device's leaves
// in runs and its internal nodes after them (1.1.0) or among them (0.9.0),
// where the doubling windows of an unplanned walk read about twice the
// tree, each internal node's window running on into the next device's
// blocks.
func (f *formatter) tree(root uint64) error {
	if f.w == nil {
		f.w = newWalker(f.ra)
	}
	f.w.Reset(root)
	for {
		b, n, _, ok := f.w.Next()
		if !ok {
			return f.w.Err()
		}
		if n.IsLeaf() {
			if err := f.leaf(b, n); err != nil {
				return err
			}
		}
	}
}

// newWalker returns a Walker of mapping trees that plans its reads through ra.
func newWalker(ra *transaction.ReadAhead) *btree.Walker {
	return &btree.Walker{R: ra, ValueSize: thin.MappingValueSize, Plan: true}
}

// flushRun formats the run being built, if any.
func (f *formatter) flushRun() {
	if f.run.Len > 0 {
		if f.form != nil {
			f.buf = appendRun(f.buf, f.run, f.form)
		} else {
			f.buf = f.e.run(f.buf, f.run)
		}
		f.run = thin.Run{}
	}
}

// leaves formats the mappings of the listed leaves, in order, as one run
// of text. Each must be a leaf of a mapping tree with its keys in order.
func (f *formatter) leaves(bs []uint64, places map[uint64]btree.Place) error {
	if f.leafb == nil {
		f.leafb = make([]byte, transaction.BlockSize)
	}
	for _, b := range bs {
		if err := f.ra.ReadInto(b, f.leafb, btree.Validator); err != nil {
			return err
		}
		n := btree.Node(f.leafb)
		if !n.IsLeaf() {
			return transaction.Corruptf(b, btree.Kind, ErrUneven, "an internal node at the depth of the leftmost leaf")
		}
		// A listed leaf is checked at the place listLeaves found it.
		p, ok := places[b]
		if !ok {
			p = btree.RootPlace(thin.MappingValueSize)
		}
		if err := btree.CheckNode(n, b, p, 0); err != nil {
			return err
		}
		if err := f.leaf(b, n); err != nil {
			return err
		}
	}
	return nil
}

func (f *formatter) chunk() []byte {
	select {
	case b := <-f.free:
		return b
	default:
		return make([]byte, 0, chunkCap)
	}
}

// blockUnit is one data block in a packed mapping value (block<<24 | time).
const blockUnit = thin.MaxTime + 1

// leaf formats the entries of one leaf of a device's mapping tree.
//
// A mapping extends the run being built if its key and its packed value
// are the run's next ones: the key one more than the run's last, the
// value one blockUnit more (the next block, the same time). That holds
// while the run's next block stays below 2^40, where the packed value
// would wrap into the time bits; a run that may reach it within this leaf
// (its next block within nr of 2^40) is merged by leafExact instead,
// comparing block and time unpacked as before.
func (f *formatter) leaf(_ uint64, n btree.Node) error {
	nr := n.NrEntries()
	if err := f.m.Add(uint64(nr)); err != nil {
		return err
	}
	// The validator checked that nr entries fit the block.
	off := btree.HeaderSize + 8*n.MaxEntries()
	keys := n[btree.HeaderSize : btree.HeaderSize+8*nr]
	vals := n[off : off+8*nr]
	r, buf, form := f.run, f.buf, f.form
	limit := uint64(1<<(64-24)) - uint64(nr) // a run's next block up to this: no wrap
	i := 0
	if r.Len == 0 && len(keys) >= 8 && len(vals) >= 8 {
		b, t := thin.UnpackBlockTime(binary.LittleEndian.Uint64(vals))
		r = thin.Run{VBlock: binary.LittleEndian.Uint64(keys), Block: b, Len: 1, Time: t}
		i = 8
	}
	nextK, nextV := r.VBlock+r.Len, thin.PackBlockTime(r.Block+r.Len, r.Time)
	if r.Len > 0 && r.Block+r.Len > limit {
		r, buf = f.leafExact(keys[i:], vals[i:], r, buf)
		i = len(keys)
	}
	for ; i+8 <= len(keys) && i+8 <= len(vals); i += 8 {
		k := binary.LittleEndian.Uint64(keys[i:])
		v := binary.LittleEndian.Uint64(vals[i:])
		if k == nextK && v == nextV {
			r.Len++
			nextK++
			nextV += blockUnit
			continue
		}
		if form != nil {
			buf = appendRun(buf, r, form)
		} else {
			buf = f.e.run(buf, r)
		}
		b, t := thin.UnpackBlockTime(v)
		r = thin.Run{VBlock: k, Block: b, Len: 1, Time: t}
		nextK, nextV = k+1, v+blockUnit
		if b >= limit {
			r, buf = f.leafExact(keys[i+8:], vals[i+8:], r, buf)
			break
		}
	}
	f.run, f.buf = r, buf
	if len(f.buf) >= chunkSize {
		if !f.emit(f.buf) {
			return errAbandoned
		}
		if f.reuse {
			f.buf = f.buf[:0]
		} else {
			f.buf = f.chunk()
		}
	}
	return nil
}

// leafExact merges the mappings of keys and vals into runs after r (not
// empty), comparing blocks and times unpacked, and returns the run being
// built and buf with the runs completed appended.
func (f *formatter) leafExact(keys, vals []byte, r thin.Run, buf []byte) (thin.Run, []byte) {
	for i := 0; i+8 <= len(keys) && i+8 <= len(vals); i += 8 {
		k := binary.LittleEndian.Uint64(keys[i:])
		v, t := thin.UnpackBlockTime(binary.LittleEndian.Uint64(vals[i:]))
		if k == r.VBlock+r.Len && v == r.Block+r.Len && t == r.Time {
			r.Len++
			continue
		}
		if f.form != nil {
			buf = appendRun(buf, r, f.form)
		} else {
			buf = f.e.run(buf, r)
		}
		r = thin.Run{VBlock: k, Block: v, Len: 1, Time: t}
	}
	return r, buf
}
