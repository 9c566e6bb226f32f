package btree_test

import (
	"encoding/binary"
	"fmt"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/transaction"
)

type memDevice []byte

func (d memDevice) ReadAt(p []byte, off int64) (int, error)  { return copy(p, d[off:]), nil }
func (d memDevice) WriteAt(p []byte, off int64) (int, error) { return copy(d[off:], p), nil }
func (d memDevice) Flush() error                             { return nil }

// Build a tree in a transaction, change it copy-on-write, and walk it.
func ExampleInsert() {
	dev := make(memDevice, 8<<20)
	tm := transaction.NewManager(dev, int64(len(dev)))
	if _, err := spacemap.CreateMetadata(tm, tm.NrBlocks()); err != nil { // attaches itself to tm
		panic(err)
	}
	vt := &btree.ValueType{Size: 8}
	val := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

	b := btree.NewBuilder(tm, vt)
	for k := uint64(0); k < 1000; k++ {
		b.Add(k*2, val(k))
	}
	root, _ := b.Finish()
	root, _, _ = btree.Insert(tm, root, vt, 7, val(700))
	root, _, _ = btree.Remove(tm, root, vt, 10)

	t := btree.Tree{R: tm, Root: root, ValueSize: 8}
	t.Walk(4, 12, func(k uint64, v []byte) error {
		fmt.Println(k, binary.LittleEndian.Uint64(v))
		return nil
	})
	// Output:
	// 4 2
	// 6 3
	// 7 700
	// 8 4
}
