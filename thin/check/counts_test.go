package check

import "testing"

// fromDisk swaps the two bits of every entry: on disk the lower bit of a
// pair is the count's high bit.
func TestFromDisk(t *testing.T) {
	for j := range 32 {
		for v := range uint64(4) {
			disk := (v>>1 | (v&1)<<1) << (2 * j)
			if got := fromDisk(disk); got != v<<(2*j) {
				t.Fatalf("entry %d value %d: fromDisk(%x) = %x", j, v, disk, got)
			}
		}
	}
}
