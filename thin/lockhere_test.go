package thin_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/thin"
)

// A writer refused because this very process has the pool open to read
// was told the file was "locked by another process", sending the user to
// look for a process that does not exist. It is still ErrLocked (and
// ErrBusy), and says the reader is here; once the view is closed the
// writer opens.
func TestWriterRefusedByOwnReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta")
	md, err := thin.CreateMetadata(path, &thin.FormatOptions{NrDataBlocks: 16, Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	md.Close()
	p, err := thin.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = thin.OpenMetadata(path, nil)
	if !errors.Is(err, thin.ErrLocked) || !errors.Is(err, thin.ErrBusy) {
		t.Fatalf("OpenMetadata under this process's reader: %v, want ErrLocked", err)
	}
	if msg := err.Error(); strings.Contains(msg, "another process") || !strings.Contains(msg, "this process") {
		t.Errorf("message %q does not say the reader is in this process", msg)
	}
	p.Close()
	md, err = thin.OpenMetadata(path, nil)
	if err != nil {
		t.Fatalf("OpenMetadata after the reader closed: %v", err)
	}
	md.Close()
}
