package check

import "github.com/thinmeta/thinmeta/internal/refcount"

// The references the check finds are counted in a refcount.Counts per
// space map, c.meta and c.data: a bit a block, one more in the groups
// where a count reaches 2 and two more where one reaches 4.

// releaseCounts frees the checker's counts once the check is over (the
// data counter has ended).
func (c *checker) releaseCounts() {
	for _, k := range []**refcount.Counts{&c.meta, &c.data} {
		if *k != nil {
			(*k).Free()
			*k = nil
		}
	}
}

const lowBits = 0x5555555555555555 // the low bit of each two-bit entry

// fromDisk converts a bitmap word in on-disk order (the lower bit of each
// pair is the high bit of the count) to natural order.
func fromDisk(w uint64) uint64 { return (w&lowBits)<<1 | (w>>1)&lowBits }
