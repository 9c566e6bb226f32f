package thin

// CreateThinFromTree creates thin device id with a mapping tree the caller
// built in this transaction, bottom-up (btree.Builder over Manager, with
// values packed by PackBlockTime), instead of mapping its blocks one by
// one: the bulk path of a generator or a restore into an open pool. The
// tree's root reference is taken over; the caller must already hold one
// reference in DataSpaceMap for every mapped data block. mapped is the
// number of mappings in the tree (the device's mapped_blocks).
func (m *Metadata) CreateThinFromTree(id, root, mapped uint64) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	if err := m.vetNewID(id); err != nil {
		return err
	}
	// Extended pools: next id, thin count and a zero blob, as CreateThin.
	return m.addDevice(id, root, Details{MappedBlocks: mapped, TransactionID: m.transID,
		CreationTime: m.time, SnapshottedTime: m.time})
}
