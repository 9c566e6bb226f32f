package btree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/transaction"
	"pgregory.net/rapid"
)

// testSM is a space map for B-tree tests: counts in a map, fresh blocks
// handed out in order and never reused.
type testSM struct {
	counts map[uint64]uint32
	next   uint64
}

func (s *testSM) NewBlock() (uint64, error) {
	b := s.next
	s.next++
	s.counts[b] = 1
	return b, nil
}
func (s *testSM) Inc(b uint64) error { s.counts[b]++; return nil }
func (s *testSM) Dec(b uint64) error {
	if s.counts[b] == 0 {
		return fmt.Errorf("dec of free block %d", b)
	}
	s.counts[b]--
	if s.counts[b] == 0 {
		delete(s.counts, b)
	}
	return nil
}
func (s *testSM) Count(b uint64) (uint32, error) { return s.counts[b], nil }

// env is a transaction manager over a memory device with a test space map,
// and a value type whose values are "data blocks" with their own counts.
type env struct {
	tm   *transaction.Manager
	sm   *testSM
	data map[uint64]int
	vt   *ValueType
}

func newEnv(blocks int64) *env {
	dev := memdev.New(blocks * transaction.BlockSize)
	e := &env{tm: transaction.NewManager(dev, dev.Size()), sm: &testSM{counts: map[uint64]uint32{}, next: 1}, data: map[uint64]int{}}
	e.tm.SetSpaceMap(e.sm)
	e.vt = &ValueType{
		Size: 8,
		Inc:  func(v []byte) error { e.data[binary.LittleEndian.Uint64(v)]++; return nil },
		Dec: func(v []byte) error {
			k := binary.LittleEndian.Uint64(v)
			if e.data[k] == 0 {
				return fmt.Errorf("dec of unreferenced value %d", k)
			}
			e.data[k]--
			if e.data[k] == 0 {
				delete(e.data, k)
			}
			return nil
		},
		Equal: func(a, b []byte) bool { return string(a) == string(b) },
	}
	return e
}

func val(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// verify checks a set of trees against their models: contents, node
// invariants, and that every block and value count equals the references
// that exist.
func (e *env) verify(t interface {
	Fatalf(string, ...any)
}, roots []uint64, models []map[uint64]uint64) {
	refs := map[uint64]uint32{}
	vals := map[uint64]int{}
	seen := map[uint64]bool{}
	for ti, root := range roots {
		refs[root]++
		tree := Tree{R: e.tm, Root: root, ValueSize: 8}
		var got []uint64
		err := tree.WalkNodes(func(b uint64, n Node) error {
			if b != root && n.NrEntries() < n.MaxEntries()/3 {
				return fmt.Errorf("node %d underfull: %d of %d", b, n.NrEntries(), n.MaxEntries())
			}
			first := !seen[b]
			seen[b] = true
			if n.IsInternal() {
				for i := range n.NrEntries() {
					if first {
						refs[n.Uint64Value(i)]++
					}
				}
				return nil
			}
			for i := range n.NrEntries() {
				got = append(got, n.Key(i))
				if first {
					vals[n.Uint64Value(i)]++
				}
				if n.Uint64Value(i) != models[ti][n.Key(i)] {
					return fmt.Errorf("key %d: value %d, model %d", n.Key(i), n.Uint64Value(i), models[ti][n.Key(i)])
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("tree %d: %v", ti, err)
		}
		want := slices.Sorted(maps.Keys(models[ti]))
		if !slices.Equal(got, want) {
			t.Fatalf("tree %d: %d keys, model %d", ti, len(got), len(want))
		}
	}
	if !maps.Equal(refs, e.sm.counts) {
		t.Fatalf("block counts differ from references:\nrefs %v\nsm   %v", refs, e.sm.counts)
	}
	if !maps.Equal(vals, e.data) {
		t.Fatalf("value counts differ from references: %d vs %d entries", len(vals), len(e.data))
	}
}

// Random inserts, removes, snapshots (a second reference to a root) and
// deletes against map models: contents, shapes and reference counts stay
// exact.
func TestWriteModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := newEnv(1 << 16)
		r0, err := Empty(e.tm, e.vt)
		if err != nil {
			t.Fatal(err)
		}
		roots := []uint64{r0}
		models := []map[uint64]uint64{{}}
		keySpace := rapid.Uint64Range(0, rapid.Uint64Range(10, 5000).Draw(t, "keyspace")).Draw(t, "ks")
		nextVal := uint64(1 << 32)
		steps := rapid.IntRange(1, 600).Draw(t, "steps")
		for range steps {
			ti := rapid.IntRange(0, len(roots)-1).Draw(t, "tree")
			switch op := rapid.IntRange(0, 99).Draw(t, "op"); {
			case op < 60:
				k := rapid.Uint64Range(0, keySpace).Draw(t, "k")
				nextVal++
				e.data[nextVal]++ // the new value's reference is handed over
				nr, ins, err := Insert(e.tm, roots[ti], e.vt, k, val(nextVal))
				if err != nil {
					t.Fatal(err)
				}
				_, had := models[ti][k]
				if ins == had {
					t.Fatalf("insert %d: inserted=%v, model had it=%v", k, ins, had)
				}
				roots[ti] = nr
				models[ti][k] = nextVal
			case op < 95:
				k := rapid.Uint64Range(0, keySpace).Draw(t, "k")
				nr, rem, err := Remove(e.tm, roots[ti], e.vt, k)
				if err != nil {
					t.Fatal(err)
				}
				_, had := models[ti][k]
				if rem != had {
					t.Fatalf("remove %d: removed=%v, model had it=%v", k, rem, had)
				}
				roots[ti] = nr
				delete(models[ti], k)
			case op < 98 && len(roots) < 4:
				// Snapshot: share the whole tree through its root.
				e.sm.Inc(roots[ti])
				roots = append(roots, roots[ti])
				models = append(models, maps.Clone(models[ti]))
			default:
				if len(roots) > 1 {
					if err := Delete(e.tm, roots[ti], e.vt); err != nil {
						t.Fatal(err)
					}
					roots = slices.Delete(roots, ti, ti+1)
					models = slices.Delete(models, ti, ti+1)
				}
			}
		}
		e.verify(t, roots, models)
		for _, r := range roots {
			if err := Delete(e.tm, r, e.vt); err != nil {
				t.Fatal(err)
			}
		}
		if len(e.sm.counts) != 0 || len(e.data) != 0 {
			t.Fatalf("after deleting every tree: %d blocks and %d values still referenced", len(e.sm.counts), len(e.data))
		}
	})
}

// Dense sequential inserts and removals build and tear down multi-level
// trees.
func TestWriteLarge(t *testing.T) {
	e := newEnv(1 << 18)
	root, _ := Empty(e.tm, e.vt)
	model := map[uint64]uint64{}
	const n = 200000
	for i := range uint64(n) {
		k := (i * 7919) % n
		e.data[k+1]++
		var err error
		if root, _, err = Insert(e.tm, root, e.vt, k, val(k+1)); err != nil {
			t.Fatal(err)
		}
		model[k] = k + 1
	}
	e.verify(t, []uint64{root}, []map[uint64]uint64{model})
	for i := range uint64(n) {
		if i%3 == 0 {
			continue
		}
		var err error
		if root, _, err = Remove(e.tm, root, e.vt, i); err != nil {
			t.Fatal(err)
		}
		delete(model, i)
	}
	e.verify(t, []uint64{root}, []map[uint64]uint64{model})
	if v, ok, err := (Tree{R: e.tm, Root: root, ValueSize: 8}).Lookup(3); err != nil || !ok || binary.LittleEndian.Uint64(v) != 4 {
		t.Fatalf("lookup 3: %v %v %v", v, ok, err)
	}
}

// The builder makes the same tree contents as the model, with every
// non-root node at least half full, and shares subtrees added by reference.
func TestBuilder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := newEnv(1 << 16)
		n := rapid.IntRange(0, 30000).Draw(t, "n")
		b := NewBuilder(e.tm, e.vt)
		model := map[uint64]uint64{}
		k := uint64(0)
		for i := range n {
			k += rapid.Uint64Range(1, 1000).Draw(t, "gap")
			if err := b.Add(k, val(uint64(i))); err != nil {
				t.Fatal(err)
			}
			e.data[uint64(i)]++
			model[k] = uint64(i)
		}
		if n > 0 {
			if err := b.Add(0, val(0)); err != ErrUnsorted {
				t.Fatalf("out-of-order add: %v", err)
			}
		}
		root, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		e.verify(t, []uint64{root}, []map[uint64]uint64{model})
		tree := Tree{R: e.tm, Root: root, ValueSize: 8}
		err = tree.WalkNodes(func(b uint64, nd Node) error {
			if b != root && nd.NrEntries() < nd.MaxEntries()/2 {
				return fmt.Errorf("node %d less than half full: %d", b, nd.NrEntries())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestMaxEntries(t *testing.T) {
	for vs, want := range map[int]int{4: 336, 8: 252, 16: 168, 24: 126} {
		if got := MaxEntries(vs); got != want {
			t.Errorf("MaxEntries(%d) = %d, want %d", vs, got, want)
		}
	}
	if MaxEntries(MaxValueSize) < 3 || MaxEntries(MaxValueSize+1) >= 3 {
		t.Errorf("MaxValueSize %d is not the largest with 3 entries", MaxValueSize)
	}
}

// A cursor yields the same entries as Walk, on trees of every height.
func TestCursor(t *testing.T) {
	e := newEnv(1 << 16)
	root, _ := Empty(e.tm, e.vt)
	check := func(n int) {
		var want []uint64
		Tree{R: e.tm, Root: root, ValueSize: 8}.Walk(0, ^uint64(0), func(k uint64, v []byte) error {
			want = append(want, k, binary.LittleEndian.Uint64(v))
			return nil
		})
		var got []uint64
		c := NewCursor(Tree{R: e.tm, Root: root, ValueSize: 8})
		for k, v, ok := c.Next(); ok; k, v, ok = c.Next() {
			got = append(got, k, binary.LittleEndian.Uint64(v))
		}
		if c.Err() != nil || !slices.Equal(got, want) || len(got) != 2*n {
			t.Fatalf("%d entries: cursor %d values, walk %d, err %v", n, len(got), len(want), c.Err())
		}
	}
	check(0)
	n := 0
	for _, target := range []int{1, 252, 253, 5000, 70000} {
		for ; n < target; n++ {
			e.data[uint64(n)]++
			root, _, _ = Insert(e.tm, root, e.vt, uint64(n)*3, val(uint64(n)))
		}
		check(n)
	}
}

// handTree returns an env whose device holds, at block 1, an internal root
// laid out by hand with nr entries pointing at leaf 2 (keys 10, 20, 30),
// and value slot 0 pointing at leaf 2 even when nr is 0: the stale bytes a
// damaged node can hold.
func handTree(t *testing.T, nr int, keys []uint64) *env {
	t.Helper()
	e := newEnv(16)
	dev := e.tm.Reader().ReaderAt().(*memdev.Dev)
	root := make([]byte, transaction.BlockSize)
	Init(root, FlagInternal, 8)
	n := Node(root)
	for i, k := range keys {
		n.SetKey(i, k)
		n.SetUint64Value(i, 2)
	}
	n.SetUint64Value(0, 2)
	n.SetNrEntries(nr)
	Validator.Prepare(root, 1)
	dev.WriteAt(root, transaction.BlockSize)
	leaf := make([]byte, transaction.BlockSize)
	Init(leaf, FlagLeaf, 8)
	l := Node(leaf)
	for i, k := range []uint64{10, 20, 30} {
		l.SetKey(i, k)
		l.SetUint64Value(i, k)
	}
	l.SetNrEntries(3)
	Validator.Prepare(leaf, 2)
	dev.WriteAt(leaf, 2*transaction.BlockSize)
	e.sm.counts[1], e.sm.counts[2], e.sm.next = 1, 1, 3
	e.data[10], e.data[20], e.data[30] = 1, 1, 1
	return e
}

// The write path holds every node it changes to CheckNode. An empty
// internal node used to be descended through its stale first pointer (an
// insert then landed in whatever block that named), and keys out of order
// were changed further.
func TestWriteRefusesUnsoundNodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		nr   int
		keys []uint64
		want error
	}{
		{"empty internal root", 0, nil, ErrNodeHeader},
		{"keys out of order", 2, []uint64{10, 5}, ErrKeyOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := handTree(t, tc.nr, tc.keys)
			if _, _, err := Insert(e.tm, 1, e.vt, 15, val(15)); !errors.Is(err, tc.want) {
				t.Errorf("Insert: %v, want %v", err, tc.want)
			}
			e = handTree(t, tc.nr, tc.keys)
			if _, _, err := Remove(e.tm, 1, e.vt, 20); !errors.Is(err, tc.want) {
				t.Errorf("Remove: %v, want %v", err, tc.want)
			}
			e = handTree(t, tc.nr, tc.keys)
			if err := Delete(e.tm, 1, e.vt); !errors.Is(err, tc.want) {
				t.Errorf("Delete: %v, want %v", err, tc.want)
			}
		})
	}
}

// An error about a node being changed names the node's block on the device,
// not the shadow copy the transaction made of it (which nothing committed
// refers to): here a value that cannot be released (beyond its space map)
// met when MapTo-style overwriting or removing its key, and a root's only
// child that its space map does not cover, met when removal pulls it up.
func TestWriteErrorsNameCommittedBlocks(t *testing.T) {
	const bad = 1 << 40 // the value whose release fails
	build := func(t *testing.T, n int) (*env, uint64, map[uint64]uint64) {
		e := newEnv(1 << 12)
		root, _ := Empty(e.tm, e.vt)
		for k := range uint64(n) {
			v := k + 1
			if k == 500 {
				v = bad
			}
			e.data[v]++
			var err error
			if root, _, err = Insert(e.tm, root, e.vt, k, val(v)); err != nil {
				t.Fatal(err)
			}
		}
		commitEnv(t, e)
		// Where each key's leaf is, as committed.
		leafOf := map[uint64]uint64{}
		err := (Tree{R: e.tm, Root: root, ValueSize: 8}).WalkNodes(func(b uint64, n Node) error {
			for i := range n.NrEntries() {
				leafOf[n.Key(i)] = b
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		dec := e.vt.Dec
		e.vt.Dec = func(v []byte) error {
			if binary.LittleEndian.Uint64(v) == bad {
				return fmt.Errorf("%w: data block %d", transaction.ErrBlockRange, bad)
			}
			return dec(v)
		}
		return e, root, leafOf
	}
	wantBlock := func(t *testing.T, what string, err error, want uint64) {
		t.Helper()
		var ce *transaction.CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, transaction.ErrBlockRange) {
			t.Fatalf("%s: %v; want a CorruptError wrapping ErrBlockRange", what, err)
		}
		if ce.Block != want {
			t.Fatalf("%s: the error names block %d, the committed node is %d: %v", what, ce.Block, want, err)
		}
	}
	t.Run("overwrite", func(t *testing.T) {
		e, root, leafOf := build(t, 2000)
		_, _, err := Insert(e.tm, root, e.vt, 500, val(7))
		wantBlock(t, "overwrite of key 500", err, leafOf[500])
	})
	t.Run("remove", func(t *testing.T) {
		e, root, leafOf := build(t, 2000)
		_, _, err := Remove(e.tm, root, e.vt, 500)
		wantBlock(t, "remove of key 500", err, leafOf[500])
	})
	t.Run("pull-up", func(t *testing.T) {
		// A root with one child: remove every key but those of the
		// first leaf, commit, then drop the child from the space map.
		e := newEnv(1 << 12)
		root, _ := Empty(e.tm, e.vt)
		for k := range uint64(600) {
			e.data[k+1]++
			var err error
			if root, _, err = Insert(e.tm, root, e.vt, k, val(k+1)); err != nil {
				t.Fatal(err)
			}
		}
		// Removing from the top merges the root's last two children into
		// one, which the next removal pulls up.
		var blk []byte
		for k := uint64(599); ; k-- {
			var err error
			if root, _, err = Remove(e.tm, root, e.vt, k); err != nil {
				t.Fatal(err)
			}
			if blk, err = e.tm.Read(root, Validator); err != nil {
				t.Fatal(err)
			}
			if n := Node(blk); n.IsInternal() && n.NrEntries() == 1 {
				break
			}
			if k == 10 {
				t.Fatal("the root never had a single child")
			}
		}
		child := Node(blk).Uint64Value(0)
		commitEnv(t, e)
		e.tm.SetSpaceMap(&rangeSM{testSM: e.sm, bad: child})
		_, _, err := Remove(e.tm, root, e.vt, 5)
		wantBlock(t, "pull-up", err, root)
	})
}

// commitEnv commits e's transaction (with a dummy superblock).
func commitEnv(t *testing.T, e *env) {
	t.Helper()
	if err := e.tm.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := e.tm.CommitSuperblock(make([]byte, transaction.BlockSize), &transaction.Validator{Kind: "test superblock"}); err != nil {
		t.Fatal(err)
	}
}

// rangeSM is a testSM that does not cover block bad (Count of it fails
// with ErrBlockRange, as for a block beyond a space map).
type rangeSM struct {
	*testSM
	bad uint64
}

func (s *rangeSM) Count(b uint64) (uint32, error) {
	if b == s.bad {
		return 0, fmt.Errorf("%w: block %d", transaction.ErrBlockRange, b)
	}
	return s.testSM.Count(b)
}
