package thin_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
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
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/transaction"
)

// crashWorkload runs a deterministic random workload on dev and reports the
// model of the last commit that returned and of the commit in flight (nil
// if none). It stops at the first error (the crash).
func crashWorkload(dev transaction.Device, size int64, seed uint64) (committed, inflight *model, err error) {
	rng := rand.New(rand.NewPCG(seed, 99))
	md, err := thin.NewMetadata(dev, size, nil)
	if err != nil {
		return nil, nil, err
	}
	sb := md.Superblock()
	cur := newModel(sb.DataBlockSize, md.DataSpaceMap().NrBlocks())
	committed = cur.clone()
	nextID := uint64(0)
	snapHeld := false
	doCommit := func(f func() error) error {
		inflight = cur.clone()
		if err := f(); err != nil {
			return err
		}
		committed, inflight = inflight, nil
		return nil
	}
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
		case op < 70:
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
		case op < 76:
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
		case op < 94:
			err = doCommit(md.Commit)
		default:
			if !snapHeld {
				err = doCommit(md.ReserveMetadataSnapshot)
				snapHeld = err == nil
			} else {
				if err = md.ReleaseMetadataSnapshot(); err == nil {
					snapHeld = false
				}
			}
		}
		if err != nil {
			return committed, inflight, err
		}
	}
	err = doCommit(md.Commit)
	return committed, inflight, err
}

// imageState dumps an image and checks it; it returns the dump.
func imageState(t *testing.T, img []byte) ([]byte, error) {
	p, err := thin.NewPool(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := dump.Dump(&out, p, dump.Options{}); err != nil {
		return nil, err
	}
	var fs []check.Finding
	if sum := check.Pool(p, check.Options{}, func(f check.Finding) { fs = append(fs, f) }); !sum.OK(false) {
		return nil, fmt.Errorf("check: %v", fs)
	}
	return out.Bytes(), nil
}

// Crash at every write of random workloads, with unflushed writes kept,
// dropped or torn: reopening gives exactly the last commit or the one in
// flight, the pool checks clean, and it can be written and committed again.
func TestCrashAtEveryWrite(t *testing.T) {
	seeds := 3
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
	for seed := range uint64(seeds) {
		// A run without a crash tells how many writes the workload makes.
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
				got, err := imageState(t, after)
				if err != nil {
					t.Fatalf("seed %d mode %d crash at write %d/%d: %v", seed, mode, k, total, err)
				}
				nr := func(m *model) uint64 { return m.nrData }
				ok := bytes.Equal(got, com.xml(nr(com)))
				if !ok && inflight != nil {
					ok = bytes.Equal(got, inflight.xml(nr(inflight)))
				}
				if !ok {
					t.Fatalf("seed %d mode %d crash at write %d/%d: state is neither the last commit nor the one in flight:\n%s", seed, mode, k, total, got)
				}
				// Both thin_check generations judge the first survivor of
				// each state.
				if h := sha256.Sum256(got); !states[h] {
					states[h] = true
					checkSurvivor(t, after)
				}
				if k%97 == 0 {
					// The survivor can be written again.
					d := memdev.FromBytes(after)
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
						t.Fatalf("after writing the survivor of crash %d: %v", k, err)
					}
					checkSurvivor(t, d.Bytes())
				}
			}
		}
	}
	t.Logf("%d crash points, %d states", points, len(states))
}

// checkSurvivor requires thin_check of both generations to pass a crash
// survivor, and its metadata snapshot if it holds one.
func checkSurvivor(t *testing.T, img []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "survivor.img")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	tptest.CheckClean(t, path)
	p, err := thin.NewPool(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if p.HasMetadataSnapshot() {
		tptest.CheckClean(t, path, "-m")
	}
}
