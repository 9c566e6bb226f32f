package dump_test

import (
	"context"
	"os"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
)

type memDevice []byte

func (d memDevice) ReadAt(p []byte, off int64) (int, error)  { return copy(p, d[off:]), nil }
func (d memDevice) WriteAt(p []byte, off int64) (int, error) { return copy(d[off:], p), nil }
func (d memDevice) Flush() error                             { return nil }

// Dump a pool in thin_dump's XML format.
func ExampleDump() {
	dev := make(memDevice, 4<<20)
	md, _ := thin.Format(dev, int64(len(dev)), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 100})
	md.CreateThin(7)
	md.Map(7, 10)
	md.Map(7, 11)
	md.Map(7, 20)
	md.SetTransactionID(0, 3)
	md.Commit()

	p, _ := thin.NewPool(dev, int64(len(dev)))
	if err := dump.Dump(context.Background(), os.Stdout, p, dump.Options{}); err != nil {
		panic(err)
	}
	// Output:
	// <superblock uuid="" time="0" transaction="3" flags="0" version="2" data_block_size="128" nr_data_blocks="100">
	//   <device dev_id="7" mapped_blocks="3" transaction="0" creation_time="0" snap_time="0">
	//     <range_mapping origin_begin="10" data_begin="0" length="2" time="0"/>
	//     <single_mapping origin_block="20" data_block="2" time="0"/>
	//   </device>
	// </superblock>
}
