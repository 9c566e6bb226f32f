package thin

import (
	"bytes"
	"fmt"

	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// ReserveMetadataSnapshot takes a metadata snapshot (FORMAT.md §7.7) of
// the transaction in progress: a copy of the superblock that shares the
// mapping and details trees as they are now (with the changes made so
// far), recorded as the held root. Userspace tools can then read the
// snapshot while the pool changes.
//
// It is part of the transaction and commits nothing: the snapshot and
// the changes before and after it become durable together at the next
// Commit, or not at all (Abort discards them), so a batch of messages
// that reserves a snapshot stays one atomic commit. The snapshot holds
// what the kernel's reserve_metadata_snap would (the changes before the
// call, none after); the kernel also commits the changes before it at
// once, which a caller that wants that does with Commit first.
func (m *Metadata) ReserveMetadataSnapshot() (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	if m.heldRoot != 0 {
		return fmt.Errorf("%w (at block %d)", ErrSnapshotHeld, m.heldRoot)
	}
	// The details tree must say what the transaction says.
	if err := m.flushDetails(); err != nil {
		return err
	}
	b, buf, err := m.tm.New(superblock.Validator)
	if err != nil {
		return err
	}
	sb := m.currentSuperblock()
	sb.HeldRoot = 0
	// The copy shares the mapping and details trees, not the blob index,
	// which it does not hold a reference to.
	sb.BlobIndexRoot = 0
	sb.DataSpaceMapRoot = [superblock.SpaceMapRootSize]byte{}
	sb.MetadataSpaceMapRoot = [superblock.SpaceMapRootSize]byte{}
	sb.Encode(buf)
	for _, r := range []struct {
		what string
		b    uint64
	}{{"data mapping root", sb.DataMappingRoot}, {"device details root", sb.DeviceDetailsRoot}} {
		if err := m.msm.Inc(r.b); err != nil {
			return transaction.RefError(err, superblock.Location, "superblock", fmt.Sprintf("the %s, block %d", r.what, r.b))
		}
	}
	m.heldRoot = b
	// The trees are shared now: a device's path through the top level,
	// shadowed earlier in this transaction, must be shadowed again before
	// it is changed.
	for _, d := range m.devices {
		d.rootKnown = false
	}
	return m.tm.Checkpoint()
}

// heldSnapshot returns the superblock copy at the held root, which may
// have been made in this transaction.
func (m *Metadata) heldSnapshot() (*superblock.Superblock, error) {
	if !m.tm.IsShadow(m.heldRoot) {
		return superblock.Read(m.tm.Reader(), m.heldRoot, knownIncompat)
	}
	blk, err := m.tm.Read(m.heldRoot, superblock.Validator)
	if err != nil {
		return nil, err
	}
	sb := superblock.Decode(blk)
	return &sb, nil
}

// unformat makes sure no superblock is left on dev before a new pool is
// written over it: if block 0 is not all zeros it is zeroed and flushed,
// so that once blocks of the new pool overwrite those of an old one,
// nothing points at them (a crash then leaves no pool, never a damaged
// one). A device already zero at block 0 is not written.
func unformat(dev transaction.Device) error {
	off := int64(superblock.Location) * transaction.BlockSize
	buf := make([]byte, transaction.BlockSize)
	if _, err := dev.ReadAt(buf, off); err != nil {
		return &transaction.IOError{Block: superblock.Location, Op: "read", Err: err}
	}
	if !bytes.ContainsFunc(buf, func(r rune) bool { return r != 0 }) {
		return nil
	}
	clear(buf)
	if _, err := dev.WriteAt(buf, off); err != nil {
		return &transaction.IOError{Block: superblock.Location, Op: "write", Err: err}
	}
	if err := dev.Flush(); err != nil {
		return &transaction.IOError{Block: superblock.Location, Op: "flush", Err: err}
	}
	return nil
}
