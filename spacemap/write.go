package spacemap

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/transaction"
)

// Errors of a full space map. NewBlock of the metadata space map returns
// ErrNoMetadataSpace and of a data space map ErrNoDataSpace, so that a
// caller knows which device to grow; both match ErrNoSpace with errors.Is.
var (
	// ErrNoSpace means a space map has no block that is free both now and
	// at the last commit.
	ErrNoSpace = errors.New("no free space")
	// ErrNoMetadataSpace means the metadata device is full (or too small
	// for the space map bitmaps asked of it): grow the metadata device.
	ErrNoMetadataSpace error = &noSpaceError{"no free metadata block (the metadata device is full)"}
	// ErrNoDataSpace means the data device is full: grow the data device.
	ErrNoDataSpace error = &noSpaceError{"no free data block (the data device is full)"}
)

// noSpaceError is a full space map of one kind; it is ErrNoSpace too.
type noSpaceError struct{ msg string }

func (e *noSpaceError) Error() string        { return e.msg }
func (e *noSpaceError) Is(target error) bool { return target == ErrNoSpace }

// noSpace returns the full-space-map sentinel of w's kind.
func (w *Writable) noSpace() error {
	if w.metadata {
		return ErrNoMetadataSpace
	}
	return ErrNoDataSpace
}

// ErrDecFree means a reference was dropped from a block with none: the
// error is a *transaction.CorruptError naming the bitmap of the block.
var ErrDecFree = errors.New("reference dropped from a free block")

// Writable is a space map being changed in a transaction. Counts live in
// bitmaps loaded on demand and kept in memory with a copy of their committed
// state; counts of three or more live in a map. Nothing is written until
// Commit, which shadows the changed bitmaps, updates the overflow tree and
// the index, and returns the new root.
//
// The metadata space map is stored in the blocks it manages: its Commit
// repeats until shadowing its own blocks allocates nothing new, so the
// recursion the kernel breaks with deferred operations (FORMAT.md §5.11)
// never arises — all counting happens in memory.
//
// A Writable belongs to the transaction of its transaction.Manager and,
// like it, is not safe for concurrent use.
type Writable struct {
	tm       *transaction.Manager
	metadata bool

	nrBlocks    uint64
	nrAllocated uint64
	index       []IndexEntry
	indexDirty  map[int]bool
	indexRoot   uint64 // data: index tree root; metadata: index block (0: not yet allocated)
	refRoot     uint64 // overflow tree root

	bitmaps   map[int]*bitmap
	over      map[uint64]uint32 // current counts of touched blocks counted 3+ (below 3: to remove)
	overDirty map[uint64]bool

	begin uint64 // allocation cursor
	// newThisTx counts blocks allocated since the last commit.
	newThisTx uint64

	// freeBoth counts the blocks free now and at the last commit.
	freeBoth uint64
	// Metadata space map only: blocks pinned by open views of earlier
	// commits (transaction.Pin), as words of the bitmaps' encoding with
	// the low bit of each pinned entry set, per bitmap; pinnedFree counts
	// those that freeBoth counts; pinGen is the pin generation they
	// were derived from (pinKnown false: not derived yet).
	pinned     map[int][]uint64
	pinnedFree uint64
	pinGen     uint64
	pinKnown   bool
}

type bitmap struct {
	cur   []byte // current contents, on-disk encoding
	old   []byte // contents at the last commit (all zero for a new bitmap)
	dirty bool
}

// zeroBitmap is the cur and old of a new bitmap until it is first written
// (set, EndTransaction): a map over a large device, most of it never used,
// keeps no buffers for the bitmaps it does not use. Never written.
var zeroBitmap = make([]byte, transaction.BlockSize)

// isZeroBitmap reports whether b is zeroBitmap itself.
func isZeroBitmap(b []byte) bool { return &b[0] == &zeroBitmap[0] }

var overflowVT = &btree.ValueType{Size: RefCountValueSize}
var indexVT = &btree.ValueType{Size: IndexEntrySize}

// OpenWritable opens the space map whose root is in slot (a superblock slot)
// for changes in tm's transactions.
func OpenWritable(tm *transaction.Manager, slot []byte, metadata bool) (*Writable, error) {
	root := DecodeRoot(slot)
	w := newWritable(tm, metadata)
	if root.NrAllocated > root.NrBlocks {
		return nil, transaction.Corruptf(root.BitmapRoot, "space map root", ErrIndex,
			"%d blocks allocated of %d", root.NrAllocated, root.NrBlocks)
	}
	w.nrBlocks, w.nrAllocated = root.NrBlocks, root.NrAllocated
	w.freeBoth = root.NrBlocks - root.NrAllocated
	w.indexRoot, w.refRoot = root.BitmapRoot, root.RefCountRoot
	var m *Map
	var err error
	if metadata {
		m, err = OpenMetadata(tm.Reader(), slot)
	} else {
		m, err = OpenData(tm.Reader(), slot)
	}
	if err != nil {
		return nil, err
	}
	w.index = append([]IndexEntry(nil), m.index...)
	return w, nil
}

func newWritable(tm *transaction.Manager, metadata bool) *Writable {
	return &Writable{
		tm: tm, metadata: metadata,
		indexDirty: make(map[int]bool),
		bitmaps:    make(map[int]*bitmap),
		over:       make(map[uint64]uint32),
		overDirty:  make(map[uint64]bool),
	}
}

// CreateMetadata makes a new, empty metadata space map tracking nrBlocks
// blocks, with block 0 (the superblock) in use. Its structures are
// allocated from itself; tm must use it as its space map.
func CreateMetadata(tm *transaction.Manager, nrBlocks uint64) (*Writable, error) {
	if NrBitmaps(nrBlocks) > MaxMetadataBitmaps {
		return nil, fmt.Errorf("%d metadata blocks is more than the %d a metadata space map can track", nrBlocks, MaxMetadataBlocks)
	}
	w := newWritable(tm, true)
	w.extendIndex(nrBlocks)
	w.begin = 1
	if err := w.Inc(0); err != nil {
		return nil, err
	}
	tm.SetSpaceMap(w)
	var err error
	if w.refRoot, err = btree.Empty(tm, overflowVT); err != nil {
		return nil, err
	}
	return w, nil
}

// CreateData makes a new data space map of nrBlocks blocks, all free. Its
// structures are metadata blocks allocated through tm.
func CreateData(tm *transaction.Manager, nrBlocks uint64) (*Writable, error) {
	if nb := NrBitmaps(nrBlocks); nb > tm.NrBlocks() {
		return nil, fmt.Errorf("%d data blocks need %d bitmaps, more than the %d blocks of the metadata device: %w", nrBlocks, nb, tm.NrBlocks(), ErrNoMetadataSpace)
	}
	w := newWritable(tm, false)
	w.extendIndex(nrBlocks)
	var err error
	if w.indexRoot, err = btree.Empty(tm, indexVT); err != nil {
		return nil, err
	}
	if w.refRoot, err = btree.Empty(tm, overflowVT); err != nil {
		return nil, err
	}
	return w, nil
}

// extendIndex grows the map to n blocks, adding zeroed in-memory bitmaps.
func (w *Writable) extendIndex(n uint64) {
	for i := uint64(len(w.index)); i < NrBitmaps(n); i++ {
		w.index = append(w.index, IndexEntry{NrFree: EntriesPerBitmap})
		w.bitmaps[int(i)] = &bitmap{cur: zeroBitmap, old: zeroBitmap, dirty: true}
		w.indexDirty[int(i)] = true
	}
	w.freeBoth += n - w.nrBlocks
	w.nrBlocks = n
}

// Extend grows the space map by extra blocks (FORMAT.md §5.10).
// A size that wraps past 2^64, or whose bitmaps could not all fit in the
// metadata device, is refused before anything is allocated.
func (w *Writable) Extend(extra uint64) error {
	n := w.nrBlocks + extra
	if n < w.nrBlocks {
		return fmt.Errorf("%d blocks more than %d runs past 2^64: %w", extra, w.nrBlocks, ErrNoSpace)
	}
	if nb := NrBitmaps(n); !w.metadata && nb > w.tm.NrBlocks() {
		return fmt.Errorf("%d blocks need %d bitmaps, more than the %d blocks of the metadata device: %w", n, nb, w.tm.NrBlocks(), ErrNoMetadataSpace)
	}
	if w.metadata && NrBitmaps(n) > MaxMetadataBitmaps {
		return fmt.Errorf("%d metadata blocks is more than the %d a metadata space map can track", n, MaxMetadataBlocks)
	}
	w.extendIndex(n)
	return nil
}

// NrBlocks returns the number of blocks tracked.
func (w *Writable) NrBlocks() uint64 { return w.nrBlocks }

// NrAllocated returns the number of blocks with a non-zero count.
func (w *Writable) NrAllocated() uint64 { return w.nrAllocated }

// NrFree returns the number of free blocks.
func (w *Writable) NrFree() uint64 { return w.nrBlocks - w.nrAllocated }

// Root returns the space map's root as of the last Commit.
func (w *Writable) Root() Root {
	return Root{NrBlocks: w.nrBlocks, NrAllocated: w.nrAllocated, BitmapRoot: w.indexRoot, RefCountRoot: w.refRoot}
}

func (w *Writable) bitmap(i int) (*bitmap, error) {
	if bm, ok := w.bitmaps[i]; ok {
		return bm, nil
	}
	blk, err := w.tm.Read(w.index[i].Blocknr, BitmapValidator)
	if err != nil {
		return nil, err
	}
	bm := &bitmap{cur: append([]byte(nil), blk...), old: append([]byte(nil), blk...)}
	w.bitmaps[i] = bm
	return bm, nil
}

func (w *Writable) check(b uint64) error {
	if b >= w.nrBlocks {
		kind := "data"
		if w.metadata {
			kind = "metadata"
		}
		return fmt.Errorf("%s block %d: %w (%d blocks)", kind, b, ErrBlockRange, w.nrBlocks)
	}
	return nil
}

// Count returns b's reference count.
func (w *Writable) Count(b uint64) (uint32, error) {
	if err := w.check(b); err != nil {
		return 0, err
	}
	bm, err := w.bitmap(int(b / EntriesPerBitmap))
	if err != nil {
		return 0, err
	}
	v := BitmapEntry(bm.cur, int(b%EntriesPerBitmap))
	if v < 3 {
		return v, nil
	}
	return w.overflowCount(b)
}

func (w *Writable) overflowCount(b uint64) (uint32, error) {
	if c, ok := w.over[b]; ok {
		return c, nil
	}
	t := btree.Tree{R: w.tm, Root: w.refRoot, ValueSize: RefCountValueSize}
	v, ok, err := t.Lookup(b)
	if err != nil {
		return 0, err
	}
	if !ok || DecodeRefCount(v) < 3 {
		return 0, transaction.Corruptf(w.refRoot, "space map overflow tree", ErrOverflow,
			"block %d is counted 3 or more in its bitmap but has no overflow count", b)
	}
	c := DecodeRefCount(v)
	w.over[b] = c
	return c, nil
}

// set changes b's count from old to c, keeping the summaries right.
func (w *Writable) set(b uint64, bm *bitmap, old, c uint32) {
	i, e := int(b/EntriesPerBitmap), int(b%EntriesPerBitmap)
	if BitmapEntry(bm.old, e) == 0 && (old == 0) != (c == 0) {
		d := uint64(1)
		if c == 0 {
			w.freeBoth++
		} else {
			w.freeBoth--
			d = ^uint64(0) // -1
		}
		if w.isPinned(b) {
			w.pinnedFree += d
		}
	}
	if isZeroBitmap(bm.cur) {
		bm.cur = make([]byte, transaction.BlockSize)
	}
	SetBitmapEntry(bm.cur, e, min(c, 3))
	bm.dirty = true
	ie := &w.index[i]
	switch {
	case old == 0 && c > 0:
		w.nrAllocated++
		ie.NrFree--
		if ie.NoneFreeBefore == uint32(e) {
			ie.NoneFreeBefore++
		}
		w.indexDirty[i] = true
	case old > 0 && c == 0:
		w.nrAllocated--
		ie.NrFree++
		ie.NoneFreeBefore = min(ie.NoneFreeBefore, uint32(e))
		w.indexDirty[i] = true
	}
	if c >= 3 || old >= 3 {
		w.over[b] = c
		w.overDirty[b] = true
	}
}

// Inc adds a reference to b.
func (w *Writable) Inc(b uint64) error {
	c, bm, err := w.load(b)
	if err != nil {
		return err
	}
	w.set(b, bm, c, c+1)
	return nil
}

// Dec drops a reference to b.
func (w *Writable) Dec(b uint64) error {
	c, bm, err := w.load(b)
	if err != nil {
		return err
	}
	if c == 0 {
		// Whoever drops the reference holds one the map does not count:
		// the map is damaged where it keeps b's count.
		kind := "data"
		if w.metadata {
			kind = "metadata"
		}
		return transaction.Corruptf(w.index[b/EntriesPerBitmap].Blocknr, KindBitmap, ErrDecFree,
			"%s block %d has a count of 0", kind, b)
	}
	w.set(b, bm, c, c-1)
	return nil
}

// SetCount sets b's count.
func (w *Writable) SetCount(b uint64, c uint32) error {
	old, bm, err := w.load(b)
	if err != nil {
		return err
	}
	w.set(b, bm, old, c)
	return nil
}

func (w *Writable) load(b uint64) (uint32, *bitmap, error) {
	if err := w.check(b); err != nil {
		return 0, nil, err
	}
	bm, err := w.bitmap(int(b / EntriesPerBitmap))
	if err != nil {
		return 0, nil, err
	}
	c := BitmapEntry(bm.cur, int(b%EntriesPerBitmap))
	if c == 3 {
		if c, err = w.overflowCount(b); err != nil {
			return 0, nil, err
		}
	}
	return c, bm, nil
}

// NewBlock allocates a block that is free now and was free at the last
// commit (so a block freed in this transaction is never reused before the
// commit, FORMAT.md §5.9), searching from after the last allocation and
// wrapping once, and gives it a count of one. The metadata space map also
// passes over the blocks pinned by open views of earlier commits
// (transaction.Manager.Pin): those commits stay readable until their views
// close.
func (w *Writable) NewBlock() (uint64, error) {
	if err := w.loadPins(); err != nil {
		return 0, err
	}
	b, err := w.find(w.begin, w.nrBlocks)
	if err == ErrNoSpace && w.begin > 0 {
		b, err = w.find(0, min(w.begin, w.nrBlocks))
	}
	if err == ErrNoSpace {
		return 0, w.noSpace()
	}
	if err != nil {
		return 0, err
	}
	w.begin = b + 1
	w.newThisTx++
	return b, w.Inc(b)
}

const lowBits = 0x5555555555555555

// find returns the first block in [lo, hi) free both now and at the last
// commit.
func (w *Writable) find(lo, hi uint64) (uint64, error) {
	for i := lo / EntriesPerBitmap; i < NrBitmaps(hi); i++ {
		ie := w.index[i]
		if ie.NrFree == 0 {
			continue
		}
		bm, err := w.bitmap(int(i))
		if err != nil {
			return 0, err
		}
		base := i * EntriesPerBitmap
		start := uint64(0)
		if lo > base {
			start = lo - base
		}
		start = max(start, uint64(ie.NoneFreeBefore))
		pin := w.pinned[int(i)]
		for wd := start / 32; wd < EntriesPerBitmap/32; wd++ {
			x := BitmapWord(bm.cur, int(wd)) | BitmapWord(bm.old, int(wd))
			used := (x | x>>1) & lowBits // bit 2j set where entry j is in use now or then
			if pin != nil {
				used |= pin[wd]
			}
			if wd == start/32 {
				used |= lowBits & (1<<(2*(start%32)) - 1)
			}
			if used == lowBits {
				continue
			}
			j := uint64(bits.TrailingZeros64(^used&lowBits)) / 2
			b := base + 32*wd + j
			if b >= hi {
				return 0, ErrNoSpace
			}
			return b, nil
		}
	}
	return 0, ErrNoSpace
}

// Commit writes the space map's changes through tm: the overflow tree, the
// changed bitmaps (each shadowed once per transaction) and the index. For
// the metadata space map it repeats until its own shadowing allocates
// nothing more. Root then returns the new root. The transaction is not over
// until EndTransaction.
func (w *Writable) Commit() error {
	shadowed := make(map[int]bool)
	indexShadowed := false
	for round := 0; ; round++ {
		if round > 64+len(w.index) {
			return errors.New("space map commit does not converge")
		}
		changed := false
		if len(w.overDirty) > 0 {
			changed = true
			if err := w.commitOverflow(); err != nil {
				return err
			}
		}
		// Bitmaps, overflow entries and index entries are visited in
		// order so that the blocks allocated, and so the image, are the
		// same every time (Go map order is random).
		for _, i := range slices.Sorted(maps.Keys(w.bitmaps)) {
			bm := w.bitmaps[i]
			if !bm.dirty || shadowed[i] {
				continue
			}
			changed = true
			shadowed[i] = true
			var nb uint64
			var err error
			if loc := w.index[i].Blocknr; loc == 0 {
				nb, _, err = w.tm.New(BitmapValidator)
			} else {
				nb, _, _, err = w.tm.Shadow(loc, BitmapValidator)
			}
			if err != nil {
				return err
			}
			w.index[i].Blocknr = nb
			w.indexDirty[i] = true
		}
		if w.metadata {
			if len(w.indexDirty) > 0 && !indexShadowed {
				changed = true
				indexShadowed = true
				var nb uint64
				var err error
				if w.indexRoot == 0 {
					nb, _, err = w.tm.New(IndexValidator)
				} else {
					nb, _, _, err = w.tm.Shadow(w.indexRoot, IndexValidator)
				}
				if err != nil {
					return err
				}
				w.indexRoot = nb
			}
		} else if len(w.indexDirty) > 0 {
			changed = true
			if err := w.commitIndexTree(); err != nil {
				return err
			}
		}
		if !changed {
			break
		}
	}
	// Everything is placed; write the final contents.
	for i, bm := range w.bitmaps {
		if !bm.dirty {
			continue
		}
		buf, err := w.tm.Writable(w.index[i].Blocknr, BitmapValidator)
		if err != nil {
			return err
		}
		copy(buf[bitmapHeaderSize:], bm.cur[bitmapHeaderSize:])
	}
	if w.metadata && indexShadowed {
		buf, err := w.tm.Writable(w.indexRoot, IndexValidator)
		if err != nil {
			return err
		}
		clear(buf[metadataIndexHeaderSize:])
		for i, ie := range w.index {
			ie.Encode(metadataIndexEntry(buf, i))
		}
		clear(w.indexDirty)
	}
	return nil
}

func (w *Writable) commitOverflow() error {
	for _, b := range slices.Sorted(maps.Keys(w.overDirty)) {
		c := w.over[b]
		var err error
		if c >= 3 {
			var v [RefCountValueSize]byte
			EncodeRefCount(v[:], c)
			w.refRoot, _, err = btree.Insert(w.tm, w.refRoot, overflowVT, b, v[:])
		} else {
			w.refRoot, _, err = btree.Remove(w.tm, w.refRoot, overflowVT, b)
			delete(w.over, b)
		}
		if err != nil {
			return err
		}
		delete(w.overDirty, b)
	}
	return nil
}

func (w *Writable) commitIndexTree() error {
	for _, i := range slices.Sorted(maps.Keys(w.indexDirty)) {
		var v [IndexEntrySize]byte
		w.index[i].Encode(v[:])
		var err error
		if w.indexRoot, _, err = btree.Insert(w.tm, w.indexRoot, indexVT, uint64(i), v[:]); err != nil {
			return err
		}
		delete(w.indexDirty, i)
	}
	return nil
}

// EndTransaction records that the commit reached the disk: the current
// counts become the committed ones that allocation must respect. The
// metadata space map tells its manager which blocks the commit freed, for
// the views of earlier commits still open (transaction.Manager.Pin).
func (w *Writable) EndTransaction() {
	var freed []uint64
	for _, i := range slices.Sorted(maps.Keys(w.bitmaps)) {
		bm := w.bitmaps[i]
		if !bm.dirty {
			continue
		}
		base := uint64(i) * EntriesPerBitmap
		for wd := range EntriesPerBitmap / 32 {
			o, c := BitmapWord(bm.old, wd), BitmapWord(bm.cur, wd)
			gone := (o | o>>1) &^ (c | c>>1) & lowBits // in use then, free now
			for gone != 0 {
				j := uint64(bits.TrailingZeros64(gone)) / 2
				gone &= gone - 1
				freed = append(freed, base+32*uint64(wd)+j)
			}
		}
		switch {
		case isZeroBitmap(bm.cur): // never set: old is zeroBitmap too
		case isZeroBitmap(bm.old):
			bm.old = bytes.Clone(bm.cur)
		default:
			copy(bm.old, bm.cur)
		}
		bm.dirty = false
	}
	w.freeBoth += uint64(len(freed))
	if w.metadata {
		w.tm.RecordFreed(freed)
		// The blocks just freed count as free both now and then, though
		// the pins may hold some of them: count the pins again.
		w.pinKnown = false
	}
	w.newThisTx = 0
}

// isPinned reports whether b is pinned by an open view.
func (w *Writable) isPinned(b uint64) bool {
	pin := w.pinned[int(b/EntriesPerBitmap)]
	e := b % EntriesPerBitmap
	return pin != nil && pin[e/32]>>(2*(e%32))&1 != 0
}

// loadPins brings the pinned blocks up to date with the manager's.
func (w *Writable) loadPins() error {
	if !w.metadata || (w.pinKnown && w.pinGen == w.tm.PinGeneration()) {
		return nil
	}
	pinned := make(map[int][]uint64)
	w.pinGen = w.tm.PinnedBlocks(func(b uint64) {
		if b >= w.nrBlocks {
			return
		}
		i, e := int(b/EntriesPerBitmap), b%EntriesPerBitmap
		pin := pinned[i]
		if pin == nil {
			pin = make([]uint64, EntriesPerBitmap/32)
			pinned[i] = pin
		}
		pin[e/32] |= 1 << (2 * (e % 32))
	})
	var free uint64
	for i, pin := range pinned {
		bm, err := w.bitmap(i)
		if err != nil {
			return err
		}
		for wd, p := range pin {
			x := BitmapWord(bm.cur, wd) | BitmapWord(bm.old, wd)
			free += uint64(bits.OnesCount64(p &^ ((x | x>>1) & lowBits)))
		}
	}
	w.pinned, w.pinnedFree, w.pinKnown = pinned, free, true
	return nil
}

// Allocatable returns how many blocks NewBlock can still hand out in this
// transaction: blocks free now and at the last commit, less (for the
// metadata space map) those pinned by open views.
func (w *Writable) Allocatable() (uint64, error) {
	if err := w.loadPins(); err != nil {
		return 0, err
	}
	return w.freeBoth - w.pinnedFree, nil
}
