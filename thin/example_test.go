package thin_test

import (
	"fmt"
	"math"

	"github.com/thinmeta/thinmeta/thin"
)

// memDevice is a metadata device in memory (a real one is a file or a
// block device: see thin.CreateMetadata and thin.OpenMetadata).
type memDevice []byte

func (d memDevice) ReadAt(p []byte, off int64) (int, error)  { return copy(p, d[off:]), nil }
func (d memDevice) WriteAt(p []byte, off int64) (int, error) { return copy(d[off:], p), nil }
func (d memDevice) Flush() error                             { return nil }

// Create a pool, a thin device with some mappings and a snapshot of it,
// commit, and read the result back.
func Example() {
	dev := make(memDevice, 4<<20)
	md, err := thin.Format(dev, int64(len(dev)), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 1000})
	if err != nil {
		panic(err)
	}
	md.CreateThin(1)
	for v := uint64(0); v < 8; v++ {
		md.Map(1, v) // allocates a data block for virtual block v
	}
	md.CreateSnapshot(2, 1)
	md.Map(1, 3) // copy-on-write: the origin gets a new block, the snapshot keeps the old
	if err := md.Commit(); err != nil {
		panic(err)
	}

	p, err := thin.NewPool(dev, int64(len(dev)))
	if err != nil {
		panic(err)
	}
	for d, err := range p.Devices() {
		if err != nil {
			panic(err)
		}
		fmt.Printf("thin %d: %d mappings, created at time %d\n", d.ID, d.MappedBlocks, d.CreationTime)
		for r, err := range p.Runs(d.ID, 0, math.MaxUint64) {
			if err != nil {
				panic(err)
			}
			fmt.Printf("  virtual %d..%d -> data %d (time %d)\n", r.VBlock, r.VBlock+r.Len-1, r.Block, r.Time)
		}
	}
	// Output:
	// thin 1: 8 mappings, created at time 0
	//   virtual 0..2 -> data 0 (time 0)
	//   virtual 3..3 -> data 8 (time 1)
	//   virtual 4..7 -> data 4 (time 0)
	// thin 2: 8 mappings, created at time 1
	//   virtual 0..7 -> data 0 (time 0)
}
