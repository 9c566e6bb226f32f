package ls_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/delta"
	"github.com/thinmeta/thinmeta/thin/ls"
	"github.com/thinmeta/thinmeta/thin/rmap"
)

// patched is an io.ReaderAt over an image with one block replaced.
type patched struct {
	base  []byte
	b     uint64
	block []byte
}

func (p *patched) ReadAt(buf []byte, off int64) (int, error) {
	r := bytes.NewReader(p.base)
	n, err := r.ReadAt(buf, off)
	lo, hi := int64(p.b)*4096, int64(p.b+1)*4096
	for i := range n {
		if o := off + int64(i); o >= lo && o < hi {
			buf[i] = p.block[o-lo]
		}
	}
	return n, err
}

// FuzzQueries damages one B-tree node of a kernel-written pool whose
// snapshots share nodes (8 bytes at any offset, the checksum resealed or
// not) and runs ls, rmap and delta on it: they may fail, never panic.
func FuzzQueries(f *testing.F) {
	var fixture string
	for _, p := range tptest.Fixtures(f) {
		if tptest.Name(p) == "tmeta_with_shared_internals_and_leaves" {
			fixture = p
		}
	}
	if fixture == "" {
		f.Skip("fixture tmeta_with_shared_internals_and_leaves missing")
	}
	img := tptest.Unpack(f, fixture)
	base, err := os.ReadFile(img)
	if err != nil {
		f.Fatal(err)
	}
	p, err := thin.Open(img, nil)
	if err != nil {
		f.Fatal(err)
	}
	var nodes []uint64
	add := func(b uint64, _ btree.Node) error { nodes = append(nodes, b); return nil }
	p.DetailsTree().WalkNodes(add)
	p.MappingTree().WalkNodes(add)
	for dr, err := range p.DeviceRoots() {
		if err == nil {
			p.DeviceTree(dr.Root).WalkNodes(add)
		}
	}
	p.Close()

	f.Add(uint16(0), uint16(16), uint64(0), true)              // nr_entries of the details root
	f.Add(uint16(5), uint16(20), uint64(7), true)              // max_entries
	f.Add(uint16(9), uint16(32), uint64(1)<<63, true)          // first key
	f.Add(uint16(12), uint16(2100), uint64(1)<<62, true)       // a value: a huge data block or child
	f.Add(uint16(3), uint16(4), uint64(3), true)               // flags
	f.Add(uint16(7), uint16(24), uint64(16), true)             // value size
	f.Add(uint16(11), uint16(1000), uint64(0xdeadbeef), false) // bad checksum
	f.Fuzz(func(t *testing.T, sel, off uint16, v uint64, reseal bool) {
		b := nodes[int(sel)%len(nodes)]
		blk := append([]byte(nil), base[b*4096:(b+1)*4096]...)
		o := min(int(off)%4096, 4096-8)
		binary.LittleEndian.PutUint64(blk[o:], v)
		if reseal {
			btree.Validator.Prepare(blk, b)
		}
		pool, err := thin.NewPool(&patched{base: base, b: b, block: blk}, int64(len(base)))
		if err != nil {
			return
		}
		ls.List(context.Background(), pool, ls.Options{Exclusive: true})
		rmap.Map(context.Background(), pool, []rmap.Region{{Begin: 0, End: 1 << 40}})
		delta.Compare(context.Background(), pool, 1, 2)
	})
}
