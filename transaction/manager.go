package transaction

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
)

// SpaceMap is what the transaction manager needs of the metadata space map.
// Package spacemap implements it; the manager is created first and the space
// map attached with SetSpaceMap, because the space map is itself stored in
// blocks the manager manages.
type SpaceMap interface {
	// NewBlock allocates a block that is free now and was free at the
	// last commit, and gives it a count of one.
	NewBlock() (uint64, error)
	// Inc and Dec add or drop one reference to block b.
	Inc(b uint64) error
	Dec(b uint64) error
	// Count returns b's reference count.
	Count(b uint64) (uint32, error)
}

// ErrReadOnly means a write was attempted through a manager without a
// space map.
var ErrReadOnly = errors.New("transaction manager is read-only")

// ErrFailed means a write was attempted after an earlier one of the same
// transaction failed half-way (see Manager): only Abort goes on from
// there. The error wraps the first failure too.
var ErrFailed = errors.New("the transaction failed earlier; abort it")

// ManagerCacheBlocks is the size of a Manager's cache of committed blocks
// (32 MiB): a writer revisits the nodes it committed in the last
// transaction, so it keeps more than a reader.
const ManagerCacheBlocks = 8192

// DefaultDirtyLimit is how many modified blocks a Manager keeps in memory
// before writing them out early (64 MiB). Early write-back is safe: no
// committed structure points at those blocks.
const DefaultDirtyLimit = 16384

// Manager runs transactions on a metadata device, as the kernel's
// transaction manager does (FORMAT.md §4.4, §6): every change goes to a
// block allocated in this transaction — a new block or a shadow (copy) of a
// committed one — so no block the committed superblock can reach is ever
// overwritten; the superblock, block 0, is written last, after a flush.
//
// A Manager also implements the read interface of package btree, and sees
// the blocks modified in the current transaction.
//
// A change that fails half-way ends the transaction: once New or Shadow
// fails (the space map is full, the block to shadow is damaged or its
// count unreadable) or a block cannot be written, the blocks of the
// transaction may hold half of a change, so every later New and Shadow
// (hence every change and commit above) fails with ErrFailed, wrapping
// the first failure, until Abort.
//
// A Manager is not safe for concurrent use, except Pin and Changes,
// which any goroutine may call.
type Manager struct {
	dev Device
	r   *Reader
	sm  SpaceMap

	// shadows holds every block allocated or shadowed in this
	// transaction: those may be modified in place. Its value is the block
	// of the last commit that the block copies (0: none, a new block).
	shadows map[uint64]uint64
	dirty   map[uint64]*dirtyBlock
	limit   int
	failed  error

	pins *pinSet
	// spare holds buffers of blocks WriteBackReuse wrote out, for New.
	spare   [][]byte
	changes atomic.Uint64 // counts changes to the blocks of the transaction
	writes  uint64        // blocks written to the device
	// joined is writeDirty's buffer for a run of blocks on a device that
	// cannot write a vector, kept for the next write-back.
	joined []byte
}

type dirtyBlock struct {
	data []byte
	v    *Validator
}

// NewManager returns a manager over the first size bytes of dev, with no
// space map yet (it can only read until SetSpaceMap).
func NewManager(dev Device, size int64) *Manager {
	r := NewReader(dev, size)
	r.SetCacheBlocks(ManagerCacheBlocks)
	return &Manager{
		dev:     dev,
		r:       r,
		shadows: make(map[uint64]uint64),
		dirty:   make(map[uint64]*dirtyBlock),
		limit:   DefaultDirtyLimit,
		pins:    newPinSet(),
	}
}

// BlocksWritten returns the number of blocks written to the device, for
// statistics.
func (m *Manager) BlocksWritten() uint64 { return m.writes }

// SetSpaceMap attaches the metadata space map.
func (m *Manager) SetSpaceMap(sm SpaceMap) { m.sm = sm }

// SpaceMap returns the attached space map.
func (m *Manager) SpaceMap() SpaceMap { return m.sm }

// SetDirtyLimit sets how many modified blocks are kept in memory.
func (m *Manager) SetDirtyLimit(n int) { m.limit = max(n, 1) }

// Reader returns the reader of committed blocks underneath the manager.
func (m *Manager) Reader() *Reader { return m.r }

// NrBlocks returns the number of blocks on the device.
func (m *Manager) NrBlocks() uint64 { return m.r.NrBlocks() }

// Read returns block b validated with v, including changes made in this
// transaction. The slice must not be modified.
func (m *Manager) Read(b uint64, v *Validator) ([]byte, error) {
	if d, ok := m.dirty[b]; ok {
		if d.v != v {
			return nil, Corruptf(b, v.Kind, ErrValidatorMismatch, "already in use as %s", d.v.Kind)
		}
		return d.data, nil
	}
	return m.r.Read(b, v)
}

// ReadInto reads block b into buf and validates it with v, including
// changes made in this transaction.
func (m *Manager) ReadInto(b uint64, buf []byte, v *Validator) error {
	if d, ok := m.dirty[b]; ok {
		if d.v != v {
			return Corruptf(b, v.Kind, ErrValidatorMismatch, "already in use as %s", d.v.Kind)
		}
		copy(buf, d.data)
		return nil
	}
	return m.r.ReadInto(b, buf, v)
}

// IsShadow reports whether b was allocated or shadowed in this transaction.
func (m *Manager) IsShadow(b uint64) bool {
	_, ok := m.shadows[b]
	return ok
}

// Origin returns the block of the last commit that block b holds a copy
// of: b itself if b is not a block of this transaction, the block b
// shadows (or, for the shadow of a shadow, that block's origin), or 0 if
// b was allocated new (New). An error about what a shadow holds names its
// origin: that is the block on the device that holds it.
func (m *Manager) Origin(b uint64) uint64 {
	if o, ok := m.shadows[b]; ok {
		return o
	}
	return b
}

func (m *Manager) writable() error {
	if m.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, m.failed)
	}
	if m.sm == nil {
		return ErrReadOnly
	}
	return nil
}

// New allocates a block, zeroed, for writing as kind v. The returned buffer
// may be modified until the transaction commits.
func (m *Manager) New(v *Validator) (uint64, []byte, error) {
	if err := m.writable(); err != nil {
		return 0, nil, err
	}
	m.changes.Add(1)
	b, err := m.sm.NewBlock()
	if err != nil {
		return 0, nil, m.fail(err)
	}
	if b == 0 || b >= m.r.NrBlocks() {
		return 0, nil, m.fail(m.beyond(b, v))
	}
	var buf []byte
	if n := len(m.spare); n > 0 {
		buf = m.spare[n-1]
		m.spare = m.spare[:n-1]
		clear(buf)
	} else {
		buf = make([]byte, BlockSize)
	}
	m.shadows[b] = 0
	m.r.Drop(b)
	if err := m.put(b, buf, v); err != nil {
		return 0, nil, err
	}
	return b, buf, nil
}

// Shadow returns a writable copy of block b (read as kind v): b itself if
// it was allocated in this transaction and is not shared, otherwise a new
// block holding a copy of b, whose reference to b is dropped. shared
// reports that b had other references (a count above one): then the caller
// must add a reference to everything the copy points at, since both b and
// the copy now do (FORMAT.md §4.4).
func (m *Manager) Shadow(b uint64, v *Validator) (nb uint64, buf []byte, shared bool, err error) {
	if err := m.writable(); err != nil {
		return 0, nil, false, err
	}
	if b >= m.r.NrBlocks() {
		return 0, nil, false, m.fail(Corruptf(b, v.Kind, ErrOutOfRange, "shadowing a block beyond the %d-block device", m.r.NrBlocks()))
	}
	c, err := m.sm.Count(b)
	if err != nil {
		var ce *CorruptError
		var ioe *IOError
		if !errors.As(err, &ce) && !errors.As(err, &ioe) {
			// The block is on the device but not in the space map.
			err = Corruptf(b, v.Kind, ErrOutOfRange, "shadowing a block the metadata space map does not count: %v", err)
		}
		return 0, nil, false, m.fail(err)
	}
	if c == 0 {
		return 0, nil, false, m.fail(Corruptf(b, v.Kind, ErrCorrupt, "shadowing a block with no references"))
	}
	m.changes.Add(1)
	shared = c > 1
	if _, ok := m.shadows[b]; ok && !shared {
		buf, err := m.writableCopy(b, v)
		return b, buf, false, m.fail(err)
	}
	data, err := m.shadowData(b, v, shared)
	if err != nil {
		return 0, nil, false, m.fail(err)
	}
	nb, err = m.sm.NewBlock()
	if err != nil {
		return 0, nil, false, m.fail(err)
	}
	if nb == 0 || nb >= m.r.NrBlocks() {
		return 0, nil, false, m.fail(m.beyond(nb, v))
	}
	if err := m.sm.Dec(b); err != nil {
		return 0, nil, false, m.fail(err)
	}
	m.shadows[nb] = m.Origin(b)
	m.r.Drop(nb)
	if err := m.put(nb, data, v); err != nil {
		return 0, nil, false, err
	}
	return nb, data, shared, nil
}

// beyond is the error of a metadata space map that handed out block b
// where no block of a transaction can go: beyond the end of the device
// (the map is larger than the device: a damaged superblock or space map
// root, or a device cut short), or block 0, where CommitSuperblock writes
// the superblock (a map that counts it free is damaged, and a node put
// there would be overwritten by the commit).
func (m *Manager) beyond(b uint64, v *Validator) error {
	if b == 0 {
		return Corruptf(b, v.Kind, ErrCorrupt, "the metadata space map allocated block 0, the superblock's")
	}
	return Corruptf(b, v.Kind, ErrOutOfRange, "the metadata space map allocated it on a %d-block device", m.r.NrBlocks())
}

// shadowData returns a private copy of block b for its shadow. A block
// whose only reference is being dropped gives up its cached buffer instead
// of being copied; otherwise the copy comes from the transaction's buffer,
// the cache, or the device (read straight into the new buffer).
func (m *Manager) shadowData(b uint64, v *Validator, shared bool) ([]byte, error) {
	if d, ok := m.dirty[b]; ok {
		if d.v != v {
			return nil, Corruptf(b, v.Kind, ErrValidatorMismatch, "already in use as %s", d.v.Kind)
		}
		return bytes.Clone(d.data), nil
	}
	if !shared {
		if data := m.r.take(b, v); data != nil {
			return data, nil
		}
	} else if orig := m.r.peek(b, v); orig != nil {
		return bytes.Clone(orig), nil
	}
	data := make([]byte, BlockSize)
	if err := m.r.ReadInto(b, data, v); err != nil {
		return nil, err
	}
	return data, nil
}

// writableCopy returns the in-memory buffer of a block of this transaction,
// reading it back if it was written out early.
func (m *Manager) writableCopy(b uint64, v *Validator) ([]byte, error) {
	if d, ok := m.dirty[b]; ok {
		if d.v != v {
			return nil, Corruptf(b, v.Kind, ErrValidatorMismatch, "already in use as %s", d.v.Kind)
		}
		return d.data, nil
	}
	buf := make([]byte, BlockSize)
	if err := m.r.ReadInto(b, buf, v); err != nil {
		return nil, err
	}
	m.r.Drop(b)
	return buf, m.put(b, buf, v)
}

// Writable returns the buffer of block b, which must have been allocated or
// shadowed in this transaction, for further changes.
func (m *Manager) Writable(b uint64, v *Validator) ([]byte, error) {
	if _, ok := m.shadows[b]; !ok {
		return nil, fmt.Errorf("block %d is not a shadow of this transaction", b)
	}
	m.changes.Add(1)
	return m.writableCopy(b, v)
}

func (m *Manager) put(b uint64, data []byte, v *Validator) error {
	m.dirty[b] = &dirtyBlock{data: data, v: v}
	return nil
}

// Checkpoint writes the modified blocks out early if more than the dirty
// limit are held in memory. They stay shadows of this transaction; later
// changes read them back. Buffers returned by New, Shadow and Writable are
// invalid after a checkpoint, so callers checkpoint only between whole
// operations.
func (m *Manager) Checkpoint() error {
	if len(m.dirty) <= m.limit {
		return nil
	}
	for b, d := range m.dirty {
		if err := m.write(b, d); err != nil {
			return err
		}
		delete(m.dirty, b)
	}
	return nil
}

// maxRun is the most blocks written with one call (1 MiB).
const maxRun = 256

// writeDirty writes every dirty block, in block order, coalescing runs of
// consecutive blocks into single writes, and keeps each written block in
// the read cache: it is what the next transaction will find on disk.
func (m *Manager) writeDirty() error {
	blocks := make([]uint64, 0, len(m.dirty))
	for b := range m.dirty {
		blocks = append(blocks, b)
	}
	slices.Sort(blocks)
	m.changes.Add(1)
	vw, vector := m.dev.(VectorWriter)
	var bufs [][]byte
	for i := 0; i < len(blocks); {
		j := i + 1
		for j < len(blocks) && j-i < maxRun && blocks[j] == blocks[j-1]+1 {
			j++
		}
		bufs = bufs[:0]
		for _, b := range blocks[i:j] {
			d := m.dirty[b]
			d.v.Prepare(d.data, b)
			bufs = append(bufs, d.data)
		}
		off := int64(blocks[i]) * BlockSize
		var err error
		switch {
		case len(bufs) == 1:
			_, err = m.dev.WriteAt(bufs[0], off)
		case vector:
			err = vw.WriteVAt(bufs, off)
		default:
			buf := m.joined[:0]
			for _, d := range bufs {
				buf = append(buf, d...)
			}
			m.joined = buf
			_, err = m.dev.WriteAt(buf, off)
		}
		if err != nil {
			m.failed = &IOError{Block: blocks[i], Op: "write", Err: err}
			return m.failed
		}
		m.writes += uint64(j - i)
		for _, b := range blocks[i:j] {
			d := m.dirty[b]
			m.r.insert(b, d.data, d.v)
		}
		i = j
	}
	return nil
}

func (m *Manager) write(b uint64, d *dirtyBlock) error {
	m.changes.Add(1)
	d.v.Prepare(d.data, b)
	if _, err := m.dev.WriteAt(d.data, int64(b)*BlockSize); err != nil {
		m.failed = &IOError{Block: b, Op: "write", Err: err}
		return m.failed
	}
	m.writes++
	return nil
}

// Flush writes every block changed in this transaction and flushes the
// device: the first phase of a commit. The space maps must have been
// committed (their blocks are among those written).
func (m *Manager) Flush() error {
	if err := m.writable(); err != nil {
		return err
	}
	if err := m.writeDirty(); err != nil {
		return err
	}
	clear(m.dirty)
	if err := m.dev.Flush(); err != nil {
		m.failed = &IOError{Block: 0, Op: "flush", Err: err}
		return m.failed
	}
	return nil
}

// CommitSuperblock writes the superblock block (already encoded, and sealed
// by v.Prepare here) at block 0 and flushes: the second phase of a commit.
// After it the transaction is over and a new one begins.
func (m *Manager) CommitSuperblock(block []byte, v *Validator) error {
	if err := m.writable(); err != nil {
		return err
	}
	if len(m.dirty) != 0 {
		return errors.New("superblock commit with unwritten blocks (Flush first)")
	}
	if err := m.write(0, &dirtyBlock{data: block, v: v}); err != nil {
		return err
	}
	m.r.Drop(0)
	if err := m.dev.Flush(); err != nil {
		m.failed = &IOError{Block: 0, Op: "flush", Err: err}
		return m.failed
	}
	clear(m.shadows)
	m.pins.committed()
	return nil
}

// Abort forgets every change of this transaction. Blocks written out early
// are unreachable from the committed superblock and simply become garbage.
// The caller must also reopen its space maps from the committed roots.
func (m *Manager) Abort() {
	m.changes.Add(1)
	for b := range m.shadows {
		m.r.Drop(b)
	}
	clear(m.dirty)
	clear(m.shadows)
	m.failed = nil
}

// Failed returns the error that made the manager refuse further writes, if
// any (see Manager). Abort clears it.
func (m *Manager) Failed() error { return m.failed }

// Fail records err, if not nil and if no failure is recorded yet, as the
// failure that ends the transaction, and returns err. A layer above calls
// it when a change of its own stopped half-way for a reason the manager did
// not see (damage found in a block it read, a reference count it could not
// drop): further New, Shadow, Flush and CommitSuperblock calls fail with
// ErrFailed until Abort. An err that wraps the failure recorded (the same
// failure, as a caller further up describes it: which block held the
// reference, say) replaces it.
func (m *Manager) Fail(err error) error { return m.fail(err) }

// fail records err, if not nil, as the failure that ends the transaction:
// further writes are refused with ErrFailed until Abort.
func (m *Manager) fail(err error) error {
	if err != nil && (m.failed == nil || err != m.failed && errors.Is(err, m.failed)) {
		m.failed = err
	}
	return err
}

// Changes returns a counter that moves whenever a block of the transaction
// may change: a block allocated, shadowed or handed out for writing,
// blocks written, the superblock committed, the transaction aborted. A
// reader of the transaction in progress (Overlay) stays right while it
// does not move.
func (m *Manager) Changes() uint64 { return m.changes.Load() }

// Overlay returns the device as the transaction in progress has it: the
// blocks modified in memory (sealed with their validators, as they will be
// written) over the device's contents. It is right only while Changes does
// not move, and must not be used concurrently with changes to the
// transaction.
func (m *Manager) Overlay() io.ReaderAt { return overlay{m} }

type overlay struct{ m *Manager }

// ReadAt reads the device, then replaces what p holds of every block the
// transaction modified in memory.
func (o overlay) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.m.dev.ReadAt(p, off)
	if off < 0 || len(p) == 0 {
		return n, err
	}
	first, last := uint64(off)/BlockSize, uint64(off+int64(len(p))-1)/BlockSize
	if uint64(len(o.m.dirty)) < last-first+1 {
		for b, d := range o.m.dirty {
			if b >= first && b <= last {
				n = o.put(p, off, n, b, d)
			}
		}
	} else {
		for b := first; b <= last; b++ {
			if d, ok := o.m.dirty[b]; ok {
				n = o.put(p, off, n, b, d)
			}
		}
	}
	if n == len(p) {
		err = nil
	}
	return n, err
}

// put copies the sealed contents of dirty block b into the part of p
// (read at off, n bytes so far) that it covers, and returns the new count
// of bytes valid from the start of p.
func (o overlay) put(p []byte, off int64, n int, b uint64, d *dirtyBlock) int {
	blk := bytes.Clone(d.data)
	d.v.Prepare(blk, b)
	start := int64(b) * BlockSize
	lo, hi := max(start, off), min(start+BlockSize, off+int64(len(p)))
	copy(p[lo-off:hi-off], blk[lo-start:hi-start])
	if int(lo-off) <= n {
		n = max(n, int(hi-off))
	}
	return n
}
