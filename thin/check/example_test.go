package check_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/transaction"
)

type memDevice []byte

func (d memDevice) ReadAt(p []byte, off int64) (int, error)  { return copy(p, d[off:]), nil }
func (d memDevice) WriteAt(p []byte, off int64) (int, error) { return copy(d[off:], p), nil }
func (d memDevice) Flush() error                             { return nil }

// Check a pool, then damage one of its nodes and check it again.
func ExampleDevice() {
	dev := make(memDevice, 4<<20)
	md, _ := thin.Format(dev, int64(len(dev)), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 100})
	md.CreateThin(1)
	md.Map(1, 0)
	md.Commit()

	sum, _ := check.Device(context.Background(), dev, int64(len(dev)), check.Options{}, nil)
	fmt.Println("clean:", sum.OK(false), "devices:", sum.Devices, "mappings:", sum.Mappings)

	// Flip a byte of device 1's mapping tree (its root is in the top level).
	p, _ := thin.NewPool(dev, int64(len(dev)))
	root, _ := p.Root(1)
	dev[root*4096+100] ^= 0xff
	sum, _ = check.Device(context.Background(), dev, int64(len(dev)), check.Options{}, func(f check.Finding) {
		var ce *transaction.CorruptError
		if errors.As(f.Err, &ce) {
			fmt.Printf("%s, thin %d: block %d is the root: %v; checksum error: %v\n",
				f.Area, f.Device, ce.Block, ce.Block == root, errors.Is(f.Err, transaction.ErrChecksum))
		}
	})
	fmt.Println("clean:", sum.OK(false))
	// Output:
	// clean: true devices: 1 mappings: 1
	// mapping tree, thin 1: block 9 is the root: true; checksum error: true
	// clean: false
}
