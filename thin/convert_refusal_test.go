package thin_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

// A conversion refused for what it was asked (an id the stock format
// cannot hold, a renumbering onto a used id or of a thin that does not
// exist) changes nothing, as Metadata documents for every refusal: the
// transaction goes on, and committing it keeps the pool as it was, blobs
// and index included, checking clean.
func TestConvertRefusedChangesNothing(t *testing.T) {
	const far = 1<<24 + 5 // beyond the stock format's ids
	cases := []struct {
		name string
		opts thin.ConvertOptions
		want error
	}{
		{"stock-id-range", thin.ConvertOptions{Variant: thin.Stock}, thin.ErrIDRange},
		{"renumber-beyond-stock", thin.ConvertOptions{Variant: thin.Stock, NewIDs: map[uint64]uint64{far: 2, 1: 1 << 30}}, thin.ErrIDRange},
		{"renumber-onto-used", thin.ConvertOptions{Variant: thin.Extended, BlobSize: 8, IndexBytes: 4, NewIDs: map[uint64]uint64{far: 1}}, thin.ErrExists},
		{"renumber-two-onto-one", thin.ConvertOptions{Variant: thin.Extended, BlobSize: 8, NewIDs: map[uint64]uint64{far: 9, 1: 9}}, thin.ErrExists},
		{"renumber-missing", thin.ConvertOptions{Variant: thin.Extended, BlobSize: 8, NewIDs: map[uint64]uint64{4: 9}}, thin.ErrNoDevice},
		// The next id would wrap around to 0 (found by FuzzWrite: the
		// pool then failed its check).
		{"renumber-to-max", thin.ConvertOptions{Variant: thin.Extended, BlobSize: 8, NewIDs: map[uint64]uint64{1: math.MaxUint64}}, thin.ErrIDRange},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			size := int64(512 * 4096)
			dev := memdev.New(size)
			md, err := thin.Format(dev, size, &thin.FormatOptions{NrDataBlocks: 1000, Variant: thin.Extended, BlobSize: 16, IndexBytes: 4})
			if err != nil {
				t.Fatal(err)
			}
			defer md.Close()
			blobs := map[uint64][]byte{1: []byte("aaaa-first-blob!"), far: []byte("bbbb-second-blob")}
			for _, id := range []uint64{1, far} {
				if err := md.CreateThinWithBlob(id, blobs[id]); err != nil {
					t.Fatal(err)
				}
				if err := md.MapRange(id, 0, 40); err != nil {
					t.Fatal(err)
				}
			}
			if err := md.Commit(); err != nil {
				t.Fatal(err)
			}
			free, _ := md.FreeMetadataBlocks()
			if err := md.Convert(c.opts); !errors.Is(err, c.want) {
				t.Fatalf("Convert(%+v): %v, want %v", c.opts, err, c.want)
			}
			if got, _ := md.FreeMetadataBlocks(); got != free {
				t.Errorf("free metadata blocks %d after the refusal, %d before", got, free)
			}
			if err := md.Commit(); err != nil {
				t.Fatalf("commit after the refusal: %v", err)
			}
			p := committedClean(t, md, "the refusal")
			for id, b := range blobs {
				n := 0
				for d, err := range p.FindByKey(b[:4]) {
					if err != nil {
						t.Fatal(err)
					}
					if d.ID != id {
						t.Errorf("index key %q finds thin %d, want %d", b[:4], d.ID, id)
					}
					n++
				}
				if n != 1 {
					t.Errorf("index key %q finds %d thins, want 1", b[:4], n)
				}
			}
		})
	}
}

// Abort after a conversion returns to the committed format in every
// respect: details written afterwards have the committed size. (The
// details' value type kept the converted blob size, so the next commit
// after a change panicked in btree.Insert; found by FuzzWrite.)
func TestConvertAbort(t *testing.T) {
	for _, c := range []struct {
		name string
		from thin.FormatOptions
		to   thin.ConvertOptions
	}{
		{"stock-to-extended", thin.FormatOptions{NrDataBlocks: 1000},
			thin.ConvertOptions{Variant: thin.Extended, BlobSize: 106, IndexBytes: 34}},
		{"extended-to-stock", thin.FormatOptions{NrDataBlocks: 1000, Variant: thin.Extended, BlobSize: 16, IndexBytes: 4},
			thin.ConvertOptions{Variant: thin.Stock}},
		{"extended-resized", thin.FormatOptions{NrDataBlocks: 1000, Variant: thin.Extended, BlobSize: 16},
			thin.ConvertOptions{Variant: thin.Extended, BlobSize: 40}},
	} {
		t.Run(c.name, func(t *testing.T) {
			size := int64(512 * 4096)
			dev := memdev.New(size)
			md, err := thin.Format(dev, size, &c.from)
			if err != nil {
				t.Fatal(err)
			}
			defer md.Close()
			if err := md.CreateThin(1); err != nil {
				t.Fatal(err)
			}
			if err := md.MapRange(1, 0, 40); err != nil {
				t.Fatal(err)
			}
			if err := md.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := md.Convert(c.to); err != nil {
				t.Fatal(err)
			}
			if err := md.Abort(); err != nil {
				t.Fatal(err)
			}
			if got := md.BlobSize(); got != int(c.from.BlobSize) {
				t.Fatalf("blob size %d after the abort, %d committed", got, c.from.BlobSize)
			}
			if err := md.MapRange(1, 100, 3); err != nil {
				t.Fatal(err)
			}
			if err := md.CreateThin(2); err != nil {
				t.Fatal(err)
			}
			if err := md.Commit(); err != nil {
				t.Fatal(err)
			}
			committedClean(t, md, "the abort")
			if d, err := md.Details(1); err != nil || d.MappedBlocks != 43 {
				t.Fatalf("device 1 after the abort: %+v, %v", d, err)
			}
			if c.from.Variant != thin.Extended {
				// A stock pool: both thin_check generations judge it too
				// (they refuse extended ones by design).
				img := filepath.Join(t.TempDir(), "meta")
				if err := os.WriteFile(img, dev.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				tptest.CheckClean(t, img)
			}
		})
	}
}

// committedClean returns the view of md's last commit, closed when the test
// ends, after checking that it checks clean.
func committedClean(t *testing.T, md *thin.Metadata, after string) *thin.Pool {
	t.Helper()
	p, err := md.Committed()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	var fs []check.Finding
	if sum, err := check.Pool(context.Background(), p, check.Options{}, func(f check.Finding) { fs = append(fs, f) }); err != nil || !sum.OK(false) {
		t.Fatalf("check after %s: %v %v", after, err, fs)
	}
	return p
}
