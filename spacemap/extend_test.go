package spacemap_test

import (
	"errors"
	"math"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/memtest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/transaction"
)

// A data space map is never given more bitmaps than the metadata device
// has blocks, nor a size that wraps past 2^64: both are refused before
// anything is allocated (Extend used to build every bitmap in memory, and
// a wrapped size shrank the map).
func TestDataSpaceMapSizeLimits(t *testing.T) {
	const size = 1 << 20 // 256 blocks
	dev := memdev.New(size)
	tm := transaction.NewManager(dev, size)
	msm, err := spacemap.CreateMetadata(tm, size/4096)
	if err != nil {
		t.Fatal(err)
	}
	_ = msm
	memtest.Bound(t, 1<<20, "create", func() {
		if _, err := spacemap.CreateData(tm, 257*spacemap.EntriesPerBitmap); !errors.Is(err, spacemap.ErrNoSpace) {
			t.Errorf("CreateData beyond the device: %v", err)
		}
	})
	dsm, err := spacemap.CreateData(tm, 1000)
	if err != nil {
		t.Fatal(err)
	}
	memtest.Bound(t, 1<<20, "extend", func() {
		for _, extra := range []uint64{math.MaxUint64, math.MaxUint64 - 999, 1 << 40} {
			if err := dsm.Extend(extra); !errors.Is(err, spacemap.ErrNoSpace) {
				t.Errorf("Extend(%d): %v", extra, err)
			}
		}
	})
	if dsm.NrBlocks() != 1000 {
		t.Fatalf("refused extensions left %d blocks", dsm.NrBlocks())
	}
	if err := dsm.Extend(100 * spacemap.EntriesPerBitmap); err != nil {
		t.Fatal(err)
	}
}
