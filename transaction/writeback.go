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
