package thin_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
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

// Opening a packed or compressed image for writing said "superblock at
// block 0: block number mismatch": the bytes of a pack read as a
// superblock. It is refused by name, and the file is left as it was.
func TestOpenMetadataPacked(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "plain")
	md, err := thin.CreateMetadata(img, &thin.FormatOptions{NrDataBlocks: 16, Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := md.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	md.Close()
	packed := filepath.Join(dir, "packed")
	tptest.MustRunGen(t, tptest.V110, "thin_metadata_pack", "-i", img, "-o", packed)
	compressed := img + ".lz4"
	if out, err := exec.Command("lz4", "-q", img, compressed).CombinedOutput(); err != nil {
		t.Fatalf("lz4: %v\n%s", err, out)
	}
	for _, path := range []string{packed, compressed} {
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for name, open := range map[string]func() error{
			"OpenMetadata": func() error { _, err := thin.OpenMetadata(path, nil); return err },
			"blob.OpenWriter": func() error {
				_, err := blob.OpenWriter(path, nil)
				return err
			},
		} {
			if err := open(); !errors.Is(err, thin.ErrPackedImage) {
				t.Errorf("%s(%s) = %v, want ErrPackedImage", name, filepath.Base(path), err)
			}
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Errorf("%s changed", path)
		}
		// Reading it is fine.
		p, err := thin.Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Device(1); err != nil {
			t.Error(err)
		}
		p.Close()
	}
}

// A metadata device too small to format, or smaller than the
// MetadataBlocks asked, was refused with an error no sentinel matched; a
// program sizing a device must be able to tell it from an I/O error.
func TestFormatTooSmall(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]func() error{
		"CreateMetadata of 2 blocks": func() error {
			_, err := thin.CreateMetadata(filepath.Join(dir, "a"), &thin.FormatOptions{Size: 2 * 4096})
			return err
		},
		"CreateMetadata of 64 blocks asking 100": func() error {
			_, err := thin.CreateMetadata(filepath.Join(dir, "b"), &thin.FormatOptions{Size: 64 * 4096, MetadataBlocks: 100})
			return err
		},
		"blob.Create of 8 blocks": func() error {
			_, err := blob.Create(filepath.Join(dir, "c"), &thin.FormatOptions{Size: 8 * 4096, Variant: thin.Extended, BlobSize: 8})
			return err
		},
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, thin.ErrMetadataTooSmall) {
			t.Errorf("%s: %v, want ErrMetadataTooSmall", name, err)
		}
	}
}

// An empty file said "block at block 0: block number beyond end of
// metadata device: device has 0 blocks". It is still a CorruptError of the
// superblock (ErrOutOfRange), and now says how short the input is.
func TestOpenTooShort(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 100, 4095} {
		path := filepath.Join(dir, "short")
		if err := os.WriteFile(path, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
		for name, open := range map[string]func() error{
			"Open": func() error { _, err := thin.Open(path, nil); return err },
			"NewPool": func() error {
				_, err := thin.NewPool(bytes.NewReader(make([]byte, n)), int64(n))
				return err
			},
		} {
			err := open()
			var ce *transaction.CorruptError
			if !errors.As(err, &ce) || ce.Block != 0 || ce.Kind != "superblock" || !errors.Is(err, transaction.ErrOutOfRange) {
				t.Errorf("%s of %d bytes: %v, want a CorruptError of the superblock", name, n, err)
				continue
			}
			if want := fmt.Sprintf("%d bytes", n); !strings.Contains(err.Error(), want) {
				t.Errorf("%s of %d bytes: %q does not say %q", name, n, err, want)
			}
		}
	}
}
