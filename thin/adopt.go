package thin

import (
	"fmt"

	"github.com/thinmeta/thinmeta/btree"
)

// CreateThinFromTree creates thin device id with a mapping tree the caller
// built in this transaction, bottom-up (btree.Builder over Manager, with
// values packed by PackBlockTime), instead of mapping its blocks one by
// one: the bulk path of a generator or a restore into an open pool. The
// tree's root reference is taken over; the caller must already hold one
// reference in DataSpaceMap for every mapped data block. mapped is the
// number of mappings in the tree (the device's mapped_blocks).
func (m *Metadata) CreateThinFromTree(id, root, mapped uint64) error {
	if err := m.checkID(id); err != nil {
		return err
	}
	if ok, err := m.exists(id); err != nil || ok {
		if ok {
			err = fmt.Errorf("thinmeta: device %d: %w", id, ErrExists)
		}
		return err
	}
	var err error
	if m.mappingRoot, _, err = btree.Insert(m.tm, m.mappingRoot, m.topVT, id, u64(root)); err != nil {
		return err
	}
	d := &devState{Details: Details{MappedBlocks: mapped, TransactionID: m.transID,
		CreationTime: m.time, SnapshottedTime: m.time}, changed: true}
	m.devices[id] = d
	// Extended pools: next id, thin count and a zero blob, as CreateThin.
	if err := m.created(id, d); err != nil {
		return err
	}
	return m.tm.Checkpoint()
}
