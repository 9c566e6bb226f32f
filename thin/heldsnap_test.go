package thin_test

import (
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
			mustDo(t, md.Commit())
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

// mapTo maps v of device id to data block b, which another mapping already
// uses (a reference is added, as "thinmeta message map_to" does): b may be
// the block v maps to already, or any block of any device.
// If the device maps b at another virtual block, MapTo must refuse it
// (thin.ErrMappedTwice) and change nothing.
func (h *harness) mapTo(id, v, b uint64) {
	h.t.Helper()
	d := h.cur.devs[id]
	h.script.Add("map_to", id, v, b)
	h.must(h.md.DataSpaceMap().Inc(b))
	err := h.md.MapTo(id, v, b)
	for w, mp := range d.maps {
		if w != v && mp.Block == b {
			if !errors.Is(err, thin.ErrMappedTwice) {
				h.t.Fatalf("MapTo(%d, %d, %d) with %d mapped to it too: %v", id, v, b, w, err)
			}
			h.must(h.md.DataSpaceMap().Dec(b))
			return
		}
	}
	h.must(err)
	if _, ok := d.maps[v]; !ok {
		d.det.MappedBlocks++
	}
	d.maps[v] = thin.Mapping{VBlock: v, Block: b, Time: h.cur.time}
}

// reserve takes a metadata snapshot and commits it.
func (h *harness) reserve() {
	h.script.Add("reserve_metadata_snap")
	h.script.Add("commit")
	h.must(h.md.ReserveMetadataSnapshot())
	h.must(h.md.Commit())
	h.com = h.cur.clone()
	h.snap = h.com.clone()
	h.commits++
	h.verify(true)
}

// Random edits with a metadata snapshot held most of the time — reserved
// at random points, sometimes released and reserved again — aimed at the
// class of issue 8 (a held snapshot and edits that move a thin's mapping
// tree: remaps, map_to over mapped blocks, unmaps, snapshots, deletions).
// After EVERY commit: our dump and check against the model, thin_check of
// both generations on the live pool and on the snapshot (-m), thin_dump
// 0.9.0 byte for byte and 1.1.0 by content, live and -m.
//
//	THINMETA_HELDSNAP_COMMITS=2000 go test ./thin -run TestHeldSnapshotRandom   # longer (default 75)
//	THINMETA_HELDSNAP_SEED=7 ...                                               # another seed (default 1)
func TestHeldSnapshotRandom(t *testing.T) {
	commits, seed := 75, uint64(1)
	if n, err := strconv.Atoi(os.Getenv("THINMETA_HELDSNAP_COMMITS")); err == nil && n > 0 {
		commits = n
	}
	if s, err := strconv.ParseUint(os.Getenv("THINMETA_HELDSNAP_SEED"), 10, 64); err == nil {
		seed = s
	}
	// Sequences of 25 commits on fresh pools, so the pools stay small and
	// each one starts without a snapshot.
	for run := 0; run*25 < commits; run++ {
		rng := rand.New(rand.NewPCG(seed, uint64(run)))
		h := newHarness(t, 2048, 20000)
		h.oracleAt = 1
		for h.commits < 25 {
			// Small transactions: the class shows only when no other
			// device's details changed in the same transaction.
			for range rng.IntN(3) + 1 {
				heldSnapStep(h, rng)
			}
			h.commit()
		}
		t.Logf("run %d (seed %d): %d commits, %d devices, snapshot held: %v", run, seed, h.commits, len(h.cur.devs), h.snap != nil)
	}
}

// heldSnapStep runs one random operation of TestHeldSnapshotRandom.
func heldSnapStep(h *harness, rng *rand.Rand) {
	ids := slices.Sorted(maps.Keys(h.cur.devs))
	pick := func() uint64 { return ids[rng.IntN(len(ids))] }
	// mapped returns a mapped virtual block of device id (ok false if none).
	mapped := func(id uint64) (uint64, bool) {
		vs := slices.Sorted(maps.Keys(h.cur.devs[id].maps))
		if len(vs) == 0 {
			return 0, false
		}
		return vs[rng.IntN(len(vs))], true
	}
	switch op := rng.IntN(100); {
	case len(ids) == 0 || op < 8 && len(ids) < 12:
		h.createThin()
	case op < 12:
		if len(ids) < 12 {
			h.snapshot(pick())
		}
	case op < 16:
		if len(ids) > 3 {
			h.delete(pick())
		}
	case op < 36: // new mappings (some over mapped blocks: remaps)
		id := pick()
		v := rng.Uint64N(1500)
		for i := range rng.Uint64N(60) + 1 {
			h.mapBlock(id, v+i)
		}
	case op < 48: // remaps of mapped blocks only
		id := pick()
		for range rng.IntN(8) + 1 {
			if v, ok := mapped(id); ok {
				h.mapBlock(id, v)
			}
		}
	case op < 58: // map_to over a mapped block: another mapping's block or its own
		id := pick()
		for range rng.IntN(4) + 1 {
			v, ok := mapped(id)
			if !ok {
				break
			}
			b := h.cur.devs[id].maps[v].Block
			if src := pick(); rng.IntN(3) > 0 {
				if w, ok := mapped(src); ok {
					b = h.cur.devs[src].maps[w].Block
				}
			}
			h.mapTo(id, v, b)
		}
	case op < 66:
		lo := rng.Uint64N(1500)
		h.unmap(pick(), lo, lo+rng.Uint64N(200)) // sometimes an empty range
	case op < 70:
		next := rng.Uint64N(1 << 40)
		h.script.Add("set_transaction_id", h.cur.trans, next)
		h.must(h.md.SetTransactionID(h.cur.trans, next))
		h.cur.trans = next
	case op < 90:
		h.commit()
	case op < 96:
		if h.snap == nil {
			h.reserve()
		}
	default:
		if h.snap != nil {
			h.script.Add("release_metadata_snap")
			h.must(h.md.ReleaseMetadataSnapshot())
			h.snap = nil
			if rng.IntN(2) == 0 {
				h.reserve() // released and reserved again in one go
			} else {
				h.commit()
			}
		}
	}
}
