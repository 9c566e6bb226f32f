package thin

import "fmt"

// MapRange maps the count virtual blocks of device id from begin to newly
// allocated data blocks, as Map does for each (the message "map" of the
// CLI). A range that runs past 2^64 is refused before anything changes,
// with an error wrapping ErrRange; running out of data blocks fails with
// the blocks before it mapped (Abort discards them).
func (m *Metadata) MapRange(id, begin, count uint64) (err error) {
	defer m.ended(&err)
	if err := m.usable(); err != nil {
		return err
	}
	if _, err := BlockRange(begin, count); err != nil {
		return fmt.Errorf("device %d: %w", id, err)
	}
	if _, err := m.device(id); err != nil {
		return err
	}
	for i := range count { // begin+i does not wrap: checked above
		if _, err := m.Map(id, begin+i); err != nil {
			return err
		}
	}
	return nil
}

// checkUnmapRange refuses an unmap range whose end is before its start.
func checkUnmapRange(id, begin, end uint64) error {
	if end < begin {
		return fmt.Errorf("device %d: %w: unmap of [%d, %d) ends before it starts", id, ErrRange, begin, end)
	}
	return nil
}
