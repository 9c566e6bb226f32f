package thin_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/thinmeta/thinmeta/internal/crashtest"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/transaction"
)

// crashWorkload runs a deterministic random workload on dev: creations,
// snapshots, deletions, mappings, unmappings, growth of the data device,
// metadata snapshots, and commits, each commit run through commit with the
// model of what it makes durable. It stops at the first error (the crash).
func crashWorkload(dev transaction.Device, size int64, seed uint64, commit func(*model, func() error) error) error {
	rng := rand.New(rand.NewPCG(seed, 99))
	md, err := thin.NewMetadata(dev, size, nil)
	if err != nil {
		return err
	}
	sb := md.Superblock()
	cur := newModel(sb.DataBlockSize, md.DataSpaceMap().NrBlocks())
	nextID := uint64(0)
	snapHeld := false
	doCommit := func(f func() error) error { return commit(cur.clone(), f) }
	for step := 0; step < 60; step++ {
		ids := slices.Sorted(maps.Keys(cur.devs))
		var err error
		switch op := rng.IntN(100); {
		case op < 10 || len(ids) == 0:
			id := nextID
			nextID++
			if err = md.CreateThin(id); err == nil {
				cur.devs[id] = &mdev{det: thin.Details{TransactionID: cur.trans, CreationTime: cur.time, SnapshottedTime: cur.time}, maps: map[uint64]thin.Mapping{}}
			}
		case op < 16:
			o := ids[rng.IntN(len(ids))]
			id := nextID
			nextID++
			if err = md.CreateSnapshot(id, o); err == nil {
				cur.time++
				od := cur.devs[o]
				od.det.SnapshottedTime = cur.time
				cur.devs[id] = &mdev{det: thin.Details{MappedBlocks: od.det.MappedBlocks, TransactionID: cur.trans, CreationTime: cur.time, SnapshottedTime: cur.time}, maps: maps_clone(od.maps)}
			}
		case op < 20:
			id := ids[rng.IntN(len(ids))]
			if err = md.Delete(id); err == nil {
				delete(cur.devs, id)
			}
		case op < 68:
			id := ids[rng.IntN(len(ids))]
			v := rng.Uint64N(2000)
			for i := range rng.Uint64N(300) + 1 {
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
		case op < 74:
			id := ids[rng.IntN(len(ids))]
			lo := rng.Uint64N(2000)
			hi := lo + rng.Uint64N(500)
			if _, err = md.Unmap(id, lo, hi); err == nil {
				d := cur.devs[id]
				for v := range d.maps {
					if v >= lo && v < hi {
						delete(d.maps, v)
						d.det.MappedBlocks--
					}
				}
			}
		case op < 77:
			// Growth adds bitmaps (and index entries) to the data space map.
			n := cur.nrData + 1 + rng.Uint64N(40000)
			if err = md.ResizeData(n); err == nil {
				cur.nrData = n
			}
		case op < 93:
			err = doCommit(md.Commit)
		default:
			if !snapHeld {
				err = doCommit(func() error {
					if err := md.ReserveMetadataSnapshot(); err != nil {
						return err
					}
					return md.Commit()
				})
				snapHeld = err == nil
			} else {
				if err = md.ReleaseMetadataSnapshot(); err == nil {
					snapHeld = false
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return doCommit(md.Commit)
}

// imageState dumps an image and checks it; it returns the dump.
func imageState(t *testing.T, img []byte) ([]byte, error) {
	p, err := thin.NewPool(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := dump.Dump(context.Background(), &out, p, dump.Options{}); err != nil {
		return nil, err
	}
	var fs []check.Finding
	if sum, _ := check.Pool(context.Background(), p, check.Options{}, func(f check.Finding) { fs = append(fs, f) }); !sum.OK(false) {
		return nil, fmt.Errorf("check: %v", fs)
	}
	return out.Bytes(), nil
}

// Power cuts at every write and flush of random workloads, with the
// unflushed writes kept, dropped, torn into sectors or partly lost out of
// order (crashtest): the pool reopens as exactly the last commit or the one
// in flight, checks clean, and can be written and committed again. Both
// thin_check generations judge the first survivor of each state and a
// sample of the others. THINMETA_CRASH_SEEDS sets the number of workloads.
func TestCrashAtEveryWrite(t *testing.T) {
	seeds := 20
	if testing.Short() {
		seeds = 1
	}
	if n, err := strconv.Atoi(os.Getenv("THINMETA_CRASH_SEEDS")); err == nil {
		seeds = n
	}
	base := memdev.New(2048 * 4096)
	md, err := thin.Format(base, base.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 50000})
	if err != nil {
		t.Fatal(err)
	}
	md.Close()
	image := base.Bytes()
	points := 0
	states := map[[32]byte]bool{}
	oracle := crashtest.NewOracle(t)
	for seed := range uint64(seeds) {
		initial := newModel(128, 50000)
		rec := crashtest.NewRecorder(image, initial)
		if err := crashWorkload(rec, rec.Size(), seed, func(m *model, fn func() error) error { return rec.Commit(m, fn) }); err != nil {
			t.Fatalf("seed %d without crash: %v", seed, err)
		}
		log := rec.Log()
		xmls := map[*model][]byte{}
		xmlOf := func(m *model) []byte {
			if x, ok := xmls[m]; ok {
				return x
			}
			xmls[m] = m.xml(m.nrData)
			return xmls[m]
		}
		for c := range log.Cuts(crashtest.Modes, 2) {
			points++
			got, err := poolState(c, c.Size())
			if err != nil {
				t.Fatalf("seed %d, cut at %d/%d (%v): %v", seed, c.K, log.Ops(), c.Mode, err)
			}
			ok := bytes.Equal(got, xmlOf(c.Committed.(*model)))
			if !ok && c.HasInflight {
				ok = bytes.Equal(got, xmlOf(c.Inflight.(*model)))
			}
			if !ok {
				t.Fatalf("seed %d, cut at %d/%d (%v): neither the last commit nor the one in flight:\n%s", seed, c.K, log.Ops(), c.Mode, got)
			}
			h := sha256.Sum256(got)
			if !states[h] || points%150 == 0 {
				states[h] = true
				queueSurvivor(oracle, c.Bytes(), fmt.Sprintf("seed %d, cut at %d (%v)", seed, c.K, c.Mode))
			}
			if points%97 == 0 {
				// The survivor can be written again.
				d := memdev.FromBytes(c.Bytes())
				m2, err := thin.NewMetadata(d, d.Size(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := m2.CreateThin(1 << 20); err != nil {
					t.Fatal(err)
				}
				if _, err := m2.Map(1<<20, 7); err != nil {
					t.Fatal(err)
				}
				if err := m2.Commit(); err != nil {
					t.Fatal(err)
				}
				if _, err := imageState(t, d.Bytes()); err != nil {
					t.Fatalf("after writing the survivor of cut %d: %v", c.K, err)
				}
			}
		}
		// The replay is what a device failing at the k-th operation leaves
		// (the workload is deterministic): compare a sample.
		for k := 1 + int(seed)%37; k <= log.Ops(); k += 37 {
			dev := memdev.NewCrashing(image, k, memdev.KeepUnflushed, 0)
			if err := crashWorkload(dev, dev.Size(), seed, func(_ *model, fn func() error) error { return fn() }); err == nil {
				t.Fatalf("seed %d: no crash at %d", seed, k)
			}
			for c := range log.Cuts([]crashtest.Mode{crashtest.Keep}, 1) {
				if c.K == k {
					if !bytes.Equal(c.Bytes(), dev.Durable()) {
						t.Fatalf("seed %d: the replayed cut at %d differs from a crashing device's", seed, k)
					}
					break
				}
			}
		}
	}
	oracle.Wait()
	t.Logf("%d cut points, %d states, %d judged by thin_check", points, len(states), oracle.Checked())
}

// queueSurvivor has both thin_check generations judge a crash survivor,
// and its metadata snapshot if it holds one.
func queueSurvivor(o *crashtest.Oracle, img []byte, label string) {
	o.Check(img, label)
	if p, err := thin.NewPool(bytes.NewReader(img), int64(len(img))); err == nil && p.HasMetadataSnapshot() {
		o.Check(img, label+", metadata snapshot", "-m")
	}
}

// poolState dumps the pool on r (size bytes) and checks it; it returns the
// dump.
func poolState(r io.ReaderAt, size int64) ([]byte, error) {
	p, err := thin.NewPool(r, size)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := dump.Dump(context.Background(), &out, p, dump.Options{}); err != nil {
		return nil, err
	}
	var fs []check.Finding
	if sum, _ := check.Pool(context.Background(), p, check.Options{}, func(f check.Finding) { fs = append(fs, f) }); !sum.OK(false) {
		return nil, fmt.Errorf("check: %v", fs)
	}
	return out.Bytes(), nil
}

// Power cuts at every write and flush of a format over an existing pool:
// the device holds the old pool, no pool, or the new one. Format used to
// leave the old superblock in place while it overwrote the old pool's
// blocks, so a cut left a superblock over a mix of both.
func TestFormatOverPoolCrash(t *testing.T) {
	points := 0
	for seed := range uint64(3) {
		old := memdev.New(2048 * 4096)
		md, err := thin.Format(old, old.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 50000})
		if err != nil {
			t.Fatal(err)
		}
		// One commit after the format: the old pool's structures sit in
		// the low blocks the new one takes first.
		for id := range 2 + seed {
			if err := md.CreateThin(id); err != nil {
				t.Fatal(err)
			}
			if err := md.MapRange(id, 0, 1000+500*seed); err != nil {
				t.Fatal(err)
			}
		}
		if err := md.Commit(); err != nil {
			t.Fatal(err)
		}
		md.Close()
		oldDump, err := poolState(bytes.NewReader(old.Bytes()), old.Size())
		if err != nil {
			t.Fatal(err)
		}
		rec := crashtest.NewRecorder(old.Bytes(), nil)
		if err := rec.Commit(nil, func() error {
			_, err := thin.Format(rec, rec.Size(), &thin.FormatOptions{DataBlockSize: 256, NrDataBlocks: 70000 + seed})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		log := rec.Log()
		newDump, err := poolState(bytes.NewReader(log.Final()), rec.Size())
		if err != nil {
			t.Fatal(err)
		}
		for c := range log.Cuts(crashtest.Modes, 4) {
			points++
			if _, err := thin.NewPool(c, c.Size()); errors.Is(err, superblock.ErrUnformatted) {
				continue // no pool: block 0 is zeros
			}
			got, err := poolState(c, c.Size())
			if err != nil {
				t.Fatalf("seed %d, cut at %d/%d (%v): %v", seed, c.K, log.Ops(), c.Mode, err)
			}
			if !bytes.Equal(got, oldDump) && !bytes.Equal(got, newDump) {
				t.Fatalf("seed %d, cut at %d/%d (%v): neither the old pool nor the new one:\n%s", seed, c.K, log.Ops(), c.Mode, got)
			}
		}
	}
	t.Logf("%d cut points", points)
}
