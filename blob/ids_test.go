package blob_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin"
)

// A call that fails spends no id: NewThin with a blob too long and
// NewSnapshot of a missing origin (or with a blob too long) leave NextID,
// Count and the thins as they were, and the next thin gets the id the
// failed call would have had. (Before, both advanced NextID.)
func TestFailedCreatorsSpendNoID(t *testing.T) {
	dev := memdev.New(1 << 20)
	w, err := blob.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: 100, BlobSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	origin, err := w.NewThin([]byte("origin"))
	if err != nil || origin != 0 {
		t.Fatalf("first thin: %d, %v", origin, err)
	}
	long := bytes.Repeat([]byte{1}, 9)
	fails := []struct {
		name string
		call func() (uint64, error)
		want error
	}{
		{"NewThin, blob too long", func() (uint64, error) { return w.NewThin(long) }, thin.ErrBlobSize},
		{"NewSnapshot, missing origin", func() (uint64, error) { return w.NewSnapshot(7, nil) }, thin.ErrNoDevice},
		{"NewSnapshot, blob too long", func() (uint64, error) { return w.NewSnapshot(origin, long) }, thin.ErrBlobSize},
		{"CreateThin, id reused", func() (uint64, error) { return 0, w.CreateThin(origin, nil) }, thin.ErrIDReused},
		{"CreateSnapshot, missing origin", func() (uint64, error) { return 0, w.CreateSnapshot(1, 9, nil) }, thin.ErrNoDevice},
	}
	for _, f := range fails {
		if _, err := f.call(); !errors.Is(err, f.want) {
			t.Fatalf("%s: %v, want %v", f.name, err, f.want)
		}
		if w.NextID() != 1 || w.Count() != 1 {
			t.Fatalf("after %s: next id %d, %d thins; want 1, 1", f.name, w.NextID(), w.Count())
		}
	}
	if _, err := w.Thin(1); !errors.Is(err, thin.ErrNoDevice) {
		t.Fatalf("a failed call left thin 1: %v", err)
	}
	id, err := w.NewSnapshot(origin, []byte("snap"))
	if err != nil || id != 1 {
		t.Fatalf("the next snapshot: %d, %v; want id 1", id, err)
	}
}
