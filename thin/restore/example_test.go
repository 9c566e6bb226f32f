package restore_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/restore"
)

// memDevice is a metadata device in memory, safe for concurrent writes.
type memDevice struct {
	mu sync.Mutex
	b  []byte
}

func (d *memDevice) ReadAt(p []byte, off int64) (int, error) { return copy(p, d.b[off:]), nil }
func (d *memDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return copy(d.b[off:], p), nil
}
func (d *memDevice) Flush() error { return nil }

// Restore a pool from thin_dump XML and read it back.
func ExampleRestore() {
	xml := `<superblock uuid="" time="1" transaction="4" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">
  <device dev_id="3" mapped_blocks="6" transaction="0" creation_time="0" snap_time="1">
    <range_mapping origin_begin="0" data_begin="100" length="5" time="0"/>
    <single_mapping origin_block="9" data_block="7" time="1"/>
  </device>
</superblock>
`
	dev := &memDevice{b: make([]byte, 4<<20)}
	if _, err := restore.Restore(context.Background(), strings.NewReader(xml), dev, int64(len(dev.b)), restore.Options{}); err != nil {
		panic(err)
	}
	p, err := thin.NewPool(dev, int64(len(dev.b)))
	if err != nil {
		panic(err)
	}
	m, _, _ := p.Lookup(3, 9)
	fmt.Println("virtual 9 of thin 3 is data block", m.Block)
	n := 0
	for _, err := range p.Mappings(3, 0, math.MaxUint64) {
		if err != nil {
			panic(err)
		}
		n++
	}
	fmt.Println(n, "mappings")
	// Output:
	// virtual 9 of thin 3 is data block 7
	// 6 mappings
}
