package check_test

import (
	"context"
	"errors"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/memtest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

// hugeTestPool returns the image of an 8 MiB pool with a few thins, a
// snapshot and some hundred mappings.
func hugeTestPool(t *testing.T) []byte {
	t.Helper()
	d := memdev.New(8 << 20)
	md, err := thin.Format(d, d.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 100000})
	if err != nil {
		t.Fatal(err)
	}
	for id := range uint64(3) {
		if err := md.CreateThin(id); err != nil {
			t.Fatal(err)
		}
		for v := range uint64(300) {
			if _, err := md.Map(id, v*3); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := md.CreateSnapshot(7, 1); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	return d.Bytes()
}

// patchSuperblock rewrites the superblock of img (a copy) with fn applied.
func patchSuperblock(img []byte, fn func(*superblock.Superblock)) []byte {
	img = append([]byte(nil), img...)
	sb := superblock.Decode(img[:4096])
	fn(&sb)
	sb.Encode(img[:4096])
	superblock.Validator.Prepare(img[:4096], 0)
	return img
}

func setRoot(slot []byte, fn func(*spacemap.Root)) {
	r := spacemap.DecodeRoot(slot)
	fn(&r)
	r.Encode(slot)
}

// heapBound is the most a check of the small pool may allocate, whatever
// the size of the device under it or what its superblock claims.
const heapBound = 8 << 20

// The check's memory follows what the metadata holds, not the size of the
// device: a pool at the start of a huge sparse device (a file grown with
// truncate, thin_check 1.1.0 passes it in 7 MB) checks clean within the
// bound, as on its own device. It used to size per-block tables by the
// device and die out of memory.
func TestCheckHugeSparseDevice(t *testing.T) {
	img := hugeTestPool(t)
	for _, size := range []int64{int64(len(img)), 64 << 30, 15 << 40, 1 << 60} {
		dev := memdev.NewSparse(img, size)
		var sum check.Summary
		memtest.Bound(t, heapBound, "check", func() {
			sum, _ = check.Device(context.Background(), dev, size, check.Options{}, func(f check.Finding) { t.Errorf("%d-byte device: %v", size, f) })
		})
		if !sum.OK(false) || sum.Devices != 4 || sum.Mappings != 1200 {
			t.Errorf("%d-byte device: %+v", size, sum)
		}
	}
}

// Space maps that claim more than the device or the pool holds, and a tree
// reaching far beyond the metadata space map: each is reported, and memory
// stays bounded by what the metadata really holds.
func TestCheckLyingSizes(t *testing.T) {
	img := hugeTestPool(t)
	const huge = 1 << 60
	cases := []struct {
		name  string
		patch func(*superblock.Superblock)
		want  error // a finding that must be among those reported (nil: any fatal one)
	}{
		{"metadata space map claims the most blocks it can", func(sb *superblock.Superblock) {
			setRoot(sb.MetadataSpaceMapRoot[:], func(r *spacemap.Root) { r.NrBlocks = spacemap.MaxMetadataBlocks })
		}, nil},
		{"metadata space map claims 2^64-1 blocks", func(sb *superblock.Superblock) {
			setRoot(sb.MetadataSpaceMapRoot[:], func(r *spacemap.Root) { r.NrBlocks = 1<<64 - 1 })
		}, spacemap.ErrIndex},
		{"data space map claims as many blocks as a full metadata space map tracks", func(sb *superblock.Superblock) {
			setRoot(sb.DataSpaceMapRoot[:], func(r *spacemap.Root) { r.NrBlocks = spacemap.MaxMetadataBlocks * spacemap.EntriesPerBitmap / 2 })
		}, nil},
		{"data space map claims 2^64-1 blocks", func(sb *superblock.Superblock) {
			setRoot(sb.DataSpaceMapRoot[:], func(r *spacemap.Root) { r.NrBlocks = 1<<64 - 1 })
		}, spacemap.ErrIndex},
		{"mapping tree root beyond the metadata space map", func(sb *superblock.Superblock) {
			sb.DataMappingRoot = 1 << 40
		}, check.ErrSpaceMapRange},
		{"details tree root beyond the device", func(sb *superblock.Superblock) {
			sb.DeviceDetailsRoot = 1<<64 - 2
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := patchSuperblock(img, c.patch)
			dev := memdev.NewSparse(bad, huge)
			var fs []check.Finding
			var sum check.Summary
			memtest.Bound(t, heapBound, "check", func() {
				sum, _ = check.Device(context.Background(), dev, huge, check.Options{}, func(f check.Finding) { fs = append(fs, f) })
			})
			if sum.Fatal == 0 {
				t.Fatalf("no fatal finding: %+v", sum)
			}
			if c.want != nil {
				found := false
				for _, f := range fs {
					found = found || errors.Is(f.Err, c.want)
				}
				if !found {
					t.Errorf("no finding wraps %v: %v", c.want, fs)
				}
			}
		})
	}
}
