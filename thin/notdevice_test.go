package thin_test

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/thin"
)

// A program outside the module must be able to tell "not a file or block
// device" from other failures: the sentinel lives in an internal package,
// so thin exports it. A FIFO must be refused without blocking.
func TestOpenNotDevice(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	opens := map[string]func(string) error{
		"Open": func(p string) error { _, err := thin.Open(p, nil); return err },
		"OpenImage": func(p string) error {
			_, err := thin.OpenImage(p, nil)
			return err
		},
		"OpenMetadata": func(p string) error { _, err := thin.OpenMetadata(p, nil); return err },
		"CreateMetadata": func(p string) error {
			_, err := thin.CreateMetadata(p, &thin.FormatOptions{NrDataBlocks: 16})
			return err
		},
		"blob.Open": func(p string) error { _, err := blob.Open(p, nil); return err },
	}
	for name, open := range opens {
		for _, p := range []string{fifo, dir} {
			if err := open(p); !errors.Is(err, thin.ErrNotDevice) {
				t.Errorf("%s(%s) = %v, want ErrNotDevice", name, filepath.Base(p), err)
			}
		}
	}
}
