package restore

import (
	"encoding/binary"
	"math/bits"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// Mapping-tree leaves, nearly all the blocks a restore writes, bypass the
// transaction manager: once built, a leaf is never changed, so it needs
// none of the manager's bookkeeping. The builder fills each leaf in a
// buffer, allocated from the metadata space map like any block, and hands
// it to a leafWriter, which checksums and writes batches of leaves on
// another goroutine while the builder goes on, and gives the buffers back
// for reuse.
//
// At most one batch is in flight, and the builder does no I/O of its own
// on the device while one is (it syncs the writer before writing back the
// manager's blocks, reading a leaf back, or committing), so the device is
// never used by two goroutines at once and the order of writes before the
// commit's flush is as it was: everything, then the superblock.

// leafBatch is how many leaves are written per batch (1 MiB).
const leafBatch = 256

type pendingLeaf struct {
	block uint64
	buf   []byte
}

type leafWriter struct {
	dev transaction.Device
	// data gets a reference to the data block of every mapping of every
	// leaf written (FORMAT.md §4.4: one per distinct leaf that maps the
	// block), counted on the writing goroutine; it may be used elsewhere
	// only when no batch is in flight.
	data  *dataCounts
	cur   []pendingLeaf
	spare []pendingLeaf // the other batch's slice, when not in flight
	free  [][]byte      // buffers to reuse
	// result receives the batch in flight when it is written.
	result chan batchResult
	busy   bool
	err    error // the first write error: every later call returns it
	writes uint64
}

type batchResult struct {
	batch []pendingLeaf
	err   error
}

func newLeafWriter(dev transaction.Device, data *dataCounts) *leafWriter {
	return &leafWriter{dev: dev, data: data, cur: make([]pendingLeaf, 0, leafBatch),
		spare: make([]pendingLeaf, 0, leafBatch), result: make(chan batchResult, 1)}
}

// buffer returns a block buffer for a new leaf, holding anything (the
// leaf is written over all of it).
func (w *leafWriter) buffer() []byte {
	if n := len(w.free); n > 0 {
		b := w.free[n-1]
		w.free = w.free[:n-1]
		return b
	}
	return make([]byte, transaction.BlockSize)
}

// add queues leaf buf for block b; buf belongs to the writer afterwards.
func (w *leafWriter) add(b uint64, buf []byte) error {
	if w.err != nil {
		return w.err
	}
	w.cur = append(w.cur, pendingLeaf{b, buf})
	if len(w.cur) < leafBatch {
		return nil
	}
	return w.send()
}

// send starts writing the current batch, after the one in flight.
func (w *leafWriter) send() error {
	if err := w.wait(); err != nil {
		return err
	}
	batch := w.cur
	w.cur, w.spare = w.spare[:0], nil
	w.busy = true
	go func() {
		for _, l := range batch {
			countLeaf(w.data, l.buf)
		}
		w.result <- batchResult{batch, writeLeaves(w.dev, batch)}
	}()
	return nil
}

// wait waits for the batch in flight and takes its buffers back.
func (w *leafWriter) wait() error {
	if w.busy {
		r := <-w.result
		w.busy = false
		w.writes += uint64(len(r.batch))
		for _, l := range r.batch {
			w.free = append(w.free, l.buf)
		}
		w.spare = r.batch[:0]
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

// writeLeaves seals the leaves of batch and writes them, runs of
// consecutive blocks in one call where the device can. It starts the
// writeback of each run where the device can (a file or block device):
// the leaves are most of what a restore writes, and the disk then writes
// them while the restore goes on, instead of all of them in the commit's
// flush (on a disk-backed file, 85 of the bench's 300 ms).
func writeLeaves(dev transaction.Device, batch []pendingLeaf) error {
	vw, vector := dev.(transaction.VectorWriter)
	ws, _ := dev.(transaction.WritebackStarter)
	var bufs [][]byte
	for i := 0; i < len(batch); {
		j := i + 1
		for j < len(batch) && batch[j].block == batch[j-1].block+1 {
			j++
		}
		bufs = bufs[:0]
		for _, l := range batch[i:j] {
			btree.Validator.Prepare(l.buf, l.block)
			bufs = append(bufs, l.buf)
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

// countLeaf adds a reference to the data block of each mapping of leaf
// buf, a run of consecutive data blocks at a time.
func countLeaf(d *dataCounts, buf []byte) {
	n := btree.Node(buf)
	nr := n.NrEntries()
	if nr == 0 {
		return
	}
	vals := n.ValueBytes()[:8*nr]
	first := binary.LittleEndian.Uint64(vals) >> timeBits
	next := first + 1
	for i := 8; i < len(vals); i += 8 {
		b := binary.LittleEndian.Uint64(vals[i:]) >> timeBits
		if b != next {
			d.incRange(first, next-first)
			first = b
		}
		next = b + 1
	}
	d.incRange(first, next-first)
}

// timeBits is the width of the time below the data block in a mapping's
// value (thin.PackBlockTime).
var timeBits = bits.TrailingZeros64(thin.PackBlockTime(1, 0))
