package transaction

// DirtyBlocks returns how many modified blocks the manager holds in memory.
func (m *Manager) DirtyBlocks() int { return len(m.dirty) }

// WriteBack writes every modified block out now, whatever the dirty limit:
// in block order, runs of consecutive blocks coalesced into single writes,
// as Flush writes them but without flushing the device. The blocks stay
// shadows of this transaction. Like Checkpoint, it invalidates the buffers
// returned by New, Shadow and Writable. Bulk writers (restore) call it at
// their own pace after raising the dirty limit.
func (m *Manager) WriteBack() error {
	if err := m.writable(); err != nil {
		return err
	}
	if err := m.writeDirty(); err != nil {
		return err
	}
	clear(m.dirty)
	return nil
}

// WriteBackReuse is WriteBack for a bulk writer that holds no buffer of a
// modified block past it (restore, between whole bitmaps of the data
// space map): the buffers written out are kept, and later calls of New
// return them (zeroed) instead of allocating, so that writing a large
// pool makes no garbage of them. A reader that caches blocks keeps the
// written buffers as its cache entries; then they are not reused.
func (m *Manager) WriteBackReuse() error {
	if err := m.writable(); err != nil {
		return err
	}
	if err := m.writeDirty(); err != nil {
		return err
	}
	if !m.r.caches() {
		for _, d := range m.dirty {
			m.spare = append(m.spare, d.data)
		}
	}
	clear(m.dirty)
	return nil
}
