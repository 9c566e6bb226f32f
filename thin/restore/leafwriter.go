package restore

import (
	"encoding/binary"
	"errors"
	"runtime"
	"sync/atomic"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/refcount"
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
// on other goroutines, one per batch and one batch after the other, while
// the builder goes on. Everything done per mapping after the parse is
// there, so the builder's own work is per element and per leaf; when it
// has to wait for a batch it encodes and checksums ("seals") leaves of
// the batches in flight, the work the two may share (seal).
//
// At most two batches are in flight (send), and the builder does no I/O
// of its own on the device while one is (it syncs the writer before
// writing back the manager's blocks, reading a leaf back, or
// committing), so the device is never used by two goroutines at once and
// the writes before the commit's flush are the same, in the same order,
// as with one batch at a time (the superblock still last).

// leafBatch is how many leaves are written per batch (1 MiB); tests make
// it small to have many batches.
var leafBatch = 256

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
	// block), counted on the writing goroutines, one batch after the
	// other; it may be used elsewhere only when no batch is in flight.
	data *refcount.Counts
	// The batch being filled: its leaves and their spans.
	cur   []pendingLeaf
	spans []span
	// fl are the batches in flight, n of them, the oldest at fl[head].
	fl      [2]flight
	head, n int
	// ahead lets a batch be sent while the one before is still being
	// written (Restore sets it; the Writer API does not): see send.
	ahead bool
	// line is the input line of the op being built, for a write error
	// noticed after it (ahead).
	line int64
	// calls counts the calls that may wait for a batch: a failure marked
	// during the current call is reported as any error of the call is.
	calls uint64
	err   error // the first write error: every later call returns it
}

// flight is a batch in flight: its leaves are encoded and checksummed
// ("sealed") into its slab by whoever takes them first, by number, then
// written by its goroutine once the batch before it is.
type flight struct {
	batch  []pendingLeaf
	spans  []span
	slab   []byte   // leaf i at block i
	bufs   [][]byte // writeLeaves' vector, reused
	next   atomic.Int64
	sealed atomic.Int64
	st     *flightStatus
	// deemed: the batch was not written yet when a call (deemedCall, at
	// input line deemedLine) would have waited for it, were ahead not
	// set; a failure of it is reported as from there.
	deemed     bool
	deemedCall uint64
	deemedLine int64
}

// flightStatus is the outcome of one batch, apart from its flight, which
// is reused once the batch is retired while the next batch's goroutine
// may still look at it.
type flightStatus struct {
	done chan struct{} // closed when the batch is written, or skipped
	err  error         // the write error, errSkipped, or nil; set before done
}

// errSkipped is the outcome of a batch not written because the one
// before it failed.
var errSkipped = errors.New("not written: an earlier batch of leaves failed")

func newLeafWriter(dev transaction.Device, data *refcount.Counts) *leafWriter {
	return &leafWriter{dev: dev, data: data, cur: make([]pendingLeaf, 0, leafBatch)}
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
	w.calls++
	return r, w.send()
}

// send starts writing the current batch, after those in flight.
//
// Without ahead it first waits for the batch in flight, as a restore
// always did: at most one batch is in flight, and a write error surfaces
// at the next batch, or at a sync. With ahead, the batch before may
// still be being written when this one is sent: the builder goes on
// parsing while it is (the writer's writes are half its work, and the
// builder could help with none of it), and only the batch before that
// is waited for. A batch that is not written yet when it would have been
// waited for is marked deemed there, and if it fails, its error is
// reported as from that point and replaces any error that came later
// (retire, settle): the errors, their lines, and what is written before
// them are the same as without ahead. The batches are written in order,
// a batch after a failed one not at all, and the builder does no I/O of
// its own while any is in flight (it syncs first), so the device's writes
// are the same writes in the same order either way.
func (w *leafWriter) send() error {
	if w.n == 2 {
		if err := w.retire(); err != nil {
			return err
		}
	}
	var prev *flightStatus
	if w.n == 1 {
		f := &w.fl[w.head]
		select {
		case <-f.st.done:
			if err := w.retire(); err != nil {
				return err
			}
		default:
			if !w.ahead {
				if err := w.retire(); err != nil {
					return err
				}
			} else {
				f.deemed, f.deemedCall, f.deemedLine = true, w.calls, w.line
				prev = f.st
			}
		}
	}
	f := &w.fl[(w.head+w.n)%2]
	w.n++
	// The retired batch's slices are the next one's to fill.
	f.batch, w.cur = w.cur, f.batch[:0]
	f.spans, w.spans = w.spans, f.spans[:0]
	if need := len(f.batch) * transaction.BlockSize; len(f.slab) < need {
		// Once, for a restore of a batch of leaves or more; a small one
		// takes only what its leaves need.
		f.slab = make([]byte, need)
	}
	f.next.Store(0)
	f.sealed.Store(0)
	f.deemed = false
	st := &flightStatus{done: make(chan struct{})}
	f.st = st
	go func() {
		defer close(st.done)
		if prev != nil {
			<-prev.done
			if prev.err != nil {
				st.err = errSkipped
				return
			}
		}
		// The counts first: only this goroutine may make them (the
		// batch before has made its own), while the leaves can be
		// sealed by the builder too (retire).
		countSpans(w.data, f.spans)
		w.seal(f)
		for f.sealed.Load() < int64(len(f.batch)) {
			runtime.Gosched() // the builder is sealing its last leaf
		}
		st.err = writeLeaves(w.dev, f.batch, f.slab, &f.bufs)
	}()
	return nil
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
		buf := f.slab[i*transaction.BlockSize : (i+1)*transaction.BlockSize]
		encodeLeaf(buf, f.spans[l.start:l.end], l.n)
		btree.Validator.Prepare(buf, l.block)
		f.sealed.Add(1)
	}
}

// retire waits for the oldest batch in flight, helping to seal the
// leaves of those in flight, and returns the first write error.
func (w *leafWriter) retire() error {
	f := &w.fl[w.head]
	w.seal(f)
	if w.n == 2 {
		w.seal(&w.fl[(w.head+1)%2])
	}
	<-f.st.done
	w.head = (w.head + 1) % 2
	w.n--
	if err := f.st.err; err != nil && w.err == nil {
		w.err = err
		if f.deemed && f.deemedCall != w.calls {
			w.err = &BuildError{Line: f.deemedLine, Err: err}
		}
	}
	return w.err
}

// sync writes every queued leaf and waits until they are written.
func (w *leafWriter) sync() error {
	w.calls++
	if w.err == nil && len(w.cur) > 0 {
		if err := w.send(); err != nil {
			return err
		}
	}
	for w.n > 0 {
		if err := w.retire(); err != nil {
			return err
		}
	}
	return w.err
}

// settle waits for every batch in flight once the restore has stopped
// with err, and returns the error to report: the write error of a batch
// deemed failed before err happened (see send), or else err.
func (w *leafWriter) settle(err error) error {
	if w.err != nil {
		w.drain()
		return err // the write error, already reported
	}
	w.calls++
	for w.n > 0 {
		f := &w.fl[w.head]
		_ = w.retire()
		if w.err != nil {
			if f.deemed {
				err = w.err
			}
			w.drain()
		}
	}
	return err
}

// drain waits for every batch in flight, whatever its outcome.
func (w *leafWriter) drain() {
	for w.n > 0 {
		_ = w.retire()
	}
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
func countSpans(d *refcount.Counts, spans []span) {
	for _, r := range spans {
		d.IncRun(r.data, uint64(r.n))
	}
}

// writeLeaves writes the sealed leaves of batch, runs of
// consecutive blocks in one call where the device can; leaf i of batch is
// block i of slab; *bufs is its vector of buffers, kept for the next
// batch. It starts the
// writeback of each run where the device can (a file or block device):
// the leaves are most of what a restore writes, and the disk then writes
// them while the restore goes on, instead of all of them in the commit's
// flush (on a disk-backed file, 85 of the bench's 300 ms).
func writeLeaves(dev transaction.Device, batch []pendingLeaf, slab []byte, vec *[][]byte) error {
	vw, vector := dev.(transaction.VectorWriter)
	ws, _ := dev.(transaction.WritebackStarter)
	bufs := *vec
	defer func() { *vec = bufs[:0] }()
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
