package btree_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/transaction"
)

// makeNode lays out a node by hand (FORMAT.md §3.1: header, keys from byte
// 32, values after max_entries keys), independently of package btree's
// setters, and seals it for location b.
func makeNode(b uint64, flags uint32, maxEntries, valueSize int, keys []uint64, vals []uint64) []byte {
	blk := make([]byte, transaction.BlockSize)
	binary.LittleEndian.PutUint32(blk[4:], flags)
	binary.LittleEndian.PutUint32(blk[16:], uint32(len(keys)))
	binary.LittleEndian.PutUint32(blk[20:], uint32(maxEntries))
	binary.LittleEndian.PutUint32(blk[24:], uint32(valueSize))
	for i, k := range keys {
		binary.LittleEndian.PutUint64(blk[32+8*i:], k)
		if i < len(vals) && valueSize >= 8 {
			binary.LittleEndian.PutUint64(blk[32+8*maxEntries+valueSize*i:], vals[i])
		}
	}
	transaction.Seal(blk, b, transaction.SaltNode)
	return blk
}

func seq(from, n, step uint64) []uint64 {
	ks := make([]uint64, n)
	for i := range ks {
		ks[i] = from + uint64(i)*step
	}
	return ks
}

// The checks of one node, each case built by hand with the defects it has,
// in the order NodeDefects reports them.
func TestNodeDefects(t *testing.T) {
	const leafMax, intMax = 252, 252 // 8-byte values: (4096-32)/16 = 254, rounded down to 252
	inner := btree.Place{ValueSize: 8, Lo: 100, Hi: 199, Depth: 1}
	for _, tc := range []struct {
		name  string
		blk   []byte
		p     btree.Place
		c     btree.Conventions
		want  []error // the sentinels, in order
		valid bool    // passes Validator
	}{
		{"sound leaf", makeNode(5, 2, leafMax, 8, seq(100, 90, 1), nil), inner, btree.ToolConventions, nil, true},
		{"sound empty root leaf", makeNode(5, 2, leafMax, 8, nil, nil), btree.RootPlace(8), btree.ToolConventions, nil, true},
		{"details leaf of 24-byte values", makeNode(5, 2, 126, 24, seq(0, 3, 1), nil), btree.RootPlace(24), btree.ToolConventions, nil, true},
		{"internal node of a details tree has 8-byte values", makeNode(5, 1, intMax, 8, seq(0, 3, 10), []uint64{1, 2, 3}), btree.RootPlace(24), 0, nil, true},
		{"leaf of the wrong value size", makeNode(5, 2, 126, 24, seq(100, 90, 1), nil), inner, 0, []error{btree.ErrValueSize}, true},
		{"internal node of 24-byte values", makeNode(5, 1, 126, 24, seq(100, 90, 1), nil), inner, 0, []error{btree.ErrValueSize}, true},
		{"capacity not a multiple of 3", makeNode(5, 2, 250, 8, seq(100, 90, 1), nil), inner, btree.CheckCapacity, []error{btree.ErrMaxEntries}, true},
		{"capacity not a multiple of 3, not asked", makeNode(5, 2, 250, 8, seq(100, 90, 1), nil), inner, 0, nil, true},
		{"repeated key", makeNode(5, 2, leafMax, 8, append(seq(100, 89, 1), 188), nil), inner, 0, []error{btree.ErrKeyOrder}, true},
		{"descending keys", makeNode(5, 2, leafMax, 8, []uint64{150, 140, 160}, nil), btree.RootPlace(8), 0, []error{btree.ErrKeyOrder}, true},
		{"empty internal root", makeNode(5, 1, intMax, 8, nil, nil), btree.RootPlace(8), 0, []error{btree.ErrNodeHeader}, true},
		{"empty non-root leaf", makeNode(5, 2, leafMax, 8, nil, nil), inner, 0, []error{btree.ErrNodeHeader}, true},
		{"key below the parent's", makeNode(5, 2, leafMax, 8, seq(99, 90, 1), nil), inner, 0, []error{btree.ErrKeyRange}, true},
		{"key at the parent's next key", makeNode(5, 2, leafMax, 8, seq(111, 90, 1), nil), inner, 0, []error{btree.ErrNextKey}, true},
		{"keys on both sides", makeNode(5, 2, leafMax, 8, seq(0, 90, 10), nil), inner, 0, []error{btree.ErrKeyRange, btree.ErrNextKey}, true},
		{"root ignores the range", makeNode(5, 2, leafMax, 8, seq(0, 90, 10), nil), btree.RootPlace(8), btree.ToolConventions, nil, true},
		{"under-full", makeNode(5, 2, leafMax, 8, seq(100, 83, 1), nil), inner, btree.CheckFill, []error{btree.ErrUnderfull}, true},
		{"a third full", makeNode(5, 2, leafMax, 8, seq(100, 84, 1), nil), inner, btree.CheckFill, nil, true},
		{"under-full root", makeNode(5, 2, leafMax, 8, seq(100, 1, 1), nil), btree.RootPlace(8), btree.CheckFill, nil, true},
		{"no room to split", makeNode(5, 2, 0, 8, nil, nil), btree.RootPlace(8), btree.CheckRoom, []error{btree.ErrNodeHeader}, true},
		{"everything wrong", makeNode(5, 2, 125, 24, []uint64{50, 50, 300}, nil), inner, btree.ToolConventions,
			[]error{btree.ErrValueSize, btree.ErrMaxEntries, btree.ErrKeyOrder, btree.ErrKeyRange, btree.ErrNextKey, btree.ErrUnderfull}, true},
		// What Validator refuses.
		{"flags 0", makeNode(5, 0, leafMax, 8, seq(100, 90, 1), nil), inner, 0, []error{btree.ErrNodeFlags}, false},
		{"flags 3", makeNode(5, 3, leafMax, 8, seq(100, 90, 1), nil), inner, 0, []error{btree.ErrNodeFlags}, false},
		{"leaf flag and another bit", makeNode(5, 2|4, leafMax, 8, seq(100, 90, 1), nil), inner, 0, []error{btree.ErrNodeFlags}, false},
		{"internal flag and a high bit", makeNode(5, 1|1<<31, intMax, 8, seq(100, 90, 1), nil), inner, 0, []error{btree.ErrNodeFlags}, false},
		{"capacity beyond the block", makeNode(5, 2, 255, 8, seq(100, 90, 1), nil), inner, 0, []error{btree.ErrNodeHeader}, false},
		{"more entries than room", makeNode(5, 2, 60, 8, seq(100, 90, 1), nil), inner, 0, []error{btree.ErrNodeHeader}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := btree.Validator.Validate(tc.blk, 5)
			if tc.valid != (err == nil) {
				t.Fatalf("Validator: %v, want valid %v", err, tc.valid)
			}
			if !tc.valid {
				if !errors.Is(err, tc.want[0]) {
					t.Fatalf("Validator: %v, want %v", err, tc.want[0])
				}
				return
			}
			n := btree.Node(tc.blk)
			var got []error
			btree.NodeDefects(n, 5, tc.p, tc.c, func(e *transaction.CorruptError) bool {
				if e.Block != 5 || e.Kind != btree.Kind {
					t.Errorf("defect %v names block %d, kind %q", e, e.Block, e.Kind)
				}
				got = append(got, e.Err)
				return true
			})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("defects %v, want %v", got, tc.want)
			}
			first := btree.CheckNode(n, 5, tc.p, tc.c)
			if len(tc.want) == 0 && first != nil || len(tc.want) > 0 && !errors.Is(first, tc.want[0]) {
				t.Fatalf("CheckNode: %v, want the first of %v", first, tc.want)
			}
		})
	}
}

// treeDevice is a device holding a small tree laid out by hand:
//
//	1: internal root, keys 0, 100, 200, 300 → 2, 3, 4, 5
//	2..5: leaves of 100 keys each (k*100 .. k*100+99), values 1000+key
//
// with damage applied by the caller.
func treeDevice() *memdev.Dev {
	dev := memdev.New(16 * transaction.BlockSize)
	put := func(b uint64, blk []byte) { dev.WriteAt(blk, int64(b)*transaction.BlockSize) }
	put(1, makeNode(1, btree.FlagInternal, 252, 8, []uint64{0, 100, 200, 300}, []uint64{2, 3, 4, 5}))
	for i := range uint64(4) {
		keys := seq(i*100, 100, 1)
		vals := make([]uint64, len(keys))
		for j, k := range keys {
			vals[j] = 1000 + k
		}
		put(2+i, makeNode(2+i, btree.FlagLeaf, 252, 8, keys, vals))
	}
	return dev
}

type event struct {
	what string // "node", "leave", "defect"
	b    uint64
	err  error
}

// walkEvents walks the tree at 1 with Defect set (or not) and records what
// the Walker reports, in order.
func walkEvents(dev *memdev.Dev, lo, hi uint64, collect bool) ([]event, error) {
	r := transaction.NewReader(dev, dev.Size())
	w := &btree.Walker{R: r, ValueSize: 8, Conventions: btree.ToolConventions}
	if planWalk {
		w.R, w.Plan = transaction.NewReadAhead(r, 4), true
	}
	var evs []event
	w.Leave = func(b uint64, sound bool) { evs = append(evs, event{what: fmt.Sprint("leave ", sound), b: b}) }
	if collect {
		w.Defect = func(err error) bool {
			var ce *transaction.CorruptError
			b := uint64(math.MaxUint64)
			var sentinel error = err
			if errors.As(err, &ce) {
				b, sentinel = ce.Block, ce.Err
			}
			evs = append(evs, event{what: "defect", b: b, err: sentinel})
			return errors.Is(err, btree.ErrUnderfull)
		}
	}
	w.Reset(1)
	w.Lo, w.Hi = lo, hi
	for {
		b, _, _, ok := w.Next()
		if !ok {
			break
		}
		evs = append(evs, event{what: "node", b: b})
	}
	return evs, w.Err()
}

// planWalk makes walkEvents walk with Plan, through a ReadAhead.
var planWalk bool

// A planned walk (reads through a ReadAhead's View, told each internal
// node's children) reports the same nodes, defects and errors.
func TestWalkerPlan(t *testing.T) {
	planWalk = true
	defer func() { planWalk = false }()
	t.Run("defects", TestWalkerDefects)
	t.Run("range", TestWalkerRange)
}

// The Walker reports every problem to a checker and goes on past the
// damaged node; a reader stops at the first.
func TestWalkerDefects(t *testing.T) {
	dev := treeDevice()
	// Leaf 3: a checksum error. Leaf 4: keys reaching leaf 5's range,
	// and under-full. Leaf 5: only under-full, which the checker keeps.
	blk := make([]byte, transaction.BlockSize)
	dev.ReadAt(blk, 3*transaction.BlockSize)
	blk[2000] ^= 1
	dev.WriteAt(blk, 3*transaction.BlockSize)
	dev.WriteAt(makeNode(4, btree.FlagLeaf, 252, 8, seq(250, 60, 1), nil), 4*transaction.BlockSize)
	dev.WriteAt(makeNode(5, btree.FlagLeaf, 252, 8, seq(300, 10, 1), nil), 5*transaction.BlockSize)

	got, err := walkEvents(dev, 0, math.MaxUint64, true)
	if err != nil {
		t.Fatalf("Err with Defect set: %v", err)
	}
	want := []event{
		{what: "node", b: 1},
		{what: "node", b: 2}, {what: "leave true", b: 2},
		{what: "defect", b: 3, err: transaction.ErrChecksum}, {what: "leave false", b: 3},
		{what: "defect", b: 4, err: btree.ErrNextKey}, {what: "defect", b: 4, err: btree.ErrUnderfull}, {what: "leave false", b: 4},
		{what: "defect", b: 5, err: btree.ErrUnderfull}, {what: "node", b: 5}, {what: "leave true", b: 5},
		{what: "leave false", b: 1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n%v\nwant\n%v", got, want)
	}

	got, err = walkEvents(dev, 0, math.MaxUint64, false)
	if !errors.Is(err, transaction.ErrChecksum) {
		t.Fatalf("reader's walk: %v, want the checksum error of block 3", err)
	}
	want = []event{{what: "node", b: 1}, {what: "node", b: 2}, {what: "leave true", b: 2}, {what: "leave false", b: 3}}
	if !slices.Equal(got, want) {
		t.Fatalf("reader's events\n%v\nwant\n%v", got, want)
	}
}

// Lo and Hi keep the walk to the leaves that may hold keys in range.
func TestWalkerRange(t *testing.T) {
	dev := treeDevice()
	for _, tc := range []struct {
		lo, hi uint64
		leaves []uint64
	}{
		{0, math.MaxUint64, []uint64{2, 3, 4, 5}},
		{0, 0, []uint64{2}},
		{99, 100, []uint64{2, 3}},
		{150, 250, []uint64{3, 4}},
		{300, 300, []uint64{5}},
		{1000, math.MaxUint64, []uint64{5}},
	} {
		evs, err := walkEvents(dev, tc.lo, tc.hi, false)
		if err != nil {
			t.Fatal(err)
		}
		var leaves []uint64
		for _, e := range evs {
			if e.what == "node" && e.b != 1 {
				leaves = append(leaves, e.b)
			}
		}
		if !slices.Equal(leaves, tc.leaves) {
			t.Errorf("[%d, %d]: leaves %v, want %v", tc.lo, tc.hi, leaves, tc.leaves)
		}
	}
	// Lookups and walks over the same tree agree with the layout.
	tr := btree.Tree{R: transaction.NewReader(dev, dev.Size()), Root: 1, ValueSize: 8}
	for _, k := range []uint64{0, 99, 100, 250, 399, 400, math.MaxUint64} {
		v, found, err := tr.Lookup(k)
		if err != nil {
			t.Fatal(err)
		}
		if want := k < 400; found != want || found && binary.LittleEndian.Uint64(v) != 1000+k {
			t.Errorf("Lookup(%d) = %v, %v", k, v, found)
		}
	}
	var keys []uint64
	if err := tr.Walk(150, 260, func(k uint64, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, seq(150, 110, 1)) {
		t.Errorf("Walk(150, 260): %d keys from %v", len(keys), keys[:1])
	}
}

// The key-order check names the first key not above the one before it,
// wherever it is: for every entry count of a full leaf's capacity, keys
// that strictly increase but for one, two or no places (equal or smaller
// keys, next to each other or apart, at the ends of the four-key steps the
// check takes), against a key-by-key scan of the keys the test laid out.
func TestKeyOrderFirstDefect(t *testing.T) {
	const leafMax = 252
	rng := rand.New(rand.NewPCG(8, 8))
	for nr := 0; nr <= leafMax; nr++ {
		for trial := 0; trial < 24; trial++ {
			keys := make([]uint64, nr)
			k := rng.Uint64N(1000)
			for i := range keys {
				keys[i] = k
				k += 1 + rng.Uint64N(3)
				if trial%4 == 3 {
					k += rng.Uint64N(1 << 60) // large gaps
				}
			}
			if nr > 1 && trial > 0 {
				for range 1 + trial%2 {
					j := 1 + rng.IntN(nr-1)
					if trial < 8 {
						j = 1 + (trial*31)%(nr-1) // spread over the steps
					}
					if rng.IntN(2) == 0 {
						keys[j] = keys[j-1]
					} else {
						keys[j] = keys[j-1] - rng.Uint64N(keys[j-1]+1)
					}
				}
			}
			want := ""
			for i := 1; i < nr; i++ {
				if keys[i] <= keys[i-1] {
					want = fmt.Sprintf("key %d (%d) follows %d", i, keys[i], keys[i-1])
					break
				}
			}
			n := btree.Node(makeNode(5, 2, leafMax, 8, keys, nil))
			err := btree.CheckNode(n, 5, btree.RootPlace(8), 0)
			var ce *transaction.CorruptError
			switch {
			case want == "" && err != nil:
				t.Fatalf("nr %d keys %v: %v, want none", nr, keys, err)
			case want != "" && (!errors.As(err, &ce) || !errors.Is(err, btree.ErrKeyOrder) || ce.Detail != want):
				t.Fatalf("nr %d keys %v: %v, want %s", nr, keys, err, want)
			}
		}
	}
}
