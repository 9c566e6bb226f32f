package blob_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin"
)

// Each refusal of a size says what is wrong with it: a blob, key or
// identity too long (shorter ones are padded), an index wider than the
// blob, a blob size the format does not have.
func TestBlobSizeErrorsSayWhatIsWrong(t *testing.T) {
	dev := memdev.New(4 << 20)
	w, err := blob.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: 1000, BlobSize: 16, IndexBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.NewThin([]byte("short")); err != nil {
		t.Fatalf("a short blob is padded: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := w.Committed()
	if err != nil {
		t.Fatal(err)
	}
	findErr := func(key string) error {
		for _, err := range p.Find([]byte(key)) {
			return err
		}
		return nil
	}
	_, newErr := w.NewThin([]byte("seventeen bytes!!"))
	_, reconErr := p.Reconcile([]blob.Entry{{ID: 0, Identity: []byte("seventeen bytes!!")}})
	_, zeroErr := blob.Format(memdev.New(4<<20), 4<<20, &thin.FormatOptions{NrDataBlocks: 1000})
	_, wideErr := blob.Format(memdev.New(4<<20), 4<<20, &thin.FormatOptions{NrDataBlocks: 1000, BlobSize: 8, IndexBytes: 9})
	exact := w.Metadata().SetBlob(0, []byte("abc"))
	for _, tc := range []struct {
		what string
		err  error
		says []string
	}{
		{"a blob too long", newErr, []string{"17 bytes is longer than the pool's blobs (16 bytes"}},
		{"a key too long", findErr("a key of nine"), []string{"13 bytes is longer than the pool's key width (8 bytes)"}},
		{"an identity too long", reconErr, []string{"identity of thin 0, 17 bytes, is longer than the pool's blobs (16 bytes)"}},
		{"no blob size", zeroErr, []string{"blobs of 0 bytes", "1 to 1322"}},
		{"an index wider than the blob", wideErr, []string{"index of 9 bytes is wider than the 8-byte blobs"}},
		{"thin's exact size", exact, []string{"3 bytes, where the pool's blobs have exactly 16"}},
	} {
		if !errors.Is(tc.err, blob.ErrBlobSize) {
			t.Errorf("%s: %v, not ErrBlobSize", tc.what, tc.err)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(tc.err.Error(), s) {
				t.Errorf("%s: %q does not say %q", tc.what, tc.err, s)
			}
		}
		if strings.Contains(tc.err.Error(), "does not match") {
			t.Errorf("%s: %q", tc.what, tc.err)
		}
	}
}

// A pool with needs_check set is refused for writing with an error that
// names the device.
func TestNeedsCheckNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pool.img")
	w, err := blob.Create(path, &thin.FormatOptions{Size: 4 << 20, NrDataBlocks: 1000, BlobSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	w.Metadata().SetNeedsCheck(true)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	_, err1 := blob.OpenWriter(path, nil)
	_, err2 := thin.OpenMetadata(path, nil)
	for _, err := range []error{err1, err2} {
		if !errors.Is(err, thin.ErrNeedsCheck) || !strings.Contains(err.Error(), path) {
			t.Errorf("%v: not ErrNeedsCheck naming %s", err, path)
		}
	}
	if w, err := blob.OpenWriter(path, &thin.WriteOptions{Force: true}); err != nil {
		t.Errorf("forced: %v", err)
	} else {
		w.Close()
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

// The Writer says how many metadata blocks its transaction has left, as
// its thin.Metadata does; creating a thin takes some.
func TestWriterFreeMetadataBlocks(t *testing.T) {
	dev := memdev.New(4 << 20)
	w, err := blob.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: 1000, BlobSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	before, err := w.FreeMetadataBlocks()
	if err != nil || before == 0 || before >= 1024 {
		t.Fatalf("%d free of 1024, %v", before, err)
	}
	if _, err := w.NewThin([]byte("a")); err != nil {
		t.Fatal(err)
	}
	after, err := w.FreeMetadataBlocks()
	md, _ := w.Metadata().FreeMetadataBlocks()
	if err != nil || after >= before || after != md {
		t.Fatalf("free %d before a new thin, %d after (the Metadata says %d): %v", before, after, md, err)
	}
}
