package restore

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// Mapping-tree leaves, nearly all the blocks a restore writes, bypass the
// transaction manager: once built, a leaf is never changed, so it needs
// none of the manager's bookkeeping. The builder decides which entries
// each leaf holds, allocates its block from the metadata space map like
// any block, and hands the leaf to a leafWriter as spans (leaves.go): a
// range element of the input is one span however many mappings it holds.
// The leafWriter encodes, counts, checksums and writes batches of leaves
// on another goroutine while the builder goes on. Everything done per
// mapping after the parse is on that goroutine, so the builder's work,
// the critical path, is per element and per leaf; and the leaves' buffers
// are only ever touched by the writing goroutine (and the kernel),
// instead of moving between the cores with every leaf.
//
// At most one batch is in flight, and the builder does no I/O of its own
// on the device while one is (it syncs the writer before writing back the
// manager's blocks, reading a leaf back, or committing), so the device is
// never used by two goroutines at once and the order of writes before the
// commit's flush is as it was: everything, then the superblock.

// leafBatch is how many leaves are written per batch (1 MiB).
const leafBatch = 256

// pendingLeaf is a leaf queued for writing: block, and its n entries,
// spans[start:end] of its batch.
type pendingLeaf struct {
	block      uint64
	start, end int
	n          int
}

type leafWriter struct {
	dev transaction.Device
	// data gets a reference to the data block of every mapping of every
	// leaf written (FORMAT.md §4.4: one per distinct leaf that maps the
	// block), counted on the writing goroutine; it may be used elsewhere
	// only when no batch is in flight.
	data *dataCounts
	// The batch being filled: its leaves and their spans.
	cur   []pendingLeaf
	spans []span
	// The other batch's slices, when not in flight.
	spare      []pendingLeaf
	spareSpans []span
	// slab holds the blocks of the batch in flight, leaf i at block i;
	// only seal and the writing goroutine use it.
	slab   []byte
	flight flight
	// result receives the batch in flight when it is written.
	result chan batchResult
	busy   bool
	err    error // the first write error: every later call returns it
}

type batchResult struct {
	batch []pendingLeaf
	spans []span
	err   error
}

func newLeafWriter(dev transaction.Device, data *dataCounts) *leafWriter {
	return &leafWriter{dev: dev, data: data, cur: make([]pendingLeaf, 0, leafBatch),
		spare: make([]pendingLeaf, 0, leafBatch), result: make(chan batchResult, 1)}
}

// add queues a leaf for block b holding the first n entries of a (which
// it takes from a), and returns its leafRef.
func (w *leafWriter) add(b uint64, a *leaves, n int) (leafRef, error) {
	if w.err != nil {
		return leafRef{}, w.err
	}
	start := len(w.spans)
	w.spans = a.take(n, w.spans)
	first, last := w.spans[start], w.spans[len(w.spans)-1]
	w.cur = append(w.cur, pendingLeaf{block: b, start: start, end: len(w.spans), n: n})
	r := leafRef{block: b, first: first.origin, last: last.origin + uint64(last.n-1), n: n}
	if len(w.cur) < leafBatch {
		return r, nil
	}
	return r, w.send()
}

// send starts writing the current batch, after the one in flight.
func (w *leafWriter) send() error {
	if err := w.wait(); err != nil {
		return err
	}
	batch, spans := w.cur, w.spans
	w.cur, w.spans, w.spare, w.spareSpans = w.spare[:0], w.spareSpans[:0], nil, nil
	if need := len(batch) * transaction.BlockSize; len(w.slab) < need {
		// Once, for a restore of a batch of leaves or more; a small one
		// takes only what its leaves need.
		w.slab = make([]byte, need)
	}
	f := &w.flight
	f.batch, f.spans = batch, spans
	f.next.Store(0)
	f.sealed.Store(0)
	w.busy = true
	go func() {
		// The counts first: only this goroutine may make them, while the
		// leaves can be sealed by the builder too (wait).
		countSpans(w.data, spans)
		w.seal(f)
		for f.sealed.Load() < int64(len(batch)) {
			runtime.Gosched() // the builder is sealing its last leaf
		}
		w.result <- batchResult{batch, spans, writeLeaves(w.dev, batch, w.slab)}
	}()
	return nil
}

// flight is the batch in flight: its leaves are encoded and checksummed
// ("sealed") in the slab by whoever takes them first, by number.
type flight struct {
	batch  []pendingLeaf
	spans  []span
	next   atomic.Int64 // the next leaf to take
	sealed atomic.Int64 // leaves sealed
}

// seal seals leaves of f until none is left to take. It is called by the
// writing goroutine, and by the builder when it would otherwise wait for
// the batch: the builder is the faster of the two on most input, and
// this way its spare time shortens the batch's instead of being lost.
func (w *leafWriter) seal(f *flight) {
	for {
		i := int(f.next.Add(1) - 1)
		if i >= len(f.batch) {
			return
		}
		l := &f.batch[i]
		buf := w.slab[i*transaction.BlockSize : (i+1)*transaction.BlockSize]
		encodeLeaf(buf, f.spans[l.start:l.end], l.n)
		btree.Validator.Prepare(buf, l.block)
		f.sealed.Add(1)
	}
}

// wait waits for the batch in flight, helping to seal its leaves, and
// takes its slices back.
func (w *leafWriter) wait() error {
	if w.busy {
		w.seal(&w.flight)
		r := <-w.result
		w.busy = false
		w.spare, w.spareSpans = r.batch[:0], r.spans[:0]
		if r.err != nil && w.err == nil {
			w.err = r.err
		}
	}
	return w.err
}

// sync writes every queued leaf and waits until they are written.
func (w *leafWriter) sync() error {
	if w.err == nil && len(w.cur) > 0 {
		if err := w.send(); err != nil {
			return err
		}
	}
	return w.wait()
}

// encodeLeaf writes into buf the leaf of the n entries of spans.
func encodeLeaf(buf []byte, spans []span, n int) {
	btree.InitUint64(buf, btree.FlagLeaf, nil, nil)
	btree.Node(buf).SetNrEntries(n)
	keys := buf[btree.HeaderSize : btree.HeaderSize+8*leafMax]
	vals := buf[btree.HeaderSize+8*leafMax : btree.HeaderSize+16*leafMax]
	for _, r := range spans {
		// A span's keys and values both go up by one block: slices of
		// its length let the loop run without bounds checks.
		k, v := r.origin, thin.PackBlockTime(r.data, r.t)
		kb := keys[:8*int(r.n)]
		vb := vals[:len(kb)]
		for i := 0; i+8 <= len(kb); i += 8 {
			binary.LittleEndian.PutUint64(kb[i:], k)
			binary.LittleEndian.PutUint64(vb[i:], v)
			k++
			v += nextBlock
		}
		keys, vals = keys[len(kb):], vals[len(kb):]
	}
}

// nextBlock is the step between the values of consecutive data blocks at
// one time (thin.PackBlockTime).
var nextBlock = thin.PackBlockTime(1, 0)

// countSpans adds a reference to the data block of each mapping of the
// leaves of spans.
func countSpans(d *dataCounts, spans []span) {
	for _, r := range spans {
		d.incRange(r.data, uint64(r.n))
	}
}

// writeLeaves writes the sealed leaves of batch, runs of
// consecutive blocks in one call where the device can; leaf i of batch is
// block i of slab. It starts the
// writeback of each run where the device can (a file or block device):
// the leaves are most of what a restore writes, and the disk then writes
// them while the restore goes on, instead of all of them in the commit's
// flush (on a disk-backed file, 85 of the bench's 300 ms).
func writeLeaves(dev transaction.Device, batch []pendingLeaf, slab []byte) error {
	vw, vector := dev.(transaction.VectorWriter)
	ws, _ := dev.(transaction.WritebackStarter)
	var bufs [][]byte
	for i := 0; i < len(batch); {
		j := i + 1
		for j < len(batch) && batch[j].block == batch[j-1].block+1 {
			j++
		}
		bufs = bufs[:0]
		for k := range j - i {
			bufs = append(bufs, slab[(i+k)*transaction.BlockSize:(i+k+1)*transaction.BlockSize])
		}
		off := int64(batch[i].block) * transaction.BlockSize
		var err error
		if vector && len(bufs) > 1 {
			err = vw.WriteVAt(bufs, off)
		} else {
			for k, b := range bufs {
				if _, err = dev.WriteAt(b, off+int64(k)*transaction.BlockSize); err != nil {
					break
				}
			}
		}
		if err != nil {
			return &transaction.IOError{Block: batch[i].block, Op: "write", Err: err}
		}
		if ws != nil {
			ws.StartWriteback(off, int64(len(bufs))*transaction.BlockSize)
		}
		i = j
	}
	return nil
}
