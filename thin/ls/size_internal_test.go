package ls

import "testing"

// The sizes thin_ls 0.9.0 prints for MAPPED, EXCLUSIVE and SHARED (its
// human-readable column format).
func TestFormatSize(t *testing.T) {
	for _, c := range []struct {
		sectors uint64
		want    string
	}{
		{0, "0"}, {16, "8192"}, {128, "64KiB"}, {2048 * 1024, "1024MiB"}, {16 << 30, "8192GiB"},
	} {
		if got := formatSize(c.sectors); got != c.want {
			t.Errorf("formatSize(%d) = %q, want %q", c.sectors, got, c.want)
		}
	}
}
