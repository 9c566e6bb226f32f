package check_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/internal/walk"
	"github.com/thinmeta/thinmeta/transaction"
)

// flagNode is a node of a fixture to damage: its block and which tree it
// belongs to.
type flagNode struct {
	block    uint64
	what     string // "mapping leaf", "mapping internal", ...
	internal bool
}

// flagNodes picks, in a clean image, the first leaf and the first internal
// node of the devices' mapping trees, the details tree's root and the top
// level's root.
func flagNodes(t *testing.T, img string) []flagNode {
	t.Helper()
	p, err := thin.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sb := p.Superblock()
	nodes := []flagNode{
		{block: sb.DeviceDetailsRoot, what: "details root"},
		{block: sb.DataMappingRoot, what: "top-level root"},
	}
	seen := map[string]bool{}
	for dr, err := range p.DeviceRoots() {
		if err != nil {
			t.Fatal(err)
		}
		err := p.DeviceTree(dr.Root).WalkNodes(func(b uint64, n btree.Node) error {
			what := "mapping leaf"
			if n.IsInternal() {
				what = "mapping internal"
			}
			if !seen[what] {
				seen[what] = true
				nodes = append(nodes, flagNode{block: b, what: what, internal: n.IsInternal()})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := p.Reader()
	for i := range nodes[:2] {
		blk, err := r.Read(nodes[i].block, btree.Validator)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i].internal = btree.Node(blk).IsInternal()
	}
	return nodes
}

// readErrors runs thinmeta's readers over every tree of the image and returns
// the first error of each: the pool's own iterators (btree.Tree walks and
// lookups), a btree.Cursor, and the query tools' walk.
func readErrors(t *testing.T, img string) map[string]error {
	t.Helper()
	p, err := thin.Open(img, nil)
	if err != nil {
		return map[string]error{"open": err}
	}
	defer p.Close()
	errs := map[string]error{}
	first := func(name string, err error) {
		if err != nil && errs[name] == nil {
			errs[name] = err
		}
	}
	for d, err := range p.Devices() {
		first("devices", err)
		if err != nil {
			break
		}
		for _, err := range p.Mappings(d.ID, 0, 1<<63) {
			first("mappings", err)
		}
	}
	for dr, err := range p.DeviceRoots() {
		first("roots", err)
		if err != nil {
			break
		}
		c := btree.NewCursor(p.DeviceTree(dr.Root))
		for _, _, ok := c.Next(); ok; _, _, ok = c.Next() {
		}
		first("cursor", c.Err())
		first("walk", walk.Mappings(walk.NewReader(p), dr.Root, func(uint64, walk.Leaf) error { return nil }))
	}
	return errs
}

// TestNodeFlagsVersusThinCheck sets bits other than the node-type bit in
// the flags word of nodes of every clean fixture (resealed, so only the
// flags are wrong) and compares thinmeta's verdicts with both generations
// of thin_check. thinmeta refuses every such node, in check and in every
// reader. thin_check 1.1.0 takes a node for a leaf only if its flags are
// exactly the leaf flag, and for an internal node otherwise: a leaf with
// another bit is read as an internal node and refused, while an internal
// node with another bit passes. 0.9.0 ignores the other bits altogether.
// thinmeta must refuse wherever 1.1.0 does (issue 8); it refuses the rest
// too, since no writer of the format sets other bits.
func TestNodeFlagsVersusThinCheck(t *testing.T) {
	bits := []uint32{4, 0x80000000}
	var table []string
	for _, fx := range tptest.Fixtures(t) {
		name := tptest.Name(fx)
		if tptest.DamagedFixtures[name] {
			continue
		}
		clean := tptest.Unpack(t, fx)
		for _, nd := range flagNodes(t, clean) {
			for _, bit := range bits {
				img := copyImage(t, clean, t.TempDir(), "flags.img")
				setFlags(t, img, nd.block, bit)
				label := fmt.Sprintf("%s: %s (block %d) flags |= %#x", name, nd.what, nd.block, bit)

				sum, fs := runCheck(t, img, check.Options{})
				if sum.OK(false) {
					t.Errorf("%s: thinmeta check passes", label)
				}
				if !hasFlagsFinding(fs, nd.block) {
					t.Errorf("%s: no finding of btree.ErrNodeFlags at block %d: %v", label, nd.block, fs)
				}
				errs := readErrors(t, img)
				for reader, err := range errs {
					// A reader that does not reach the node has nothing to say; one
					// that fails must fail on it.
					if !errors.Is(err, btree.ErrNodeFlags) {
						t.Errorf("%s: %s: %v, want btree.ErrNodeFlags", label, reader, err)
					}
				}
				if len(errs) == 0 {
					t.Errorf("%s: no reader reached the node", label)
				}

				v110 := tptest.RunGen(t, tptest.V110, "thin_check", img).Code
				v090 := tptest.RunGen(t, tptest.V090, "thin_check", img).Code
				// What 1.1.0 does: a leaf that is not exactly a leaf is read
				// as an internal node, whose values are no node pointers.
				if want := !nd.internal; (v110 != 0) != want {
					t.Errorf("%s: thin_check 1.1.0 exit %d; expected it to reject: %v", label, v110, want)
				}
				if v090 != 0 {
					t.Errorf("%s: thin_check 0.9.0 exit %d; it was expected to ignore the other bits", label, v090)
				}
				table = append(table, fmt.Sprintf("%-70s 1.1.0 exit %2d, 0.9.0 exit %d, thinmeta rejects", label, v110, v090))
			}
		}
	}
	t.Logf("verdicts:\n%s", strings.Join(table, "\n"))
}

// setFlags ORs bit into the flags word of node b of the image and reseals
// the block.
func setFlags(t *testing.T, img string, b uint64, bit uint32) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blk := make([]byte, transaction.BlockSize)
	if _, err := f.ReadAt(blk, int64(b)*transaction.BlockSize); err != nil {
		t.Fatal(err)
	}
	n := btree.Node(blk)
	n.SetFlags(n.Flags() | bit)
	transaction.Seal(blk, b, transaction.SaltNode)
	if _, err := f.WriteAt(blk, int64(b)*transaction.BlockSize); err != nil {
		t.Fatal(err)
	}
}

func hasFlagsFinding(fs []check.Finding, b uint64) bool {
	for _, f := range fs {
		var ce *transaction.CorruptError
		if errors.Is(f.Err, btree.ErrNodeFlags) && errors.As(f.Err, &ce) && ce.Block == b && f.Severity == check.Fatal {
			return true
		}
	}
	return false
}
