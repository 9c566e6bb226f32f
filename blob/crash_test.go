package blob_test

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/transaction"
)

// crashState is a commit of the crash workload: its model and the ids
// spent by then (thins that existed, ids handed out), none of which may
// be handed out again.
type crashState struct {
	m     *xmodel
	spent map[uint64]bool
}

// crashWorkload runs a deterministic random workload of blob operations on
// dev and reports the last commit that returned and the commit in flight
// (nil if none). It stops at the first error (the crash).
func crashWorkload(dev transaction.Device, size int64, seed uint64) (committed, inflight *crashState, err error) {
	rng := rand.New(rand.NewPCG(seed, 4))
	w, err := blob.NewWriter(dev, size, nil)
	if err != nil {
		return nil, nil, err
	}
	md := w.Metadata()
	sb := md.Superblock()
	cur := newXModel(sb.DataBlockSize, md.DataSpaceMap().NrBlocks(), w.BlobSize(), int(sb.IndexBytes))
	cur.nextID = w.NextID()
	spent := map[uint64]bool{}
	committed = &crashState{cur.clone(), maps.Clone(spent)}
	blobOf := func() []byte {
		b := make([]byte, cur.blobSize)
		copy(b, names[rng.IntN(len(names))])
		if rng.IntN(3) == 0 {
			b[len(b)-1] = byte(rng.IntN(256))
		}
		return b
	}
	add := func(id uint64, d *xdev) {
		cur.devs[id] = d
		cur.nextID = max(cur.nextID, id+1)
		spent[id] = true
	}
	for step := 0; step < 50; step++ {
		ids := slices.Sorted(maps.Keys(cur.devs))
		var err error
		switch op := rng.IntN(100); {
		case op < 15 || len(ids) == 0:
			b := blobOf()
			var id uint64
			if rng.IntN(4) == 0 {
				id = cur.nextID + uint64(rng.IntN(3))
				if rng.IntN(5) == 0 {
					id = cur.nextID + 1<<40 // beyond 24 bits
				}
				err = w.CreateThin(id, b)
			} else {
				id, err = w.NewThin(b)
			}
			if err == nil {
				add(id, &xdev{det: thin.Details{TransactionID: cur.trans, CreationTime: cur.time, SnapshottedTime: cur.time},
					blob: b, maps: map[uint64]thin.Mapping{}})
			}
		case op < 20:
			// An id allocated and never used is spent all the same.
			var id uint64
			if id, err = w.AllocateID(); err == nil {
				spent[id] = true
				cur.nextID = id + 1
			}
		case op < 27:
			o := ids[rng.IntN(len(ids))]
			b := blobOf()
			var id uint64
			if id, err = w.NewSnapshot(o, b); err == nil {
				cur.time++
				od := cur.devs[o]
				od.det.SnapshottedTime = cur.time
				add(id, &xdev{det: thin.Details{MappedBlocks: od.det.MappedBlocks, TransactionID: cur.trans,
					CreationTime: cur.time, SnapshottedTime: cur.time}, blob: b, maps: maps.Clone(od.maps)})
			}
		case op < 40:
			id := ids[rng.IntN(len(ids))]
			b := blobOf()
			if rng.IntN(4) == 0 {
				b = make([]byte, cur.blobSize)
				err = w.ClearBlob(id)
			} else {
				err = w.SetBlob(id, b)
			}
			if err == nil {
				cur.devs[id].blob = b
			}
		case op < 46:
			id := ids[rng.IntN(len(ids))]
			if err = w.Delete(id); err == nil {
				delete(cur.devs, id)
			}
		case op < 75:
			id := ids[rng.IntN(len(ids))]
			v := rng.Uint64N(1000)
			for i := range rng.Uint64N(100) + 1 {
				var b uint64
				if b, err = md.Map(id, v+i); err != nil {
					break
				}
				d := cur.devs[id]
				if _, ok := d.maps[v+i]; !ok {
					d.det.MappedBlocks++
				}
				d.maps[v+i] = thin.Mapping{VBlock: v + i, Block: b, Time: cur.time}
			}
		default:
			inflight = &crashState{cur.clone(), maps.Clone(spent)}
			if err = w.Commit(); err == nil {
				committed, inflight = inflight, nil
			}
		}
		if err != nil {
			return committed, inflight, err
		}
	}
	inflight = &crashState{cur.clone(), maps.Clone(spent)}
	if err = w.Commit(); err == nil {
		committed, inflight = inflight, nil
	}
	return committed, inflight, err
}

// extendedState dumps an extended image and checks a downgraded copy of it
// (our check does not know extended pools; a downgraded copy has the same
// trees and space maps, less the blob index).
func extendedState(img []byte) ([]byte, error) {
	p, err := thin.NewPool(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := dump.Dump(&out, p, dump.Options{}); err != nil {
		return nil, err
	}
	d := memdev.FromBytes(img)
	md, err := thin.NewMetadata(d, d.Size(), nil)
	if err != nil {
		return nil, err
	}
	if _, err := blob.Downgrade(md, true); err != nil {
		return nil, fmt.Errorf("downgrade: %w", err)
	}
	sp, err := thin.NewPool(bytes.NewReader(d.Bytes()), d.Size())
	if err != nil {
		return nil, err
	}
	var fs []check.Finding
	if sum := check.Pool(sp, check.Options{}, func(f check.Finding) { fs = append(fs, f) }); !sum.OK(false) {
		return nil, fmt.Errorf("check of the downgraded copy: %v", fs)
	}
	return out.Bytes(), nil
}

// Crash at every write and flush of random blob workloads, with unflushed
// writes kept, dropped or torn: the pool reopens as exactly the last
// commit or the one in flight, so every thin exists with its blob or not
// at all; it checks clean; and the ids handed out or used by the commit it
// holds are never handed out again.
func TestCrashAtEveryWrite(t *testing.T) {
	seeds := 3
	if n, err := strconv.Atoi(os.Getenv("THINMETA_CRASH_SEEDS")); err == nil {
		seeds = n
	}
	base := memdev.New(1024 * 4096)
	w, err := blob.Format(base, base.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 20000, BlobSize: 256, IndexBytes: 16})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	image := base.Bytes()
	points := 0
	for seed := range uint64(seeds) {
		full := memdev.NewCrashing(image, 0, memdev.KeepUnflushed, 0)
		if _, _, err := crashWorkload(full, full.Size(), seed); err != nil {
			t.Fatalf("seed %d without crash: %v", seed, err)
		}
		total := full.Writes()
		for _, mode := range []memdev.Mode{memdev.KeepUnflushed, memdev.DropUnflushed, memdev.TearUnflushed} {
			for k := 1; k <= total; k++ {
				dev := memdev.NewCrashing(image, k, mode, seed*1000+uint64(k))
				com, inflight, err := crashWorkload(dev, dev.Size(), seed)
				if err == nil {
					t.Fatalf("seed %d: no crash at write %d of %d", seed, k, total)
				}
				points++
				after := dev.Durable()
				got, err := extendedState(after)
				if err != nil {
					t.Fatalf("seed %d mode %d crash at write %d/%d: %v", seed, mode, k, total, err)
				}
				state := com
				if !bytes.Equal(got, com.m.xml(com.m.nrData, false, nil)) {
					state = inflight
					if inflight == nil || !bytes.Equal(got, inflight.m.xml(inflight.m.nrData, false, nil)) {
						t.Fatalf("seed %d mode %d crash at write %d/%d: state is neither the last commit nor the one in flight:\n%s\n--- last commit\n%s",
							seed, mode, k, total, got, com.m.xml(com.m.nrData, false, nil))
					}
				}
				// The survivor hands out none of the ids its commit spent,
				// and takes new thins.
				d := memdev.FromBytes(after)
				w, err := blob.NewWriter(d, d.Size(), nil)
				if err != nil {
					t.Fatal(err)
				}
				id, err := w.NewThin([]byte("after the crash"))
				if err != nil {
					t.Fatal(err)
				}
				if state.spent[id] || id != state.m.nextID {
					t.Fatalf("seed %d mode %d crash at write %d/%d: id %d handed out again (next id %d)", seed, mode, k, total, id, state.m.nextID)
				}
				if k%50 == 0 {
					if _, err := w.Metadata().Map(id, 3); err != nil {
						t.Fatal(err)
					}
					if err := w.Commit(); err != nil {
						t.Fatal(err)
					}
					if _, err := extendedState(d.Bytes()); err != nil {
						t.Fatalf("after writing the survivor of crash %d: %v", k, err)
					}
				}
			}
		}
	}
	t.Logf("%d crash points", points)
}
