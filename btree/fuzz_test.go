package btree_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/transaction"
)

// FuzzNode treats arbitrary bytes as a B-tree node (padded to a block,
// optionally sealed so that the checksum passes and the structural checks
// are reached). It asserts that validation never panics and fails only with
// a CorruptError naming the block; that every accessor is in bounds on a
// validated node; that CheckKeys agrees with a linear scan; that
// LowerBound and UpperBound agree with a linear scan on sorted keys; and
// that copying the node field by field through the setters reproduces its
// bytes. Seeds: testdata/fuzz/FuzzNode (nodes of the shared fixtures) and
// the ones added below.
func FuzzNode(f *testing.F) {
	leaf := make([]byte, transaction.BlockSize)
	btree.Init(leaf, btree.FlagLeaf, 8)
	n := btree.Node(leaf)
	n.SetNrEntries(5)
	for i := range 5 {
		n.SetKey(i, uint64(10*i+3))
		n.SetUint64Value(i, uint64(i)<<24|1)
	}
	f.Add(leaf[:200], uint64(17), uint64(25), true)
	internal := make([]byte, transaction.BlockSize)
	btree.Init(internal, btree.FlagInternal, 8)
	m := btree.Node(internal)
	m.SetNrEntries(2)
	m.SetKey(0, 0)
	m.SetKey(1, 1000)
	m.SetUint64Value(0, 4)
	m.SetUint64Value(1, 9)
	f.Add(internal[:100], uint64(3), uint64(999), true)
	details := make([]byte, transaction.BlockSize)
	btree.Init(details, btree.FlagLeaf, 24)
	btree.Node(details).SetNrEntries(1)
	f.Add(details[:64], uint64(1), uint64(0), false)

	f.Fuzz(func(t *testing.T, data []byte, loc, key uint64, seal bool) {
		block := make([]byte, transaction.BlockSize)
		copy(block, data)
		if seal {
			btree.Validator.Prepare(block, loc)
		}
		if err := btree.Validator.Validate(block, loc); err != nil {
			var ce *transaction.CorruptError
			if !errors.As(err, &ce) || ce.Block != loc {
				t.Fatalf("error %v is not a CorruptError naming block %d", err, loc)
			}
			if seal && !errors.Is(err, btree.ErrNodeHeader) {
				t.Fatalf("sealed node rejected for something other than its header: %v", err)
			}
			return
		}
		n := btree.Node(block)
		nr, vs := n.NrEntries(), n.ValueSize()
		if !n.IsLeaf() && !n.IsInternal() {
			t.Fatal("validated node is neither leaf nor internal")
		}
		if nr > n.MaxEntries() {
			t.Fatal("validated node has nr_entries > max_entries")
		}
		keys := make([]uint64, nr)
		for i := range nr {
			keys[i] = n.Key(i)
			if got := binary.LittleEndian.Uint64(block[btree.HeaderSize+8*i:]); got != keys[i] {
				t.Fatalf("Key(%d) = %d, bytes say %d", i, keys[i], got)
			}
			if len(n.Value(i)) != vs {
				t.Fatalf("Value(%d) has %d bytes, value size %d", i, len(n.Value(i)), vs)
			}
			if vs == 8 && n.Uint64Value(i) != binary.LittleEndian.Uint64(n.Value(i)) {
				t.Fatalf("Uint64Value(%d) disagrees with Value", i)
			}
		}
		if len(n.ValueBytes()) != nr*vs {
			t.Fatal("ValueBytes has the wrong length")
		}

		sorted := true
		for i := 1; i < nr; i++ {
			if keys[i] <= keys[i-1] {
				sorted = false
			}
		}
		// CheckNode as the root of a tree of the node's own value size: the
		// rules that remain are key order, internal value size, and no
		// empty internal node.
		err := btree.CheckNode(n, loc, btree.RootPlace(vs), 0)
		var want error
		switch {
		case n.IsInternal() && vs != btree.InternalValueSize:
			want = btree.ErrValueSize
		case !sorted:
			want = btree.ErrKeyOrder
		case n.IsInternal() && nr == 0:
			want = btree.ErrNodeHeader
		}
		if (want == nil) != (err == nil) || want != nil && !errors.Is(err, want) {
			t.Fatalf("CheckNode = %v, want %v (keys sorted %v, nr %d, value size %d)", err, want, sorted, nr, vs)
		}
		lb, ub := n.LowerBound(key), n.UpperBound(key)
		if sorted {
			wantLB, wantUB := -1, nr
			for i, k := range keys {
				if k <= key {
					wantLB = i
				}
				if k >= key && wantUB == nr {
					wantUB = i
				}
			}
			if lb != wantLB || ub != wantUB {
				t.Fatalf("key %d: LowerBound %d UpperBound %d, linear scan %d %d", key, lb, ub, wantLB, wantUB)
			}
		} else if lb < -1 || lb >= nr || ub < 0 || ub > nr {
			t.Fatalf("unsorted keys: LowerBound %d UpperBound %d out of range", lb, ub)
		}

		// Rebuild the node through the setters.
		copyBlock := make([]byte, transaction.BlockSize)
		c := btree.Node(copyBlock)
		c.SetFlags(n.Flags())
		c.SetValueSize(vs)
		c.SetMaxEntries(n.MaxEntries())
		c.SetNrEntries(nr)
		for i := range nr {
			c.SetKey(i, keys[i])
			c.SetValue(i, n.Value(i))
		}
		valuesAt := btree.HeaderSize + 8*n.MaxEntries()
		if !bytes.Equal(copyBlock[btree.HeaderSize:btree.HeaderSize+8*nr], block[btree.HeaderSize:btree.HeaderSize+8*nr]) ||
			!bytes.Equal(copyBlock[valuesAt:valuesAt+nr*vs], block[valuesAt:valuesAt+nr*vs]) {
			t.Fatal("entries differ after copying through the setters")
		}
		btree.Validator.Prepare(copyBlock, loc)
		if !bytes.Equal(copyBlock[4:28], block[4:28]) {
			t.Fatal("header differs after copying through the setters")
		}
		if err := btree.Validator.Validate(copyBlock, loc); err != nil {
			t.Fatalf("copy of a valid node rejected: %v", err)
		}
	})
}
