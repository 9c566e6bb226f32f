package check

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/thinmeta/thinmeta/internal/refcount"
	"github.com/thinmeta/thinmeta/thin"
)

// The counter, which counts runs of consecutive data blocks at once, gives
// every data block the count and every device the out-of-range tally
// (how many, and the first) that counting the values one at a time gives:
// leaves of runs, gaps, repeats and blocks around and beyond the end of
// the data device, for several devices in one batch.
func TestDataCounterRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := range 200 {
		nrData := uint64(1 + rng.IntN(3<<15))
		c := &checker{nrData: nrData, data: refcount.New(nrData), dataRange: map[uint64][2]uint64{}}
		defer c.releaseCounts()
		model := map[uint64]uint32{}
		beyond := map[uint64][2]uint64{}
		d := c.startDataCount()
		for dev := range uint64(1 + rng.IntN(4)) {
			for range 1 + rng.IntN(5) {
				var vals []byte
				blk := rng.Uint64N(nrData + 10)
				if rng.IntN(3) == 0 {
					blk = nrData - min(nrData, uint64(rng.IntN(40))) // runs into the end
				}
				for range 1 + rng.IntN(252) {
					vals = binary.LittleEndian.AppendUint64(vals, thin.PackBlockTime(blk, uint32(rng.IntN(5))))
					if blk < nrData {
						model[blk]++
					} else {
						r := beyond[dev]
						if r[0] == 0 {
							r[1] = blk
						}
						r[0]++
						beyond[dev] = r
					}
					switch rng.IntN(8) {
					case 0:
						blk = rng.Uint64N(nrData + 10)
					case 1: // the same block again
					default:
						blk++
					}
				}
				d.add(dev, vals)
			}
		}
		d.finish()
		for b := range nrData {
			if got := c.data.Get(b); got != model[b] {
				t.Fatalf("trial %d: block %d counted %d, want %d", trial, b, got, model[b])
			}
		}
		if len(c.dataRange) != len(beyond) {
			t.Fatalf("trial %d: beyond the device %v, want %v", trial, c.dataRange, beyond)
		}
		for dev, r := range beyond {
			if c.dataRange[dev] != r {
				t.Fatalf("trial %d: device %d beyond the device %v, want %v", trial, dev, c.dataRange[dev], r)
			}
		}
	}
}

// benchBatches returns batches of values shaped like the bench pool's
// (bench/compare.sh: 10M mappings of 50 devices over 7.8M data blocks, in
// runs of consecutive blocks 21 long on average) and the data device size.
func benchBatches() ([]*valueBatch, uint64) {
	const nrData, nrValues, devices = 7805733, 10000000, 50
	rng := rand.New(rand.NewPCG(1, 2))
	var batches []*valueBatch
	b := &valueBatch{}
	for dev := range uint64(devices) {
		for k := 0; k < nrValues/devices; {
			run := 1 + rng.IntN(42)
			blk := rng.Uint64N(nrData - uint64(run))
			t := uint32(rng.IntN(100))
			for j := range run {
				if len(b.vals)+8 > batchBytes {
					batches = append(batches, b)
					b = &valueBatch{}
				}
				b.vals = binary.LittleEndian.AppendUint64(b.vals, thin.PackBlockTime(blk+uint64(j), t))
				if k := len(b.runs); k > 0 && b.runs[k-1].dev == dev {
					b.runs[k-1].end = len(b.vals)
				} else {
					b.runs = append(b.runs, devRun{dev, len(b.vals)})
				}
			}
			k += run
		}
	}
	return append(batches, b), nrData
}

// BenchmarkDataCounter counts the values of a pool like the bench pool's,
// on one goroutine: the counter's share of a check.
func BenchmarkDataCounter(b *testing.B) {
	batches, nrData := benchBatches()
	for b.Loop() {
		c := &checker{nrData: nrData, data: refcount.New(nrData), dataRange: map[uint64][2]uint64{}}
		d := &dataCounter{c: c}
		for _, vb := range batches {
			d.countBatch(vb)
		}
		c.releaseCounts()
	}
}
