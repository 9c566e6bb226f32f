package thin

import (
	"testing"

	"github.com/thinmeta/thinmeta/internal/blobindex"
	"github.com/thinmeta/thinmeta/internal/memdev"
)

// Random keys never have neighbouring hashes, so probe runs of different
// homes never meet in the model tests. Here an entry with a fabricated
// home is placed right after a real key's home: a thin with that key then
// probes past it, and deleting the first thin must pull back only the
// entry whose home allows it (backward-shift deletion), leaving the
// stranger at its own home.
func TestIndexRunsOfDifferentHomes(t *testing.T) {
	dev := memdev.New(512 * 4096)
	m, err := Format(dev, dev.Size(), &FormatOptions{DataBlockSize: 128, NrDataBlocks: 100, Variant: Extended, BlobSize: 8, IndexBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("vm-root\x00")
	h, _ := blobindex.Hash(key)
	slot := func(s uint64) (id, home uint64, ok bool) {
		t.Helper()
		v, found, err := blobindex.Tree(m.tm, m.indexRoot).Lookup(s)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			return 0, 0, false
		}
		id, home = blobindex.DecodeValue(v)
		return id, home, true
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.indexAdd(1, key))
	m.indexRoot, err = blobindex.Add(m.tm, m.indexRoot, 999, h+1)
	must(err)
	must(m.indexAdd(2, key))
	if id, _, ok := slot(h + 2); !ok || id != 2 {
		t.Fatalf("thin 2 is at %d, %v; it should have probed past the stranger", id, ok)
	}
	must(m.indexRemove(1, key))
	if id, home, ok := slot(h); !ok || id != 2 || home != h {
		t.Fatalf("the home slot holds %d (home %#x, %v); thin 2 should have moved back", id, home, ok)
	}
	if id, home, ok := slot(h + 1); !ok || id != 999 || home != h+1 {
		t.Fatalf("the next slot holds %d (home %#x, %v); the stranger must stay at its home", id, home, ok)
	}
	if _, _, ok := slot(h + 2); ok {
		t.Fatal("the third slot is still used")
	}
	must(m.indexRemove(2, key))
	if _, _, ok := slot(h); ok {
		t.Fatal("the home slot is still used")
	}
	if id, _, ok := slot(h + 1); !ok || id != 999 {
		t.Fatal("removing thin 2 moved the stranger")
	}
}
