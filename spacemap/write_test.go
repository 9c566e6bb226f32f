package spacemap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/transaction"
)

// Tests of Writable on its own: a metadata space map (and a data one) on
// a transaction manager over an in-memory device, committed through a
// minimal superblock of the test's own, and read back with the read-side
// Map, which shares no code with the write path but the codecs.

var (
	userKind  = &transaction.Validator{Kind: "user block", Salt: 0x7e57}
	testSuper = &transaction.Validator{Kind: "test superblock", Salt: transaction.SaltSuperblock}
)

// Slots of the test superblock.
const (
	offMetaSlot = 64
	offDataSlot = 192
)

// tb is what the harness needs of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

type smHarness struct {
	t     tb
	dev   *memdev.Dev
	tm    *transaction.Manager
	msm   *Writable
	dsm   *Writable
	nrDev uint64 // blocks on the device
}

func newSMHarness(t tb, devBlocks, metaBlocks, dataBlocks uint64) *smHarness {
	h := &smHarness{t: t, dev: memdev.New(int64(devBlocks) * transaction.BlockSize), nrDev: devBlocks}
	h.tm = transaction.NewManager(h.dev, h.dev.Size())
	var err error
	if h.msm, err = CreateMetadata(h.tm, metaBlocks); err != nil {
		t.Fatal(err)
	}
	if h.dsm, err = CreateData(h.tm, dataBlocks); err != nil {
		t.Fatal(err)
	}
	h.commit()
	return h
}

func (h *smHarness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// commit commits both maps and a superblock holding their roots.
func (h *smHarness) commit() {
	h.t.Helper()
	h.must(h.tryCommit())
}

func (h *smHarness) tryCommit() error {
	if err := h.dsm.Commit(); err != nil {
		return err
	}
	if err := h.msm.Commit(); err != nil {
		return err
	}
	if err := h.tm.Flush(); err != nil {
		return err
	}
	sb := make([]byte, transaction.BlockSize)
	h.msm.Root().Encode(sb[offMetaSlot : offMetaSlot+128])
	h.dsm.Root().Encode(sb[offDataSlot : offDataSlot+128])
	if err := h.tm.CommitSuperblock(sb, testSuper); err != nil {
		return err
	}
	h.dsm.EndTransaction()
	h.msm.EndTransaction()
	return nil
}

// abort forgets the transaction and reopens the maps from the commit.
func (h *smHarness) abort() {
	h.t.Helper()
	h.tm.Abort()
	sb := h.superblock(h.tm.Reader())
	var err error
	h.msm, err = OpenWritable(h.tm, sb[offMetaSlot:offMetaSlot+128], true)
	h.must(err)
	h.tm.SetSpaceMap(h.msm)
	h.dsm, err = OpenWritable(h.tm, sb[offDataSlot:offDataSlot+128], false)
	h.must(err)
}

func (h *smHarness) superblock(r *transaction.Reader) []byte {
	h.t.Helper()
	buf := make([]byte, transaction.BlockSize)
	h.must(r.ReadInto(0, buf, testSuper))
	return buf
}

// committed reads the committed metadata (or data) space map with the
// read-side Map over a fresh reader: every count, and the blocks the map
// itself occupies.
func (h *smHarness) committed(metadata bool) (counts map[uint64]uint32, own []uint64, m *Map) {
	h.t.Helper()
	r := transaction.NewReader(h.dev, h.dev.Size())
	sb := h.superblock(r)
	var err error
	if metadata {
		m, err = OpenMetadata(r, sb[offMetaSlot:offMetaSlot+128])
	} else {
		m, err = OpenData(r, sb[offDataSlot:offDataSlot+128])
	}
	h.must(err)
	counts = make(map[uint64]uint32)
	for bc, err := range m.Counts() {
		h.must(err)
		counts[bc.Block] = bc.Count
	}
	h.must(m.MetadataBlocks(func(b uint64) error { own = append(own, b); return nil }))
	return counts, own, m
}

// newUser allocates a metadata block through the manager and fills it
// with a pattern, as a B-tree node would be.
func (h *smHarness) newUser(fill byte) uint64 {
	h.t.Helper()
	b, buf, err := h.tm.New(userKind)
	h.must(err)
	for i := transaction.HeaderSize; i < len(buf); i++ {
		buf[i] = fill
	}
	return b
}

// Allocation never returns a block that is in use now or was at the last
// commit: a block freed in a transaction is reused only after the commit.
func TestWritableFreedNotReusedBeforeCommit(t *testing.T) {
	h := newSMHarness(t, 200, 200, 100)
	var user []uint64
	for i := range 40 {
		user = append(user, h.newUser(byte(i)))
	}
	h.commit()
	freed := map[uint64]bool{}
	for _, b := range user[:20] {
		h.must(h.msm.Dec(b))
		freed[b] = true
	}
	got := map[uint64]bool{}
	for {
		b, err := h.msm.NewBlock()
		if errors.Is(err, ErrNoSpace) {
			break
		}
		h.must(err)
		if freed[b] || got[b] {
			t.Fatalf("block %d handed out: freed in this transaction or twice", b)
		}
		got[b] = true
	}
	n, err := h.msm.Allocatable()
	h.must(err)
	if n != 0 {
		t.Fatalf("allocatable %d after ErrNoSpace", n)
	}
	// Data space map: the same rule.
	h.abort()
	for b := range uint64(100) {
		h.must(h.dsm.Inc(b))
	}
	h.commit()
	h.must(h.dsm.Dec(7))
	for {
		b, err := h.dsm.NewBlock()
		if errors.Is(err, ErrNoSpace) {
			break
		}
		h.must(err)
		if b == 7 {
			t.Fatal("data block freed in this transaction handed out")
		}
	}
}

// A block pinned by a view of an earlier commit is not handed out until
// the view's pin is released; then it is.
func TestWritablePinnedNotReused(t *testing.T) {
	h := newSMHarness(t, 300, 300, 10)
	var user []uint64
	for i := range 30 {
		user = append(user, h.newUser(byte(i)))
	}
	h.commit()
	pin := h.tm.Pin()
	for _, b := range user {
		h.must(h.msm.Dec(b))
	}
	h.commit()
	h.commit() // and another commit: still pinned
	before, err := h.msm.Allocatable()
	h.must(err)
	n := uint64(0)
	for {
		b, err := h.msm.NewBlock()
		if errors.Is(err, ErrNoSpace) {
			break
		}
		h.must(err)
		if slices.Contains(user, b) {
			t.Fatalf("pinned block %d reused", b)
		}
		n++
	}
	if n != before {
		t.Fatalf("allocatable %d, handed out %d", before, n)
	}
	h.abort()
	pin.Release()
	released, err := h.msm.Allocatable()
	h.must(err)
	// The user blocks, and the space map's own blocks of the pinned
	// commit that later commits replaced.
	if released < before+uint64(len(user)) || released > before+uint64(len(user))+4 {
		t.Fatalf("releasing the pin: allocatable %d → %d, want %d more and a few bitmap and index blocks", before, released, len(user))
	}
	reused := 0
	for {
		b, err := h.msm.NewBlock()
		if errors.Is(err, ErrNoSpace) {
			break
		}
		h.must(err)
		if slices.Contains(user, b) {
			reused++
		}
	}
	if reused != len(user) {
		t.Fatalf("%d of the %d blocks of a released pin handed out again", reused, len(user))
	}
}

// Counts of three and more live in the overflow tree; they survive a
// commit, drop out of it below three, and read back with the read side.
func TestWritableOverflowCounts(t *testing.T) {
	h := newSMHarness(t, 100, 100, 50)
	want := map[uint64]uint32{}
	for i, c := range []uint32{1, 2, 3, 4, 7, 300} {
		b := uint64(10 + i)
		for range c {
			h.must(h.dsm.Inc(b))
		}
		want[b] = c
	}
	h.commit()
	check := func() {
		t.Helper()
		got, _, m := h.committed(false)
		if !maps.Equal(got, want) {
			t.Fatalf("committed counts %v, want %v", got, want)
		}
		ov := 0
		h.must(m.overflow().Walk(0, ^uint64(0), func(k uint64, v []byte) error {
			if want[k] < 3 || DecodeRefCount(v) != want[k] {
				t.Errorf("overflow entry %d=%d, want count %d", k, DecodeRefCount(v), want[k])
			}
			ov++
			return nil
		}))
		n := 0
		for _, c := range want {
			if c >= 3 {
				n++
			}
		}
		if ov != n {
			t.Fatalf("%d overflow entries, want %d", ov, n)
		}
		for b, c := range want {
			got, err := h.dsm.Count(b)
			h.must(err)
			if got != c {
				t.Fatalf("writable count of %d: %d, want %d", b, got, c)
			}
		}
	}
	check()
	// Down through three to two and one; up again from two.
	for range 2 {
		h.must(h.dsm.Dec(13)) // 4 → 2
	}
	want[13] = 2
	h.must(h.dsm.Dec(12)) // 3 → 2
	want[12] = 2
	h.must(h.dsm.Inc(11)) // 2 → 3
	want[11] = 3
	h.must(h.dsm.SetCount(15, 1))
	want[15] = 1
	h.commit()
	check()
	h.abort() // reopened from the commit, counts from the tree again
	check()
	if err := h.dsm.Dec(40); !errors.Is(err, ErrDecFree) {
		t.Fatalf("dec of a free block: %v", err)
	}
}

// Extend grows a map: the new blocks are free, allocatable, and committed
// with bitmaps of their own.
func TestWritableExtend(t *testing.T) {
	h := newSMHarness(t, 40000, 100, 10)
	if h.msm.NrBlocks() != 100 {
		t.Fatal(h.msm.NrBlocks())
	}
	for range 90 {
		h.newUser(1)
	}
	h.commit()
	before, err := h.msm.Allocatable()
	h.must(err)
	h.must(h.msm.Extend(20000 - 100)) // a second bitmap
	h.must(h.dsm.Extend(EntriesPerBitmap * 3))
	after, err := h.msm.Allocatable()
	h.must(err)
	if after != before+19900 || h.msm.NrFree() != before+19900 {
		t.Fatalf("allocatable %d → %d (free %d) after extending by 19900", before, after, h.msm.NrFree())
	}
	for range 200 {
		h.newUser(2)
	}
	for b := uint64(EntriesPerBitmap*3 + 5); b < EntriesPerBitmap*3+10; b++ {
		h.must(h.dsm.Inc(b))
	}
	h.commit()
	mc, own, m := h.committed(true)
	if m.NrBlocks() != 20000 || len(m.Index()) != 2 || uint64(len(mc)) != m.NrAllocated() {
		t.Fatalf("extended metadata map: %d blocks, %d bitmaps, %d counted, %d allocated", m.NrBlocks(), len(m.Index()), len(mc), m.NrAllocated())
	}
	_ = own
	dc, _, dm := h.committed(false)
	if dm.NrBlocks() != 10+EntriesPerBitmap*3 || len(dc) != 5 || dc[EntriesPerBitmap*3+5] != 1 {
		t.Fatalf("extended data map: %d blocks, counts %v", dm.NrBlocks(), dc)
	}
	if err := h.msm.Extend(MaxMetadataBlocks); err == nil {
		t.Fatal("metadata map extended beyond its limit")
	}
}

// After each commit the metadata space map counts exactly what is in use:
// block 0, the blocks the test allocated (with their counts), and the
// blocks both maps occupy themselves, once each — including those its own
// commit allocated while counting (the fixpoint), and none it replaced.
// Every view of a pinned commit still reads what that commit held, and
// Allocatable is exactly what a model of the rule says.
func TestWritableModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const devBlocks = 600
		meta := rapid.Uint64Range(80, devBlocks-100).Draw(t, "metaBlocks")
		h := newSMHarness(t, devBlocks, meta, 2000)
		m := newAllocModel(h)
		for range rapid.IntRange(1, 120).Draw(t, "steps") {
			m.step(t)
		}
		for _, p := range m.pins {
			p.pin.Release()
		}
		m.pins = nil
		m.commit(t)
		// Without views, only the last commit's blocks are kept from
		// the allocator: nothing leaks.
		n, err := h.msm.Allocatable()
		h.must(err)
		counts, _, cm := h.committed(true)
		if n != cm.NrBlocks()-uint64(len(counts)) {
			t.Fatalf("allocatable %d with no views, want %d", n, cm.NrBlocks()-uint64(len(counts)))
		}
	})
}

type modelPin struct {
	pin    *transaction.Pin
	commit int
	blocks map[uint64][]byte // every block in use at the commit, as it was
}

type allocModel struct {
	h       *smHarness
	user    map[uint64]uint32 // counts of the test's blocks now
	history []map[uint64]bool // blocks in use at each commit
	pins    []*modelPin
	newTx   map[uint64]bool // user blocks allocated in this transaction
	userAt  map[uint64]uint32
}

func newAllocModel(h *smHarness) *allocModel {
	m := &allocModel{h: h, user: map[uint64]uint32{}, newTx: map[uint64]bool{}, userAt: map[uint64]uint32{}}
	m.record(h.t)
	return m
}

// record checks the commit just made and adds it to the history.
func (m *allocModel) record(t tb) {
	counts, own, _ := m.h.committed(true)
	want := map[uint64]uint32{0: 1}
	for b, c := range m.user {
		if c > 0 {
			want[b] = c
		}
	}
	dcounts, downs, _ := m.h.committed(false)
	_ = dcounts
	for _, b := range append(own, downs...) {
		if want[b] != 0 {
			t.Fatalf("block %d used twice: by the space maps and as count %d", b, want[b])
		}
		want[b] = 1
	}
	if !maps.Equal(counts, want) {
		t.Fatalf("committed metadata counts differ:\n got %v\nwant %v", counts, want)
	}
	used := map[uint64]bool{}
	for b := range counts {
		used[b] = true
	}
	m.history = append(m.history, used)
	m.userAt = maps.Clone(m.user)
	clear(m.newTx)
	// Every pinned commit still reads as it was.
	for _, p := range m.pins {
		for b, old := range p.blocks {
			if b == 0 {
				continue
			}
			if cur := m.h.dev.Bytes()[b*transaction.BlockSize : (b+1)*transaction.BlockSize]; !bytes.Equal(cur, old) {
				t.Fatalf("block %d of pinned commit %d was overwritten", b, p.commit)
			}
		}
	}
}

func (m *allocModel) commit(t *rapid.T) {
	if err := m.h.tryCommit(); errors.Is(err, ErrNoSpace) {
		m.abort()
		return
	} else if err != nil {
		t.Fatal(err)
	}
	m.record(t)
}

func (m *allocModel) abort() {
	m.h.abort()
	m.user = maps.Clone(m.userAt)
	clear(m.newTx)
}

// allowed is what the rule lets the allocator hand out now.
func (m *allocModel) allowed() map[uint64]bool {
	last := m.history[len(m.history)-1]
	oldest := len(m.history) - 1
	for _, p := range m.pins {
		oldest = min(oldest, p.commit)
	}
	out := map[uint64]bool{}
	for b := uint64(0); b < m.h.msm.NrBlocks(); b++ {
		if last[b] || m.user[b] > 0 {
			continue
		}
		kept := false
		for k := oldest + 1; k < len(m.history) && !kept; k++ {
			kept = m.history[k-1][b] && !m.history[k][b]
		}
		if !kept {
			out[b] = true
		}
	}
	return out
}

func (m *allocModel) step(t *rapid.T) {
	h := m.h
	switch rapid.IntRange(0, 9).Draw(t, "op") {
	case 0, 1, 2: // allocate
		allowed := m.allowed()
		b, _, err := h.tm.New(userKind)
		if len(allowed) == 0 {
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("nothing allowed, NewBlock: %d, %v", b, err)
			}
			m.abort()
			return
		}
		h.must(err)
		if !allowed[b] {
			t.Fatalf("allocated %d, which the rule keeps", b)
		}
		buf, err := h.tm.Writable(b, userKind)
		h.must(err)
		binary.LittleEndian.PutUint64(buf[transaction.HeaderSize:], b*1000+uint64(len(m.history)))
		m.user[b] = 1
		m.newTx[b] = true
	case 3: // share: another reference
		if b, ok := m.pickUser(t); ok {
			h.must(h.msm.Inc(b))
			m.user[b]++
		}
	case 4, 5: // drop a reference
		if b, ok := m.pickUser(t); ok {
			h.must(h.msm.Dec(b))
			if m.user[b]--; m.user[b] == 0 {
				delete(m.user, b)
			}
		}
	case 6: // commit
		m.commit(t)
	case 7: // open a view of the last commit
		p := &modelPin{pin: h.tm.Pin(), commit: len(m.history) - 1, blocks: map[uint64][]byte{}}
		for b := range m.history[p.commit] {
			p.blocks[b] = bytes.Clone(h.dev.Bytes()[b*transaction.BlockSize : (b+1)*transaction.BlockSize])
		}
		m.pins = append(m.pins, p)
	case 8: // close one
		if len(m.pins) > 0 {
			i := rapid.IntRange(0, len(m.pins)-1).Draw(t, "pin")
			m.pins[i].pin.Release()
			m.pins = slices.Delete(m.pins, i, i+1)
		}
	case 9:
		if rapid.Bool().Draw(t, "extend") && h.msm.NrBlocks() < h.nrDev {
			n := rapid.Uint64Range(1, h.nrDev-h.msm.NrBlocks()).Draw(t, "by")
			h.must(h.msm.Extend(n))
		} else {
			m.abort()
		}
	}
	n, err := h.msm.Allocatable()
	h.must(err)
	if want := uint64(len(m.allowed())); n != want {
		t.Fatalf("allocatable %d, the rule allows %d", n, want)
	}
}

func (m *allocModel) pickUser(t *rapid.T) (uint64, bool) {
	if len(m.user) == 0 {
		return 0, false
	}
	keys := slices.Sorted(maps.Keys(m.user))
	return keys[rapid.IntRange(0, len(keys)-1).Draw(t, "user")], true
}

// A new bitmap holds no buffers of its own until one of its counts is set:
// its cur and old are the shared zeroBitmap, which nothing writes; a set
// and a commit give the bitmap its own, and the counts read back.
func TestNewBitmapsShareZero(t *testing.T) {
	h := newSMHarness(t, 64, 64, 3*EntriesPerBitmap)
	for i := range 3 {
		if bm := h.dsm.bitmaps[i]; !isZeroBitmap(bm.cur) || !isZeroBitmap(bm.old) {
			t.Fatalf("bitmap %d has buffers before any count is set", i)
		}
	}
	b := uint64(EntriesPerBitmap + 7)
	h.must(h.dsm.Inc(b))
	h.must(h.dsm.Inc(b))
	h.commit()
	for i := range 3 {
		bm := h.dsm.bitmaps[i]
		if own := !isZeroBitmap(bm.cur) && !isZeroBitmap(bm.old); own != (i == 1) {
			t.Fatalf("bitmap %d: own buffers %v after a count in bitmap 1", i, own)
		}
	}
	if !bytes.Equal(zeroBitmap, make([]byte, transaction.BlockSize)) {
		t.Fatal("zeroBitmap written")
	}
	for _, x := range []uint64{0, b - 1, b, b + 1, 2*EntriesPerBitmap + 1} {
		want := uint32(0)
		if x == b {
			want = 2
		}
		if c, err := h.dsm.Count(x); err != nil || c != want {
			t.Fatalf("block %d: count %d (%v), want %d", x, c, err, want)
		}
	}
}
