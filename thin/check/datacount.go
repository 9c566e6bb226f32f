package check

import (
	"encoding/binary"
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

// Batches of 256 KiB (the values of about 130 full leaves), four in flight
// (1 MiB): with 64 KiB batches the walk waited for the counter to hand one
// back, and the counter for the walk to fill the next, often enough to cost
// the check 12% of its wall time on the bench pool; two in flight lose it
// again.
const (
	batchBytes = 256 << 10
	maxBatches = 4
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
		d.countBatch(b)
		b.vals, b.runs = b.vals[:0], b.runs[:0]
		d.free <- b
	}
}

// countBatch counts the values of b.
func (d *dataCounter) countBatch(b *valueBatch) {
	off := 0
	for _, r := range b.runs {
		// Count the device's values in runs of consecutive data
		// blocks: [start, next). An empty run from 0 is extended by
		// block 0 like any other. Runs are long (21 blocks on average
		// in the bench pool), so four values at a time are first tried
		// as the run's next four: one branch for the four.
		var start, next uint64
		vals := b.vals[off:r.end]
		i := 0
		for ; i+32 <= len(vals); i += 32 {
			q := vals[i : i+32]
			b0 := binary.LittleEndian.Uint64(q[0:]) >> blockShift
			b1 := binary.LittleEndian.Uint64(q[8:]) >> blockShift
			b2 := binary.LittleEndian.Uint64(q[16:]) >> blockShift
			b3 := binary.LittleEndian.Uint64(q[24:]) >> blockShift
			if (b0^next)|(b1^(next+1))|(b2^(next+2))|(b3^(next+3)) == 0 {
				next += 4
				continue
			}
			for _, blk := range [4]uint64{b0, b1, b2, b3} {
				if blk == next {
					next++
					continue
				}
				d.count(r.dev, start, next-start)
				start, next = blk, blk+1
			}
		}
		for ; i+8 <= len(vals); i += 8 {
			blk := binary.LittleEndian.Uint64(vals[i:]) >> blockShift
			if blk == next {
				next++
				continue
			}
			d.count(r.dev, start, next-start)
			start, next = blk, blk+1
		}
		d.count(r.dev, start, next-start)
		off = r.end
	}
}

// blockShift takes a mapping value's data block out of it (as
// thin.UnpackBlockTime does).
const blockShift = 24

// count counts the references of device dev to the n data blocks from
// start, in order, noting those beyond the data device.
func (d *dataCounter) count(dev, start, n uint64) {
	c := d.c
	if n == 0 {
		return
	}
	if start < c.nrData && n <= c.nrData-start {
		if c.data != nil {
			c.data.IncRun(start, n)
		}
		return
	}
	for blk := start; blk < start+n; blk++ {
		if blk >= c.nrData {
			c.outOfRange(dev, blk)
			continue
		}
		if c.data != nil {
			c.data.Inc(blk)
		}
	}
}
