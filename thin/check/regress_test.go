package check_test

// Focused regression tests for discrepancies with thin_check 0.9.0 found by
// TestCorruptVersusThinCheck. Each builds one damaged image and compares
// both checkers on it.

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/transaction"
)

// smallPool restores a small generated pool with two-level device trees.
func smallPool(t *testing.T) string {
	tptest.Need(t, "thin_restore")
	p := genpool.Generate(rand.New(rand.NewPCG(5, 5)), genpool.Spec{Devices: 3, MinMappings: 600, MaxMappings: 1500,
		MeanRun: 2, Sparsity: 2, SnapshotFraction: 0.5, RewriteFraction: 0.2})
	img, _ := genpool.Restore(t, p)
	return img
}

// bothVerdicts runs thin_check and check.Device with the same options.
func bothVerdicts(t *testing.T, img string, o optionSet) (theirs, ours bool, fs []check.Finding) {
	t.Helper()
	code, out := thinCheck(t, append(slices.Clone(o.args), img)...)
	sum, fs, p := checkImage(img, o.opts)
	if p != nil {
		t.Fatalf("%s: check.Device panicked: %v", o.name, p)
	}
	t.Logf("%s: thin_check exit %d\n%s\nthinmeta %+v\n%v", o.name, code, out, sum, fs)
	return code == 0, sum.OK(o.opts.IgnoreNonFatal), fs
}

// mustAgree requires both checkers to reach the same verdict, for plain
// runs and with --ignore-non-fatal-errors.
func mustAgree(t *testing.T, img string) {
	t.Helper()
	for _, o := range []optionSet{optPlain, optIgnore} {
		if theirs, ours, _ := bothVerdicts(t, img, o); theirs != ours {
			t.Errorf("%s: thin_check ok=%v, thinmeta ok=%v", o.name, theirs, ours)
		}
	}
}

// editNode applies fn to node b and reseals it.
func editNode(im *image, b uint64, fn func(n btree.Node)) {
	blk := im.read(b)
	fn(btree.Node(blk))
	transaction.Seal(blk, b, transaction.SaltNode)
	im.write(b, blk)
}

// internalDeviceRoot returns the root of a device tree that is an
// internal node, and that device's id.
func internalDeviceRoot(t *testing.T, im *image) (root, dev uint64) {
	t.Helper()
	sb := superblock.Decode(im.read(0))
	top := btree.Node(im.read(sb.DataMappingRoot))
	for i := range top.NrEntries() {
		if !btree.Node(im.read(top.Uint64Value(i))).IsLeaf() {
			return top.Uint64Value(i), top.Key(i)
		}
	}
	t.Fatal("no device tree with internal nodes")
	return 0, 0
}

// A data space map claiming an absurd number of blocks made the check
// allocate from that number and panic ("makeslice: len out of range").
// 0.9.0 ignores the data space map's size; thinmeta reports it in the data
// space map, one of its stricter classes.
func TestHugeDataSpaceMapDoesNotPanic(t *testing.T) {
	t.Parallel()
	img := smallPool(t)
	im := openImage(t, img)
	buf := im.read(0)
	sb := superblock.Decode(buf)
	r := spacemap.DecodeRoot(sb.DataSpaceMapRoot[:])
	r.NrBlocks = 1 << 62
	r.Encode(sb.DataSpaceMapRoot[:])
	im.writeSuperblock(0, buf, &sb)
	im.close()
	theirs, ours, fs := bothVerdicts(t, img, optPlain)
	if !theirs || ours {
		t.Fatalf("want thin_check to pass and thinmeta to fail, got %v, %v", theirs, ours)
	}
	for _, f := range fs {
		if f.Area != "data space map" || !errors.Is(f.Err, spacemap.ErrIndex) {
			t.Errorf("unexpected finding %v", f)
		}
	}
}

// A non-root node without entries (and details that agree) passed with
// --ignore-non-fatal-errors: only the non-fatal under-population was
// reported. 0.9.0 fails on it.
func TestEmptyNonRootLeafFailsWithIgnoreNonFatal(t *testing.T) {
	t.Parallel()
	img := smallPool(t)
	im := openImage(t, img)
	root, dev := internalDeviceRoot(t, im)
	leaf := btree.Node(im.read(root)).Uint64Value(0)
	nr := 0
	editNode(im, leaf, func(n btree.Node) { nr = n.NrEntries(); n.SetNrEntries(0) })
	setMappedBlocks(im, dev, func(m uint64) uint64 { return m - uint64(nr) })
	im.close()
	mustAgree(t, img)
}

// setMappedBlocks changes a device's mapped_blocks.
func setMappedBlocks(im *image, dev uint64, fn func(uint64) uint64) {
	im.editDetails(dev, func(d *thin.Details) { d.MappedBlocks = fn(d.MappedBlocks) })
}

// An internal root without entries (and details saying the device is
// empty) passed with --ignore-non-fatal-errors: the rest of its tree was
// only leaked. 0.9.0 fails on an internal node without keys.
func TestEmptyInternalRootIsFatal(t *testing.T) {
	t.Parallel()
	img := smallPool(t)
	im := openImage(t, img)
	root, dev := internalDeviceRoot(t, im)
	editNode(im, root, func(n btree.Node) { n.SetNrEntries(0) })
	setMappedBlocks(im, dev, func(uint64) uint64 { return 0 })
	im.close()
	mustAgree(t, img)
}

// An under-populated node of a space map's tree passed: the check looked
// for under-population only in the details and mapping trees, but 0.9.0's
// counting pass skips such a node in every tree and reports it leaked.
func TestUnderfullSpaceMapNodeIsReported(t *testing.T) {
	t.Parallel()
	b := makeGenBase(t, "gen-snapshots")
	im := openImage(t, b.img)
	sb := superblock.Decode(im.read(0))
	ovRoot := spacemap.DecodeRoot(sb.DataSpaceMapRoot[:]).RefCountRoot
	parent := btree.Node(im.read(ovRoot))
	if parent.IsLeaf() {
		t.Fatal("want a two-level overflow tree")
	}
	// Move entries from the front of a leaf to the end of its left
	// sibling until the leaf holds one entry too few: every count stays,
	// the tree stays ordered, one node is under-populated.
	moved := false
	for i := 1; i < parent.NrEntries() && !moved; i++ {
		lb, rb := parent.Uint64Value(i-1), parent.Uint64Value(i)
		l, r := btree.Node(im.read(lb)), btree.Node(im.read(rb))
		k := r.NrEntries() - (r.MaxEntries()/3 - 1)
		if k <= 0 || l.NrEntries()+k > l.MaxEntries() {
			continue
		}
		for j := range k {
			leafUpsert(l, r.Key(j), slices.Clone(r.Value(j)))
		}
		for range k {
			leafDelete(r, r.Key(0))
		}
		transaction.Seal(l, lb, transaction.SaltNode)
		im.write(lb, l)
		transaction.Seal(r, rb, transaction.SaltNode)
		im.write(rb, r)
		parent.SetKey(i, r.Key(0))
		moved = true
	}
	if !moved {
		t.Fatal("no pair of leaves to rebalance")
	}
	transaction.Seal(parent, ovRoot, transaction.SaltNode)
	im.write(ovRoot, parent)
	im.close()
	mustAgree(t, b.img)
}

// A bitmap entry of 3 whose overflow count is 2 was fatal; the kernel and
// 0.9.0 take the overflow value as the count, so with one reference it is
// a (non-fatal) leak.
func TestOverflowCountBelowThree(t *testing.T) {
	t.Parallel()
	img := smallPool(t)
	l := mapLayout(t, img)
	im := openImage(t, img)
	victim := l.byRole[roleBottomLeaf][0]
	sb := superblock.Decode(im.read(0))
	root := spacemap.DecodeRoot(sb.MetadataSpaceMapRoot[:])
	idx := im.read(root.BitmapRoot)
	ie := spacemap.DecodeIndexEntry(idx[transaction.HeaderSize+spacemap.IndexEntrySize*int(victim/spacemap.EntriesPerBitmap):])
	bm := im.read(ie.Blocknr)
	spacemap.SetBitmapEntry(bm, int(victim%spacemap.EntriesPerBitmap), 3)
	transaction.Seal(bm, ie.Blocknr, transaction.SaltBitmap)
	im.write(ie.Blocknr, bm)
	editNode(im, root.RefCountRoot, func(n btree.Node) {
		leafUpsert(n, victim, binary.LittleEndian.AppendUint32(nil, 2))
	})
	im.close()
	mustAgree(t, img)
}

// The metadata space map was compared only up to the end of the device;
// 0.9.0 compares up to the map's nr_blocks, so a count on a block beyond
// the device is a leak.
func TestMetadataSpaceMapBeyondDevice(t *testing.T) {
	t.Parallel()
	img := smallPool(t)
	l := mapLayout(t, img)
	im := openImage(t, img)
	sbBuf := im.read(0)
	sb := superblock.Decode(sbBuf)
	root := spacemap.DecodeRoot(sb.MetadataSpaceMapRoot[:])
	if root.NrBlocks != l.nrBlocks || root.NrBlocks%spacemap.EntriesPerBitmap > spacemap.EntriesPerBitmap-8 {
		t.Fatalf("want a space map of the device's %d blocks, ending inside a bitmap; it has %d", l.nrBlocks, root.NrBlocks)
	}
	root.NrBlocks += 5
	root.Encode(sb.MetadataSpaceMapRoot[:])
	im.writeSuperblock(0, sbBuf, &sb)
	beyond := l.nrBlocks + 2
	idx := im.read(root.BitmapRoot)
	ie := spacemap.DecodeIndexEntry(idx[transaction.HeaderSize+spacemap.IndexEntrySize*int(beyond/spacemap.EntriesPerBitmap):])
	bm := im.read(ie.Blocknr)
	spacemap.SetBitmapEntry(bm, int(beyond%spacemap.EntriesPerBitmap), 1)
	transaction.Seal(bm, ie.Blocknr, transaction.SaltBitmap)
	im.write(ie.Blocknr, bm)
	im.close()
	mustAgree(t, img)
}

// A child whose keys reach its parent's next key is fatal for thinmeta
// (lookups never reach those keys) but passes thin_check 0.9.0, which
// checks only the lower bound: the "parent's next key" class.
func TestNextKeyIsStricter(t *testing.T) {
	t.Parallel()
	img := smallPool(t)
	im := openImage(t, img)
	root, _ := internalDeviceRoot(t, im)
	editNode(im, root, func(p btree.Node) {
		c := btree.Node(im.read(p.Uint64Value(0)))
		last := c.Key(c.NrEntries() - 1)
		if p.NrEntries() < 2 || last <= p.Key(0) {
			t.Fatal("unsuitable node")
		}
		p.SetKey(1, last)
	})
	im.close()
	theirs, ours, fs := bothVerdicts(t, img, optPlain)
	if !theirs || ours {
		t.Fatalf("want thin_check to pass and thinmeta to fail, got %v, %v", theirs, ours)
	}
	if !errors.Is(fs[0].Err, check.ErrNextKey) || !errors.Is(fs[0].Err, btree.ErrKeyRange) {
		t.Errorf("first finding %v, want ErrNextKey", fs[0])
	}
	if cls, ok := explain(fs, classCtx{opts: optPlain.opts}); !ok {
		t.Errorf("findings outside the stricter classes: %v", fs)
	} else {
		t.Logf("classes %v", cls)
	}
}

// countingReaderAt counts reads per metadata block.
type countingReaderAt struct {
	ra    io.ReaderAt
	mu    sync.Mutex
	reads map[int64]int
	bytes int64 // read in all
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	// Only reads of single blocks are asked for by the check itself;
	// longer ones are read-ahead windows, which may cover a block that is
	// read again later when the walk jumps back.
	c.mu.Lock()
	c.bytes += int64(len(p))
	if len(p) == transaction.BlockSize {
		c.reads[off/transaction.BlockSize]++
	}
	c.mu.Unlock()
	return c.ra.ReadAt(p, off)
}

// The check asks for every block at most once: shared subtrees, the
// metadata snapshot's trees, bitmaps and overflow trees included; but the
// metadata space map's index and bitmaps, twice.
func TestCheckReadsEachBlockOnce(t *testing.T) {
	t.Parallel()
	imgs := map[string]string{}
	for _, f := range tptest.Fixtures(t) {
		if !tptest.DamagedFixtures[tptest.Name(f)] {
			imgs[tptest.Name(f)] = tptest.Unpack(t, f)
		}
	}
	imgs["gen-snapshots"] = makeGenBase(t, "gen-snapshots").img
	// Three levels: internal nodes below internal nodes, whose plans
	// are replaced before the walk comes back to their siblings.
	imgs["gen-deep"] = makeGenBase(t, "gen-deep").img
	for name, img := range imgs {
		for _, o := range []optionSet{optPlain, optSnap} {
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := f.Stat()
			cr := &countingReaderAt{ra: f, reads: map[int64]int{}}
			// Besides the check's own reads, the staleness watch reads the
			// superblock (and a held snapshot's superblock copy) once when a
			// view opens and once per MiB read (windows included): those
			// blocks may be read again, a bounded number of times.
			sb := make([]byte, transaction.BlockSize)
			if _, err := f.ReadAt(sb, 0); err != nil {
				t.Fatal(err)
			}
			watched := map[int64]bool{0: true, int64(superblock.Decode(sb).HeldRoot): true}
			// The metadata space map's index and bitmaps are read before
			// the walks too (which blocks are shared) and again when
			// they are checked.
			twice := map[int64]bool{}
			live := superblock.Decode(sb)
			msm, err := spacemap.OpenMetadata(transaction.NewReader(f, st.Size()), live.MetadataSpaceMapRoot[:])
			if err != nil {
				t.Fatal(err)
			}
			twice[int64(msm.Root().BitmapRoot)] = true
			for _, ie := range msm.Index() {
				twice[int64(ie.Blocknr)] = true
			}
			check.Device(context.Background(), cr, st.Size(), o.opts, nil)
			f.Close()
			for b, n := range cr.reads {
				limit := 1
				if twice[b] {
					limit = 2
				}
				if watched[b] {
					limit = 4 + int(cr.bytes>>20)
				}
				if n > limit {
					t.Errorf("%s %s: block %d read %d times (at most %d)", name, o.name, b, n, limit)
				}
			}
		}
	}
}

// A shared child whose parent's key was raised above the child's first
// key passed: the child had been checked through another parent first, and
// later references were not checked. thin_check 0.9.0's counting pass
// drops such a reference and reports the child leaked (non-fatal); thinmeta
// reports the misfit (fatal: the "reached again" class). (The fixture's
// node 147 is a mapping node shared by several snapshots.)
func TestSharedChildOutsideParentRange(t *testing.T) {
	t.Parallel()
	var img string
	for _, f := range tptest.Fixtures(t) {
		if tptest.Name(f) == "tmeta_with_metadata_snap" {
			img = tptest.Unpack(t, f)
		}
	}
	im := openImage(t, img)
	const parent, entry = 147, 20
	editNode(im, parent, func(p btree.Node) {
		if !p.IsInternal() || p.NrEntries() <= entry || p.Key(entry) != 4932 {
			t.Fatalf("fixture changed: node %d", parent)
		}
		p.SetKey(entry, p.Key(entry)+1)
	})
	im.close()
	if theirs, ours, _ := bothVerdicts(t, img, optPlain); theirs || ours {
		t.Errorf("plain: thin_check ok=%v, thinmeta ok=%v; want both to fail", theirs, ours)
	}
	theirs, ours, fs := bothVerdicts(t, img, optIgnore)
	if !theirs || ours {
		t.Errorf("ignore-non-fatal: thin_check ok=%v, thinmeta ok=%v; want the stricter verdict", theirs, ours)
	}
	if len(fs) != 1 || !errors.Is(fs[0].Err, check.ErrReachedAgain) {
		t.Errorf("findings %v, want one ErrReachedAgain", fs)
	}
}

// A node that points to itself is reported as a cycle. thin_check 0.9.0
// skips the node it has already seen, and its counting pass drops the
// reference (whose keys do not fit), so it fails only on the leaked
// child, a non-fatal error: the "reached again" class.
func TestCycleIsReported(t *testing.T) {
	t.Parallel()
	img := smallPool(t)
	im := openImage(t, img)
	root, _ := internalDeviceRoot(t, im)
	editNode(im, root, func(n btree.Node) { n.SetUint64Value(n.NrEntries()-1, root) })
	im.close()
	theirs, ours, fs := bothVerdicts(t, img, optIgnore)
	if !theirs || ours {
		t.Fatalf("want thin_check to pass and thinmeta to fail with --ignore-non-fatal-errors, got %v, %v", theirs, ours)
	}
	if !slices.ContainsFunc(fs, func(f check.Finding) bool { return errors.Is(f.Err, check.ErrCycle) }) {
		t.Errorf("no ErrCycle finding in %v", fs)
	}
	if theirs, ours, _ := bothVerdicts(t, img, optPlain); theirs || ours {
		t.Errorf("plain: thin_check ok=%v, thinmeta ok=%v; want both to fail", theirs, ours)
	}
}
