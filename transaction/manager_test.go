package transaction

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
)

// Tests of the Manager on its own, with a model space map: the rules the
// layers above rely on (shadowing, commit order, abort, early write-back,
// the allocator's view of pins).

var testKind = &Validator{Kind: "test block", Salt: 0x5eed}
var testSuper = &Validator{Kind: "test superblock", Salt: SaltSuperblock}

// modelSM is a space map kept in Go maps: counts now and at the last
// commit. NewBlock hands out the lowest block free now, free at the last
// commit and not pinned, as the Manager's contract asks of a space map.
type modelSM struct {
	tm        *Manager
	nr        uint64
	count     map[uint64]uint32
	committed map[uint64]uint32
	allocs    []uint64
}

func newModelSM(tm *Manager, nr uint64) *modelSM {
	sm := &modelSM{tm: tm, nr: nr, count: map[uint64]uint32{0: 1}, committed: map[uint64]uint32{0: 1}}
	tm.SetSpaceMap(sm)
	return sm
}

func (s *modelSM) NewBlock() (uint64, error) {
	pinned := map[uint64]bool{}
	s.tm.PinnedBlocks(func(b uint64) { pinned[b] = true })
	for b := uint64(1); b < s.nr; b++ {
		if s.count[b] == 0 && s.committed[b] == 0 && !pinned[b] {
			s.count[b] = 1
			s.allocs = append(s.allocs, b)
			return b, nil
		}
	}
	return 0, errors.New("model: no space")
}

func (s *modelSM) Inc(b uint64) error { s.count[b]++; return nil }

func (s *modelSM) Dec(b uint64) error {
	if s.count[b] == 0 {
		return fmt.Errorf("model: dec of free block %d", b)
	}
	s.count[b]--
	return nil
}

func (s *modelSM) Count(b uint64) (uint32, error) { return s.count[b], nil }

// endTransaction makes the counts the committed ones and tells the
// manager what the commit freed, as the metadata space map does.
func (s *modelSM) endTransaction() {
	var freed []uint64
	for b, c := range s.committed {
		if c > 0 && s.count[b] == 0 {
			freed = append(freed, b)
		}
	}
	slices.Sort(freed)
	s.tm.RecordFreed(freed)
	s.committed = make(map[uint64]uint32)
	for b, c := range s.count {
		if c > 0 {
			s.committed[b] = c
		}
	}
}

func (s *modelSM) abort() {
	s.count = make(map[uint64]uint32)
	for b, c := range s.committed {
		s.count[b] = c
	}
}

// op is one operation a recording device saw.
type op struct {
	kind  string // "write" or "flush"
	block uint64 // first block written
	n     int    // blocks written
}

// recDev records writes and flushes, and can fail them.
type recDev struct {
	*memdev.Dev
	ops       []op
	failWrite bool
	failFlush bool
}

var errInjected = errors.New("injected failure")

func (d *recDev) WriteAt(p []byte, off int64) (int, error) {
	if d.failWrite {
		return 0, errInjected
	}
	d.ops = append(d.ops, op{"write", uint64(off) / BlockSize, len(p) / BlockSize})
	return d.Dev.WriteAt(p, off)
}

func (d *recDev) Flush() error {
	if d.failFlush {
		return errInjected
	}
	d.ops = append(d.ops, op{kind: "flush"})
	return d.Dev.Flush()
}

const testBlocks = 64

type mharness struct {
	t   *testing.T
	dev *recDev
	tm  *Manager
	sm  *modelSM
	// sbRoot is the block the test superblock points at: the committed
	// "tree" (one block) the tests shadow.
	sbRoot uint64
}

func newMHarness(t *testing.T) *mharness {
	t.Helper()
	dev := &recDev{Dev: memdev.New(testBlocks * BlockSize)}
	tm := NewManager(dev, testBlocks*BlockSize)
	h := &mharness{t: t, dev: dev, tm: tm, sm: newModelSM(tm, testBlocks)}
	return h
}

// superblock encodes a test superblock naming root.
func superblockBlock(root uint64) []byte {
	buf := make([]byte, BlockSize)
	copy(buf[HeaderSize:], fmt.Sprintf("root=%d", root))
	return buf
}

func (h *mharness) commit() {
	h.t.Helper()
	if err := h.tm.Flush(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.tm.CommitSuperblock(superblockBlock(h.sbRoot), testSuper); err != nil {
		h.t.Fatal(err)
	}
	h.sm.endTransaction()
}

func (h *mharness) newBlock(fill byte) uint64 {
	h.t.Helper()
	b, buf, err := h.tm.New(testKind)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := HeaderSize; i < BlockSize; i++ {
		buf[i] = fill
	}
	return b
}

func (h *mharness) content(r interface {
	Read(uint64, *Validator) ([]byte, error)
}, b uint64) byte {
	h.t.Helper()
	blk, err := r.Read(b, testKind)
	if err != nil {
		h.t.Fatalf("block %d: %v", b, err)
	}
	return blk[BlockSize-1]
}

func TestManagerNewIsZeroedShadow(t *testing.T) {
	h := newMHarness(t)
	b, buf, err := h.tm.New(testKind)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, make([]byte, BlockSize)) {
		t.Fatal("new block not zeroed")
	}
	if !h.tm.IsShadow(b) || h.sm.count[b] != 1 {
		t.Fatalf("new block %d: shadow %v, count %d", b, h.tm.IsShadow(b), h.sm.count[b])
	}
	// A block beyond the device from the space map is refused.
	h.sm.nr = testBlocks + 8
	for i := 0; i < testBlocks+2; i++ {
		if _, _, err = h.tm.New(testKind); err != nil {
			break
		}
	}
	// It is damage (a space map larger than the device), named by the
	// block, and it ends the transaction.
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrOutOfRange) || ce.Block != testBlocks || !strings.Contains(err.Error(), "64-block device") {
		t.Fatalf("allocation beyond the device: %v", err)
	}
	if _, _, err := h.tm.New(testKind); !errors.Is(err, ErrFailed) {
		t.Fatalf("New after an allocation beyond the device: %v, want ErrFailed", err)
	}
}

func TestManagerShadowRules(t *testing.T) {
	h := newMHarness(t)
	a := h.newBlock(0xa1)
	s := h.newBlock(0x51)
	h.sm.count[s] = 2 // s is shared: two parents point at it
	h.commit()

	// A committed block with one reference is copied, and loses it.
	na, buf, shared, err := h.tm.Shadow(a, testKind)
	if err != nil {
		t.Fatal(err)
	}
	if na == a || shared || buf[BlockSize-1] != 0xa1 || h.sm.count[a] != 0 || h.sm.count[na] != 1 {
		t.Fatalf("shadow of committed a=%d: got %d shared=%v content %#x counts %d/%d", a, na, shared, buf[BlockSize-1], h.sm.count[a], h.sm.count[na])
	}
	buf[BlockSize-1] = 0xa2
	// Shadowing it again in this transaction gives the same block back.
	na2, buf2, shared, err := h.tm.Shadow(na, testKind)
	if err != nil || na2 != na || shared || buf2[BlockSize-1] != 0xa2 {
		t.Fatalf("second shadow: %d (want %d) shared=%v content %#x err %v", na2, na, shared, buf2[BlockSize-1], err)
	}
	// A shared block is copied and reported shared; the original keeps
	// its other reference.
	ns, buf, shared, err := h.tm.Shadow(s, testKind)
	if err != nil || ns == s || !shared || buf[BlockSize-1] != 0x51 || h.sm.count[s] != 1 {
		t.Fatalf("shadow of shared s=%d: %d shared=%v count %d err %v", s, ns, shared, h.sm.count[s], err)
	}
	// A block of this transaction that became shared is copied too.
	h.sm.count[na] = 2
	nb, _, shared, err := h.tm.Shadow(na, testKind)
	if err != nil || nb == na || !shared {
		t.Fatalf("shadow of a shared block of this transaction: %d shared=%v err %v", nb, shared, err)
	}
	// A block without references cannot be shadowed.
	if _, _, _, err := h.tm.Shadow(40, testKind); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("shadow of a free block: %v", err)
	}
	// Only shadows are writable.
	if _, err := h.tm.Writable(s, testKind); err == nil {
		t.Fatal("committed block writable")
	}
	// The transaction reads its changes; the committed reader does not.
	if got := h.content(h.tm, na); got != 0xa2 {
		t.Fatalf("manager reads %#x", got)
	}
	if got := h.content(h.tm.Reader(), a); got != 0xa1 {
		t.Fatalf("committed a reads %#x", got)
	}
	// A dirty block read as another kind is refused.
	if _, err := h.tm.Read(na, testSuper); !errors.Is(err, ErrValidatorMismatch) {
		t.Fatalf("read as another kind: %v", err)
	}
}

// A commit writes every changed block, flushes, then writes block 0 and
// flushes again: nothing the committed superblock reaches is overwritten,
// and the superblock reaches the disk only after what it points at.
func TestManagerCommitOrder(t *testing.T) {
	h := newMHarness(t)
	h.sbRoot = h.newBlock(1)
	h.commit()
	committed := map[uint64]bool{0: true, h.sbRoot: true}
	for round := range 3 {
		h.dev.ops = nil
		nr, buf, _, err := h.tm.Shadow(h.sbRoot, testKind)
		if err != nil {
			t.Fatal(err)
		}
		buf[BlockSize-1] = byte(round)
		extra := h.newBlock(byte(round))
		h.sbRoot = nr
		h.commit()
		var seen []op
		for _, o := range h.dev.ops {
			seen = append(seen, o)
		}
		// writes of nr and extra (in one run or two), flush, block 0, flush
		n := len(seen)
		if n < 4 || seen[n-1].kind != "flush" || seen[n-2] != (op{"write", 0, 1}) || seen[n-3].kind != "flush" {
			t.Fatalf("round %d: ops %v", round, seen)
		}
		written := map[uint64]bool{}
		for _, o := range seen[:n-3] {
			if o.kind != "write" {
				t.Fatalf("round %d: %v before the superblock's flush", round, seen)
			}
			for b := o.block; b < o.block+uint64(o.n); b++ {
				if committed[b] {
					t.Fatalf("round %d: block %d of the last commit overwritten", round, b)
				}
				written[b] = true
			}
		}
		if !written[nr] || !written[extra] || len(written) != 2 {
			t.Fatalf("round %d: wrote %v, want %d and %d", round, written, nr, extra)
		}
		committed = map[uint64]bool{0: true, nr: true, extra: true}
		for _, b := range h.sm.allocs {
			if h.sm.count[b] > 0 {
				committed[b] = true
			}
		}
		if h.tm.IsShadow(nr) {
			t.Fatal("a committed block is still a shadow")
		}
	}
	// The superblock cannot be committed over unwritten blocks.
	h.newBlock(9)
	if err := h.tm.CommitSuperblock(superblockBlock(0), testSuper); err == nil {
		t.Fatal("superblock committed before Flush")
	}
}

func TestManagerAbort(t *testing.T) {
	h := newMHarness(t)
	h.sbRoot = h.newBlock(0x11)
	h.commit()
	before := bytes.Clone(h.dev.Bytes())
	nr, buf, _, err := h.tm.Shadow(h.sbRoot, testKind)
	if err != nil {
		t.Fatal(err)
	}
	buf[BlockSize-1] = 0x22
	h.tm.SetDirtyLimit(1)
	h.newBlock(0x33)
	if err := h.tm.Checkpoint(); err != nil { // written early: garbage after the abort
		t.Fatal(err)
	}
	h.tm.Abort()
	h.sm.abort()
	if h.tm.IsShadow(nr) || h.tm.DirtyBlocks() != 0 {
		t.Fatal("abort kept shadows")
	}
	if got := h.content(h.tm, h.sbRoot); got != 0x11 {
		t.Fatalf("after abort the root reads %#x", got)
	}
	// Block 0 and the committed root were not touched.
	for _, b := range []uint64{0, h.sbRoot} {
		if !bytes.Equal(h.dev.Bytes()[b*BlockSize:(b+1)*BlockSize], before[b*BlockSize:(b+1)*BlockSize]) {
			t.Fatalf("block %d changed by an aborted transaction", b)
		}
	}
	// The manager works on after it.
	h.sbRoot = h.newBlock(0x44)
	h.commit()
	if got := h.content(h.tm.Reader(), h.sbRoot); got != 0x44 {
		t.Fatalf("commit after abort: %#x", got)
	}
}

// Early write-back writes blocks of the transaction (never block 0) and
// keeps them shadows: later changes edit them in place, read them back
// from the device, and the commit writes them again.
func TestManagerEarlyWriteBack(t *testing.T) {
	h := newMHarness(t)
	h.sbRoot = h.newBlock(0x10)
	h.commit()
	h.tm.SetDirtyLimit(2)
	blocks := []uint64{h.newBlock(1), h.newBlock(2)}
	h.dev.ops = nil
	if err := h.tm.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if len(h.dev.ops) != 0 {
		t.Fatalf("checkpoint at the limit wrote %v", h.dev.ops)
	}
	blocks = append(blocks, h.newBlock(3))
	if err := h.tm.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	var wrote []uint64
	for _, o := range h.dev.ops {
		if o.kind != "write" {
			t.Fatalf("checkpoint did %v", o)
		}
		wrote = append(wrote, o.block)
	}
	slices.Sort(wrote)
	if !slices.Equal(wrote, blocks) || h.tm.DirtyBlocks() != 0 {
		t.Fatalf("checkpoint wrote %v, want %v", wrote, blocks)
	}
	for i, b := range blocks {
		if !h.tm.IsShadow(b) {
			t.Fatalf("block %d not a shadow after write-back", b)
		}
		nb, buf, _, err := h.tm.Shadow(b, testKind)
		if err != nil || nb != b || buf[BlockSize-1] != byte(i+1) {
			t.Fatalf("shadow after write-back: %d (want %d) content %#x err %v", nb, b, buf[BlockSize-1], err)
		}
		buf[BlockSize-1] = byte(0x80 + i)
	}
	h.commit()
	for i, b := range blocks {
		if got := h.content(h.tm.Reader(), b); got != byte(0x80+i) {
			t.Fatalf("block %d committed as %#x", b, got)
		}
	}
}

func TestManagerFailedWriteNeedsAbort(t *testing.T) {
	for _, flush := range []bool{false, true} {
		h := newMHarness(t)
		h.sbRoot = h.newBlock(1)
		h.commit()
		h.newBlock(2)
		h.dev.failWrite, h.dev.failFlush = !flush, flush
		err := h.tm.Flush()
		var ioe *IOError
		if !errors.As(err, &ioe) || !errors.Is(err, errInjected) {
			t.Fatalf("flush=%v: %v", flush, err)
		}
		h.dev.failWrite, h.dev.failFlush = false, false
		if _, _, err := h.tm.New(testKind); !errors.Is(err, errInjected) || h.tm.Failed() == nil {
			t.Fatalf("flush=%v: New after a failed write: %v", flush, err)
		}
		if err := h.tm.CommitSuperblock(superblockBlock(0), testSuper); !errors.Is(err, errInjected) {
			t.Fatalf("flush=%v: commit after a failed write: %v", flush, err)
		}
		h.tm.Abort()
		h.sm.abort()
		if h.tm.Failed() != nil {
			t.Fatal("abort kept the failure")
		}
		h.sbRoot = h.newBlock(3)
		h.commit()
	}
}

// The overlay reads the transaction as it is now, sealed as it will be
// written, and Changes moves with every change.
func TestManagerOverlay(t *testing.T) {
	h := newMHarness(t)
	h.sbRoot = h.newBlock(0x10)
	h.commit()
	c0 := h.tm.Changes()
	b := h.newBlock(0x20)
	if h.tm.Changes() == c0 {
		t.Fatal("New did not move Changes")
	}
	r := NewReader(h.tm.Overlay(), testBlocks*BlockSize)
	if got := h.content(r, b); got != 0x20 {
		t.Fatalf("overlay reads %#x", got)
	}
	if got := h.content(r, h.sbRoot); got != 0x10 {
		t.Fatalf("overlay of a committed block reads %#x", got)
	}
	// A multi-block read sees the dirty block in its place.
	buf := make([]byte, 3*BlockSize)
	if _, err := h.tm.Overlay().ReadAt(buf, int64(b-1)*BlockSize); err != nil {
		t.Fatal(err)
	}
	if err := testKind.Validate(buf[BlockSize:2*BlockSize], b); err != nil || buf[2*BlockSize-1] != 0x20 {
		t.Fatalf("multi-block overlay read: %v", err)
	}
	c1 := h.tm.Changes()
	if _, err := h.tm.Writable(b, testKind); err != nil {
		t.Fatal(err)
	}
	if h.tm.Changes() == c1 {
		t.Fatal("Writable did not move Changes")
	}
}

// Pins: the blocks a commit frees are kept from the allocator while a pin
// of an earlier commit is open, and only then.
func TestManagerPins(t *testing.T) {
	h := newMHarness(t)
	a, b, c := h.newBlock(1), h.newBlock(2), h.newBlock(3)
	h.commit() // commit 1: a, b, c used
	p1 := h.tm.Pin()
	if p1.Commit() != 1 {
		t.Fatalf("pin of commit %d", p1.Commit())
	}
	h.must(h.sm.Dec(a))
	h.commit() // commit 2 frees a: p1 can reach it
	p2 := h.tm.Pin()
	h.must(h.sm.Dec(b))
	h.commit() // commit 3 frees b: p1 and p2 can reach it
	pinned := func() []uint64 {
		var out []uint64
		h.tm.PinnedBlocks(func(x uint64) { out = append(out, x) })
		slices.Sort(out)
		return out
	}
	if got := pinned(); !slices.Equal(got, []uint64{a, b}) {
		t.Fatalf("pinned %v, want %v", got, []uint64{a, b})
	}
	for range 10 {
		nb := h.newBlock(0)
		if nb == a || nb == b {
			t.Fatalf("allocated pinned block %d", nb)
		}
	}
	g := h.tm.PinGeneration()
	p1.Release()
	p1.Release() // twice is harmless
	if h.tm.PinGeneration() == g {
		t.Fatal("release did not move the pin generation")
	}
	if got := pinned(); !slices.Equal(got, []uint64{b}) {
		t.Fatalf("after releasing the older pin: %v, want [%d]", got, b)
	}
	q := p2.Clone()
	p2.Release()
	if got := pinned(); !slices.Equal(got, []uint64{b}) {
		t.Fatalf("the clone lost the pin: %v", got)
	}
	q.Release()
	if got := pinned(); len(got) != 0 || h.tm.OpenPins() != 0 {
		t.Fatalf("after every release: %v, %d open", got, h.tm.OpenPins())
	}
	if p2.Clone() != nil {
		t.Fatal("clone of a released pin")
	}
	// Without pins nothing is recorded.
	h.must(h.sm.Dec(c))
	h.commit()
	if got := pinned(); len(got) != 0 {
		t.Fatalf("recorded without pins: %v", got)
	}
	// A pin of the newest commit needs nothing freed before it.
	p := h.tm.Pin()
	h.tm.RecordFreed([]uint64{5})
	if got := pinned(); len(got) != 0 {
		t.Fatalf("a pin of the current commit kept %v", got)
	}
	p.Release()
}

func (h *mharness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// WriteBackReuse writes the modified blocks out like WriteBack, and New
// then hands their buffers out again, zeroed, when the reader keeps no
// cache; the blocks written keep their contents. With a cache, whose
// entries are the written buffers, nothing is reused.
func TestManagerWriteBackReuse(t *testing.T) {
	for _, cache := range []bool{false, true} {
		h := newMHarness(t)
		h.sbRoot = h.newBlock(0x10)
		h.commit()
		if !cache {
			h.tm.Reader().SetCacheBlocks(0)
		}
		written := map[*byte]bool{}
		var blocks []uint64
		for i := range 3 {
			b, buf, err := h.tm.New(testKind)
			if err != nil {
				t.Fatal(err)
			}
			buf[BlockSize-1] = byte(1 + i)
			written[&buf[0]] = true
			blocks = append(blocks, b)
		}
		if err := h.tm.WriteBackReuse(); err != nil {
			t.Fatal(err)
		}
		if h.tm.DirtyBlocks() != 0 {
			t.Fatalf("cache %v: %d blocks dirty after WriteBackReuse", cache, h.tm.DirtyBlocks())
		}
		reused := 0
		for i := range 4 {
			b, buf, err := h.tm.New(testKind)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, make([]byte, BlockSize)) {
				t.Fatalf("cache %v: new block %d not zeroed", cache, b)
			}
			if written[&buf[0]] {
				reused++
			}
			buf[BlockSize-1] = byte(0x40 + i)
			blocks = append(blocks, b)
		}
		if want := map[bool]int{false: 3, true: 0}[cache]; reused != want {
			t.Fatalf("cache %v: %d buffers reused, want %d", cache, reused, want)
		}
		h.commit()
		fresh := NewReader(h.dev, testBlocks*BlockSize)
		for i, b := range blocks {
			want := byte(1 + i)
			if i >= 3 {
				want = byte(0x40 + i - 3)
			}
			if got := h.content(fresh, b); got != want {
				t.Fatalf("cache %v: block %d written as %#x, want %#x", cache, b, got, want)
			}
			if got := h.content(h.tm.Reader(), b); got != want {
				t.Fatalf("cache %v: block %d read back as %#x, want %#x", cache, b, got, want)
			}
		}
	}
}

// The failure recorded is the first, as the callers further up describe
// it: a later Fail of an error wrapping it replaces it, any other does not.
func TestFailKeepsTheFirstFailureDescribed(t *testing.T) {
	m := NewManager(memdev.New(16*BlockSize), 16*BlockSize)
	first := fmt.Errorf("metadata block 99: %w", ErrBlockRange)
	m.Fail(first)
	m.Fail(errors.New("a later, other failure"))
	if m.Failed() != first {
		t.Fatalf("Failed() = %v; want the first failure", m.Failed())
	}
	described := &CorruptError{Block: 7, Kind: "btree node", Err: first, Detail: "the value of entry 0"}
	m.Fail(described)
	if m.Failed() != described {
		t.Fatalf("Failed() = %v; want the first failure as described by its caller", m.Failed())
	}
	m.Fail(first) // the bare error again: the description stays
	if m.Failed() != described {
		t.Fatalf("Failed() = %v after the bare error again", m.Failed())
	}
	m.Abort()
	if m.Failed() != nil {
		t.Fatalf("Failed() = %v after Abort", m.Failed())
	}
}

// zeroSM is a damaged metadata space map that counts block 0, the
// superblock's, as free and hands it out first.
type zeroSM struct {
	*modelSM
	given bool
}

func (s *zeroSM) NewBlock() (uint64, error) {
	if !s.given {
		s.given = true
		return 0, nil
	}
	return s.modelSM.NewBlock()
}

// New and Shadow refuse block 0 from the space map, as they refuse blocks
// beyond the device: a node there would be overwritten by the commit's
// superblock (found by FuzzWrite: a thin created on such a pool read the
// superblock as its root once committed).
func TestNewRefusesBlockZero(t *testing.T) {
	for _, op := range []string{"new", "shadow"} {
		const nr = 16
		m := NewManager(memdev.New(nr*BlockSize), nr*BlockSize)
		sm := newModelSM(m, nr)
		v := &Validator{Kind: "test", Salt: SaltNode}
		var err error
		if op == "new" {
			m.SetSpaceMap(&zeroSM{modelSM: sm})
			_, _, err = m.New(v)
		} else {
			b, _, nerr := m.New(v) // a block to shadow, committed below
			if nerr != nil {
				t.Fatal(nerr)
			}
			if err := m.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := m.CommitSuperblock(make([]byte, BlockSize), &Validator{Kind: "superblock"}); err != nil {
				t.Fatal(err)
			}
			sm.endTransaction()
			m.SetSpaceMap(&zeroSM{modelSM: sm})
			_, _, _, err = m.Shadow(b, v)
		}
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Block != 0 || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s with block 0 from the space map: %v; want a CorruptError at block 0", op, err)
		}
		if m.Failed() == nil {
			t.Fatalf("%s with block 0 from the space map did not end the transaction", op)
		}
	}
}
