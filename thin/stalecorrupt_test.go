package thin_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// A reader that takes no lock (NewPool over a file) while a writer commits
// underneath it reads blocks that later commits reused. Those look damaged;
// the pool is not: such a read must fail with ErrStale, not report
// corruption (before, Devices said "unexpected value size" at a reused
// block, since the check of the superblock runs only every MiB read).
func TestStaleNotCorrupt(t *testing.T) {
	for _, extended := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "meta")
		opts := &thin.FormatOptions{NrDataBlocks: 1000, MetadataBlocks: 64, Size: 64 * 4096}
		if extended {
			opts.Variant, opts.BlobSize = thin.Extended, 16
		}
		md, err := thin.CreateMetadata(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		for id := range uint64(8) {
			create(t, md, extended, id)
		}
		if err := md.Commit(); err != nil {
			t.Fatal(err)
		}
		md.Close()

		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p, err := thin.NewPool(f, 64*4096)
		if err != nil {
			t.Fatal(err)
		}
		md, err = thin.OpenMetadata(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for c := range uint64(50) {
			create(t, md, extended, 1000+c)
			if err := md.MapRange(1000+c, 0, 3); err != nil {
				t.Fatal(err)
			}
			if c > 0 {
				if err := md.Delete(1000 + c - 1); err != nil {
					t.Fatal(err)
				}
			}
			if err := md.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		md.Close()

		reads := map[string]func() error{
			"Devices": func() error {
				for _, err := range p.Devices() {
					if err != nil {
						return err
					}
				}
				return nil
			},
			"Device": func() error { _, err := p.Device(3); return err },
			"Lookup": func() error { _, _, err := p.Lookup(1, 0); return err },
			"Mappings": func() error {
				for _, err := range p.Mappings(1, 0, 1<<20) {
					if err != nil {
						return err
					}
				}
				return nil
			},
		}
		if extended {
			bp, err := blob.FromView(p)
			if err != nil {
				t.Fatal(err)
			}
			reads["blob.Thins"] = func() error {
				for _, err := range bp.Thins() {
					if err != nil {
						return err
					}
				}
				return nil
			}
		}
		for name, read := range reads {
			err := read()
			var ce *transaction.CorruptError
			if errors.As(err, &ce) || (err != nil && !errors.Is(err, thin.ErrStale)) {
				t.Errorf("extended %v: %s of a pool committed underneath: %v, want ErrStale or nothing", extended, name, err)
			}
		}
		if err := p.Stale(); !errors.Is(err, thin.ErrStale) {
			t.Errorf("Stale: %v", err)
		}
	}
}

func create(t *testing.T, md *thin.Metadata, extended bool, id uint64) {
	t.Helper()
	var err error
	if extended {
		var next uint64
		for next, err = md.AllocateID(); err == nil && next < id; next, err = md.AllocateID() {
		}
		if err == nil {
			err = md.CreateThinWithBlob(id, make([]byte, 16))
		}
	} else {
		err = md.CreateThin(id)
	}
	if err != nil {
		t.Fatal(err)
	}
}
