package thin_test

import (
	"context"
	"io"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/memtest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/delta"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/ls"
	"github.com/thinmeta/thinmeta/thin/rmap"
)

// hugeDevicePool returns the image of a 4 MiB pool: two thins with 500
// mappings each, one a snapshot of the other.
func hugeDevicePool(t *testing.T) []byte {
	t.Helper()
	d := memdev.New(4 << 20)
	md, err := thin.Format(d, d.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if err := md.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	for v := range uint64(500) {
		if _, err := md.Map(1, 2*v); err != nil {
			t.Fatal(err)
		}
	}
	if err := md.CreateSnapshot(2, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := md.Map(2, 1); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	return d.Bytes()
}

// hugeBound is the most any tool may allocate on the small pool, whatever
// the size of the device under it.
const hugeBound = 8 << 20

// Every reader and the writer work on a small pool at the start of a
// huge sparse device (a metadata file grown with truncate) within the
// memory they need on the pool's own device: none sizes anything by the
// device. rmap used to allocate a bitmap of every block of the device.
func TestToolsOnHugeSparseDevice(t *testing.T) {
	img := hugeDevicePool(t)
	for _, size := range []int64{15 << 40, 1 << 60} {
		dev := memdev.NewSparse(img, size)
		p, err := thin.NewPool(dev, size)
		if err != nil {
			t.Fatal(err)
		}
		memtest.Bound(t, hugeBound, "check", func() {
			if sum, _ := check.Pool(context.Background(), p, check.Options{}, func(f check.Finding) { t.Error(f) }); !sum.OK(false) {
				t.Errorf("check: %+v", sum)
			}
		})
		memtest.Bound(t, hugeBound, "dump", func() {
			if err := dump.Dump(context.Background(), io.Discard, p, dump.Options{}); err != nil {
				t.Error(err)
			}
		})
		memtest.Bound(t, hugeBound, "dump as 1.1.0 does", func() {
			// It indexed its leaves by a slice of the device's blocks.
			if err := dump.Dump(context.Background(), io.Discard, p, dump.Options{Compat: dump.Compat110}); err != nil {
				t.Error(err)
			}
		})
		memtest.Bound(t, hugeBound, "ls", func() {
			r, err := ls.List(context.Background(), p, ls.Options{Exclusive: true})
			if err != nil || len(r.Devices) != 2 {
				t.Errorf("ls: %v %+v", err, r)
			}
		})
		memtest.Bound(t, hugeBound, "rmap", func() {
			es, err := rmap.Map(context.Background(), p, []rmap.Region{{Begin: 0, End: 1 << 40}})
			if err != nil || len(es) == 0 {
				t.Errorf("rmap: %v, %d entries", err, len(es))
			}
		})
		memtest.Bound(t, hugeBound, "delta", func() {
			if _, err := delta.Compare(context.Background(), p, 1, 2); err != nil {
				t.Errorf("delta: %v", err)
			}
		})
		memtest.Bound(t, hugeBound, "write and commit", func() {
			md, err := thin.NewMetadata(dev, size, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := md.CreateThin(3); err != nil {
				t.Fatal(err)
			}
			if _, err := md.Map(3, 0); err != nil {
				t.Fatal(err)
			}
			if err := md.Commit(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
