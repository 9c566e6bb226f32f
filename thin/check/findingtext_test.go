package check_test

import (
	"context"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin/check"
)

// A finding says its area once: a damaged superblock is "superblock at
// block 0: ...", not "superblock: superblock at block 0: ...".
func TestFindingSaysAreaOnce(t *testing.T) {
	for name, fill := range map[string]byte{"zeros": 0, "garbage": 0x5a} {
		dev := memdev.New(64 * 4096)
		for i := range dev.Bytes() {
			dev.Bytes()[i] = fill
		}
		var got []string
		check.Device(context.Background(), dev, dev.Size(), check.Options{}, func(f check.Finding) { got = append(got, f.String()) })
		if len(got) == 0 {
			t.Fatalf("%s: no findings", name)
		}
		for _, s := range got {
			if w, _, _ := strings.Cut(s, ": "); strings.HasPrefix(strings.TrimPrefix(s, w+": "), w+" ") {
				t.Errorf("%s: %q says %q twice", name, s, w)
			}
			if !strings.HasPrefix(s, "superblock") {
				t.Errorf("%s: %q does not name the superblock", name, s)
			}
		}
	}
}
