package thin_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
)

// With a metadata snapshot held, every transaction that changes a thin's
// mapping tree must rewrite that thin's details entry, as the kernel does
// (td->changed is set by every insert, remove and range removal, and
// __write_changed_details writes the entry whatever its values). Then the
// details leaf is shadowed whenever the mapping tree is, and the snapshot's
// copy of it is not shared with the live tree. thin_check 1.1.0 relies on
// that: a thin whose root differs between the snapshot and the live pool
// must have its details in a leaf the live tree does not share, or it
// fails with "metadata snap: unexpected thin ids" (exit 64). These edits
// change the tree but not mapped_blocks, the case thinmeta used to skip.
func TestHeldSnapshotDetailsRewritten(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, md *thin.Metadata)
	}{
		{"map_to over a mapped block", func(t *testing.T, md *thin.Metadata) {
			mustDo(t, md.DataSpaceMap().Inc(100))
			mustDo(t, md.MapTo(0, 5, 100))
		}},
		{"remap (a write to a mapped block)", func(t *testing.T, md *thin.Metadata) {
			_, err := md.Map(0, 3)
			mustDo(t, err)
		}},
		// The caller's new reference replaces the old one: the count
		// stays 1 (it used to be left at 2, a leak 1.1.0 calls fatal).
		{"map_to the block already mapped", func(t *testing.T, md *thin.Metadata) {
			mustDo(t, md.DataSpaceMap().Inc(7))
			mustDo(t, md.MapTo(0, 7, 7))
		}},
		{"unmap and map back", func(t *testing.T, md *thin.Metadata) {
			_, err := md.Unmap(0, 2, 3)
			mustDo(t, err)
			_, err = md.Map(0, 2)
			mustDo(t, err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := memdev.New(1024 * 4096)
			md, err := thin.Format(dev, dev.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 1000})
			mustDo(t, err)
			mustDo(t, md.CreateThin(0))
			mustDo(t, md.CreateThin(1)) // its details share the leaf
			for v := range uint64(10) {
				_, err := md.Map(0, v)
				mustDo(t, err)
			}
			mustDo(t, md.Commit())
			mustDo(t, md.ReserveMetadataSnapshot())
			tc.edit(t, md)
			mustDo(t, md.Commit())
			img := filepath.Join(t.TempDir(), "meta.img")
			mustDo(t, os.WriteFile(img, dev.Bytes(), 0o644))
			tptest.CheckClean(t, img)
			tptest.CheckClean(t, img, "-m")
		})
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
