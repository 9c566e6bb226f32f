package check

import (
	"encoding/binary"

	"github.com/thinmeta/thinmeta/thin"
)

// dataCounter counts the references of the mapping trees' leaves to data
// blocks on a goroutine of its own, while the walk goes on: on a large pool
// counting is a third of the check's work, and the walk (reads, checksums,
// node checks) the rest. The walk hands it the raw values of each leaf in
// batches; it counts them in runs of consecutive data blocks (counts.incRun:
// one addition per word of the counts a run covers), into checker.data
// and checker.dataRange, which nothing else touches until finish has
// returned. It reports nothing itself, so findings keep their order.
type dataCounter struct {
	c    *checker
	work chan *valueBatch
	free chan *valueBatch
	done chan struct{}
	cur  *valueBatch
	made int // batches allocated
}

// valueBatch holds the values of consecutive leaves: vals, the raw
// little-endian block-and-time values, and runs, the device of each
// stretch of them.
type valueBatch struct {
	vals []byte
	runs []devRun
}

// devRun says that the values up to byte end (from the previous run's end)
// belong to device dev.
type devRun struct {
	dev uint64
	end int
}

const (
	batchBytes = 64 << 10 // values of about 60 full leaves
	maxBatches = 4        // in flight at most: 256 KiB
)

// startDataCount starts the counting goroutine.
func (c *checker) startDataCount() *dataCounter {
	if c.batches == nil {
		c.batches = make(chan *valueBatch, maxBatches)
	}
	d := &dataCounter{c: c, work: make(chan *valueBatch, maxBatches), free: c.batches, done: make(chan struct{})}
	go d.run()
	return d
}

// add queues the values of a leaf of device dev's mapping tree.
func (d *dataCounter) add(dev uint64, vals []byte) {
	if d.cur != nil && len(d.cur.vals)+len(vals) > batchBytes {
		d.work <- d.cur
		d.cur = nil
	}
	if d.cur == nil {
		d.cur = d.batch()
	}
	b := d.cur
	b.vals = append(b.vals, vals...)
	if k := len(b.runs); k > 0 && b.runs[k-1].dev == dev {
		b.runs[k-1].end = len(b.vals)
	} else {
		b.runs = append(b.runs, devRun{dev, len(b.vals)})
	}
}

// batch returns an empty batch: an idle one, a new one while fewer than
// maxBatches exist, or else the next the counter is done with.
func (d *dataCounter) batch() *valueBatch {
	select {
	case b := <-d.free:
		return b
	default:
	}
	if d.c.nrBatches < maxBatches {
		d.c.nrBatches++
		return &valueBatch{vals: make([]byte, 0, batchBytes)}
	}
	return <-d.free
}

// finish counts what is queued and waits for the counter to end.
func (d *dataCounter) finish() {
	if d.cur != nil && len(d.cur.vals) > 0 {
		d.work <- d.cur
	} else if d.cur != nil {
		d.free <- d.cur
	}
	d.cur = nil
	close(d.work)
	<-d.done
}

func (d *dataCounter) run() {
	defer close(d.done)
	for b := range d.work {
		off := 0
		for _, r := range b.runs {
			// Count the device's values in runs of consecutive data
			// blocks: start, start+1, ... start+n-1.
			var start, n uint64
			for ; off+8 <= r.end; off += 8 {
				blk, _ := thin.UnpackBlockTime(binary.LittleEndian.Uint64(b.vals[off:]))
				if blk == start+n && n > 0 {
					n++
					continue
				}
				d.count(r.dev, start, n)
				start, n = blk, 1
			}
			d.count(r.dev, start, n)
		}
		b.vals, b.runs = b.vals[:0], b.runs[:0]
		d.free <- b
	}
}

// count counts the references of device dev to the n data blocks from
// start, in order, noting those beyond the data device.
func (d *dataCounter) count(dev, start, n uint64) {
	c := d.c
	if n == 0 {
		return
	}
	if start < c.nrData && n <= c.nrData-start {
		if c.data != nil {
			c.data.incRun(start, n)
		}
		return
	}
	for blk := start; blk < start+n; blk++ {
		if blk >= c.nrData {
			c.outOfRange(dev, blk)
			continue
		}
		if c.data != nil {
			c.data.inc(blk)
		}
	}
}
