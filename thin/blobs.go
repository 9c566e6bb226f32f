package thin

import (
	"fmt"
	"math"
)

// Variant returns the pool's format variant (Convert changes it).
func (m *Metadata) Variant() Variant { return variantOf(&m.sb) }

// BlobSize returns the size of each thin's blob (0 for a stock pool).
func (m *Metadata) BlobSize() int { return m.blobSize }

// NextID returns the id AllocateID would hand out next.
func (m *Metadata) NextID() uint64 { return m.nextID }

// NrThins returns the number of thins in an extended pool.
func (m *Metadata) NrThins() uint64 { return m.nrThins }

// AllocateID hands out a thin id that was never used in this pool, from a
// persistent counter committed with the transaction (extended pools only).
// A thin can be created with it until the transaction ends; ids handed out
// in a transaction that is aborted (or lost in a crash) may be handed out
// again, since no thin ever had them.
func (m *Metadata) AllocateID() (uint64, error) {
	if err := m.usable(); err != nil {
		return 0, err
	}
	if !m.sb.Extended() {
		return 0, fmt.Errorf("%w", ErrNotExtended)
	}
	id := m.nextID
	if id == math.MaxUint64 {
		return 0, fmt.Errorf("%w: every id has been handed out", ErrIDRange)
	}
	m.nextID++
	m.devices[id] = &devState{deleted: true, reserved: true}
	return id, nil
}

func (m *Metadata) checkBlob(blob []byte) error {
	if !m.sb.Extended() {
		return fmt.Errorf("%w", ErrNotExtended)
	}
	if len(blob) != m.blobSize {
		return fmt.Errorf("%w: a blob of %d bytes, where the pool's blobs have exactly %d", ErrBlobSize, len(blob), m.blobSize)
	}
	return nil
}

// CreateThinWithBlob creates an empty thin device with its blob, in the same
// transaction.
func (m *Metadata) CreateThinWithBlob(id uint64, blob []byte) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	if err := m.checkBlob(blob); err != nil {
		return err
	}
	if err := m.CreateThin(id); err != nil {
		return err
	}
	return m.SetBlob(id, blob)
}

// CreateSnapshotWithBlob creates thin id as a snapshot of origin with its
// own blob, in the same transaction.
func (m *Metadata) CreateSnapshotWithBlob(id, origin uint64, blob []byte) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	if err := m.checkBlob(blob); err != nil {
		return err
	}
	if err := m.CreateSnapshot(id, origin); err != nil {
		return err
	}
	return m.SetBlob(id, blob)
}

// Blob returns a copy of a thin's blob.
func (m *Metadata) Blob(id uint64) ([]byte, error) {
	if err := m.usable(); err != nil {
		return nil, err
	}
	if !m.sb.Extended() {
		return nil, fmt.Errorf("%w", ErrNotExtended)
	}
	d, err := m.device(id)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), d.blob...), nil
}

// SetBlob replaces a thin's blob (and its entry in the blob index).
func (m *Metadata) SetBlob(id uint64, blob []byte) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	if err := m.checkBlob(blob); err != nil {
		return err
	}
	d, err := m.device(id)
	if err != nil {
		return err
	}
	if string(d.blob) == string(blob) {
		return nil
	}
	oldKey, oldOK := m.key(d.blob)
	newKey, newOK := m.key(blob)
	if oldOK != newOK || oldKey != newKey || string(d.blob[:m.indexBytes]) != string(blob[:m.indexBytes]) {
		if err := m.indexRemove(id, d.blob); err != nil {
			return err
		}
		if err := m.indexAdd(id, blob); err != nil {
			return err
		}
	}
	d.blob = append([]byte(nil), blob...)
	d.changed = true
	return m.tm.Checkpoint()
}

// ClearBlob sets a thin's blob to zeros.
func (m *Metadata) ClearBlob(id uint64) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	return m.SetBlob(id, make([]byte, m.blobSize))
}
