package thin_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/memtest"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/rmap"
)

// refuseBound is the most a refused request may allocate: refusing is
// arithmetic, whatever was asked.
const refuseBound = 1 << 20

// fastRefusal runs fn, which must fail with an error wrapping want at
// once and within refuseBound bytes of heap.
func fastRefusal(t *testing.T, what string, want error, fn func() error) {
	t.Helper()
	var err error
	start := time.Now()
	memtest.Bound(t, refuseBound, what, func() { err = fn() })
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("%s took %v", what, d)
	}
}

// The space a data space map needs, against the allocator: a pool
// formatted with a data space map of up to one index leaf's worth of
// bitmaps uses exactly what DataSpaceMapBlocks and the structures of an
// empty pool say, and a larger one at least that (Format indexes the
// bitmaps by insertion, which leaves its leaves half full).
func TestDataSpaceMapBlocks(t *testing.T) {
	for _, nrMeta := range []uint64{64, 1024, 20000} {
		for _, bitmaps := range []uint64{0, 1, 2, 40, 168, 169, 400, 2000} {
			nrData := bitmaps * spacemap.EntriesPerBitmap
			if bitmaps > 0 {
				nrData -= 7 // a partial last bitmap counts
			}
			want := 6 + spacemap.NrBitmaps(nrMeta) + thin.DataSpaceMapBlocks(nrData)
			d := memdev.New(int64(nrMeta) * 4096)
			md, err := thin.Format(d, d.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: nrData})
			if want > nrMeta {
				if !errors.Is(err, thin.ErrMetadataTooSmall) {
					t.Errorf("%d metadata blocks, %d bitmaps: %v, want ErrMetadataTooSmall", nrMeta, bitmaps, err)
				}
				continue
			}
			if errors.Is(err, spacemap.ErrNoSpace) && bitmaps > 168 {
				continue // the less dense index did not fit
			}
			if err != nil {
				t.Fatalf("%d metadata blocks, %d bitmaps: %v", nrMeta, bitmaps, err)
			}
			used := md.MetadataSpaceMap().NrAllocated()
			if bitmaps <= 168 && used != want || used < want {
				t.Errorf("%d metadata blocks, %d bitmaps: %d blocks used, DataSpaceMapBlocks gives %d", nrMeta, bitmaps, used, want)
			}
		}
	}
}

// The largest data device a metadata device can describe: a pool of that
// size is formatted, and checks clean with both thin_check generations;
// one block more is refused at once.
func TestFormatLargestDataDevice(t *testing.T) {
	for _, nrMeta := range []uint64{16, 100, 174} { // at most 168 bitmaps: Format's index is one leaf
		most := thin.MaxDataBlocks(nrMeta)
		img := filepath.Join(t.TempDir(), "meta.img")
		if err := os.WriteFile(img, make([]byte, nrMeta*4096), 0o644); err != nil {
			t.Fatal(err)
		}
		md, err := thin.CreateMetadata(img, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: most})
		if err != nil {
			t.Fatalf("%d metadata blocks, %d data blocks: %v", nrMeta, most, err)
		}
		if free := md.MetadataSpaceMap().NrFree(); free != 0 {
			t.Errorf("%d metadata blocks: %d left free by the largest data device", nrMeta, free)
		}
		md.Close()
		tptest.CheckClean(t, img)
		d := memdev.New(int64(nrMeta) * 4096)
		fastRefusal(t, "format one block larger", thin.ErrMetadataTooSmall, func() error {
			_, err := thin.Format(d, d.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: most + 1})
			return err
		})
	}
	if got := thin.MaxDataBlocks(spacemap.MaxMetadataBlocks); got < 67e9 || got > 68e9 {
		t.Errorf("the largest data device any pool can describe: %d blocks", got)
	}
}

// Sizes that lie: a data device far beyond what the metadata can hold is
// refused at once, in format and in resize, instead of building bitmaps
// for it (resize_data 2^40 ran past 30 s and 4 GB); so is a metadata space
// map beyond the device or beyond what a space map can track.
func TestRefuseDataDeviceTooLarge(t *testing.T) {
	const size = 64 << 20
	for _, n := range []uint64{1 << 40, math.MaxUint64, thin.MaxDataBlocks(size/4096) + 1} {
		fastRefusal(t, "format", thin.ErrMetadataTooSmall, func() error {
			d := memdev.NewSparse(nil, size)
			_, err := thin.Format(d, size, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: n})
			return err
		})
	}
	// The largest any pool can describe, plus one, on the largest
	// metadata device.
	huge := int64(spacemap.MaxMetadataBlocks) * 4096
	fastRefusal(t, "format the largest metadata device", thin.ErrMetadataTooSmall, func() error {
		d := memdev.NewSparse(nil, huge)
		_, err := thin.Format(d, huge, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: thin.MaxDataBlocks(spacemap.MaxMetadataBlocks) + 1})
		return err
	})

	d := memdev.New(size)
	md, err := thin.Format(d, size, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), d.Bytes()...)
	for _, n := range []uint64{1 << 40, math.MaxUint64, thin.MaxDataBlocks(size/4096) + 1} {
		fastRefusal(t, "resize data", thin.ErrMetadataTooSmall, func() error { return md.ResizeData(n) })
	}
	fastRefusal(t, "resize metadata beyond the device", thin.ErrMetadataTooSmall, func() error { return md.ResizeMetadata(size/4096 + 1) })
	fastRefusal(t, "resize metadata beyond a space map", thin.ErrRange, func() error { return md.ResizeMetadata(math.MaxUint64) })
	// What fits is done, and nothing of the refusals is left.
	if err := md.ResizeData(2_000_000); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	if string(before) == string(d.Bytes()) {
		t.Fatal("the resize was not written")
	}
	if got := md.DataSpaceMap().NrBlocks(); got != 2_000_000 {
		t.Fatalf("data device of %d blocks", got)
	}
	// Growing by more than the free metadata blocks can take: the pool
	// is refused even though an empty one of this size could describe it.
	for v := range uint64(100) {
		if err := md.CreateThin(v); err != nil {
			t.Fatal(err)
		}
	}
	fastRefusal(t, "resize data beyond the free metadata", thin.ErrMetadataTooSmall, func() error {
		return md.ResizeData(thin.MaxDataBlocks(size / 4096))
	})
}

// Block ranges that run past 2^64 are refused before anything changes
// (the CLI's "map ID BEGIN COUNT" looped over v < BEGIN+COUNT, which
// wrapped: it reported success and mapped nothing); the last block itself
// can be mapped.
func TestBlockRanges(t *testing.T) {
	d := memdev.New(8 << 20)
	md, err := thin.Format(d, d.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := md.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]uint64{{math.MaxUint64, 2}, {math.MaxUint64 - 5, 7}, {2, math.MaxUint64}, {math.MaxUint64, math.MaxUint64}} {
		if err := md.MapRange(1, r[0], r[1]); !errors.Is(err, thin.ErrRange) {
			t.Errorf("MapRange(1, %d, %d): %v, want ErrRange", r[0], r[1], err)
		}
	}
	if _, err := md.Unmap(1, 5, 4); !errors.Is(err, thin.ErrRange) {
		t.Errorf("Unmap of [5, 4): %v, want ErrRange", err)
	}
	if err := md.MapTo(1, 0, thin.MaxDataBlock+1); !errors.Is(err, thin.ErrRange) {
		t.Errorf("MapTo beyond the format's data blocks: %v, want ErrRange", err)
	}
	if det, _ := md.Details(1); det.MappedBlocks != 0 {
		t.Fatalf("refused ranges mapped %d blocks", det.MappedBlocks)
	}
	if err := md.MapRange(1, math.MaxUint64-4, 5); err != nil {
		t.Fatal(err)
	}
	if err := md.MapRange(1, 10, 0); err != nil {
		t.Fatal(err)
	}
	for v := uint64(math.MaxUint64 - 4); ; v++ {
		if _, ok, err := md.Lookup(1, v); err != nil || !ok {
			t.Fatalf("block %d: mapped %v, %v", v, ok, err)
		}
		if v == math.MaxUint64 {
			break
		}
	}
	if det, _ := md.Details(1); det.MappedBlocks != 5 {
		t.Fatalf("%d blocks mapped, want 5", det.MappedBlocks)
	}
	if _, err := thin.BlockRange(math.MaxUint64, 1); err != nil {
		t.Errorf("the last block alone: %v", err)
	}
}

// rmap refuses a region that is empty or inverted, as thin_rmap does,
// instead of answering for no blocks.
func TestRmapRefusesEmptyRegions(t *testing.T) {
	d := memdev.New(4 << 20)
	md, err := thin.Format(d, d.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	md.Close()
	p, err := thin.NewPool(d, d.Size())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []rmap.Region{{Begin: 5, End: 5}, {Begin: 9, End: 3}, {Begin: math.MaxUint64, End: 0}} {
		if _, err := rmap.Map(context.Background(), p, []rmap.Region{{Begin: 0, End: 10}, r}); !errors.Is(err, rmap.ErrRegionEmpty) {
			t.Errorf("region %v: %v, want ErrRegionEmpty", r, err)
		}
	}
}
