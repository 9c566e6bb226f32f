package blob_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/crashtest"
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
// dev, each commit run through commit with the state it makes durable. It
// stops at the first error (the crash).
func crashWorkload(dev transaction.Device, size int64, seed uint64, commit func(*crashState, func() error) error) error {
	rng := rand.New(rand.NewPCG(seed, 4))
	w, err := blob.NewWriter(dev, size, nil)
	if err != nil {
		return err
	}
	md := w.Metadata()
	sb := md.Superblock()
	cur := newXModel(sb.DataBlockSize, md.DataSpaceMap().NrBlocks(), w.BlobSize(), int(sb.IndexBytes))
	cur.nextID = w.NextID()
	spent := map[uint64]bool{}
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
			err = commit(&crashState{cur.clone(), maps.Clone(spent)}, w.Commit)
		}
		if err != nil {
			return err
		}
	}
	return commit(&crashState{cur.clone(), maps.Clone(spent)}, w.Commit)
}

// extendedState dumps the extended pool on r (size bytes) and checks it;
// it returns the dump.
func extendedState(r io.ReaderAt, size int64) ([]byte, error) {
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

// Power cuts at every write and flush of random blob workloads, with the
// unflushed writes kept, dropped, torn or partly lost out of order
// (crashtest): the pool reopens as exactly the last commit or the one in
// flight, so every thin exists with its blob or not at all, the next id
// is that commit's; it checks clean; and, on a sample, the survivor hands
// out none of the ids its commit spent and takes new thins.
func TestCrashAtEveryWrite(t *testing.T) {
	seeds := 10
	if testing.Short() {
		seeds = 1
	}
	if n, err := strconv.Atoi(os.Getenv("THINMETA_CRASH_SEEDS")); err == nil {
		seeds = n
	}
	base := memdev.New(1024 * 4096)
	w, err := blob.Format(base, base.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 20000, BlobSize: 256, IndexBytes: 16})
	if err != nil {
		t.Fatal(err)
	}
	initial := &crashState{newXModel(128, 20000, 256, 16), map[uint64]bool{}}
	initial.m.nextID = w.NextID()
	w.Close()
	image := base.Bytes()
	points := 0
	for seed := range uint64(seeds) {
		rec := crashtest.NewRecorder(image, initial)
		if err := crashWorkload(rec, rec.Size(), seed, func(s *crashState, fn func() error) error { return rec.Commit(s, fn) }); err != nil {
			t.Fatalf("seed %d without crash: %v", seed, err)
		}
		log := rec.Log()
		xmls := map[*crashState][]byte{}
		xmlOf := func(s *crashState) []byte {
			if x, ok := xmls[s]; ok {
				return x
			}
			xmls[s] = s.m.xml(s.m.nrData, false, nil)
			return xmls[s]
		}
		for c := range log.Cuts(crashtest.Modes, 2) {
			points++
			got, err := extendedState(c, c.Size())
			if err != nil {
				t.Fatalf("seed %d, cut at %d/%d (%v): %v", seed, c.K, log.Ops(), c.Mode, err)
			}
			state := c.Committed.(*crashState)
			if !bytes.Equal(got, xmlOf(state)) {
				if !c.HasInflight || !bytes.Equal(got, xmlOf(c.Inflight.(*crashState))) {
					t.Fatalf("seed %d, cut at %d/%d (%v): neither the last commit nor the one in flight:\n%s\n--- last commit\n%s",
						seed, c.K, log.Ops(), c.Mode, got, xmlOf(state))
				}
				state = c.Inflight.(*crashState)
			}
			if points%23 != 0 {
				continue
			}
			// The survivor hands out none of the ids its commit spent,
			// and takes new thins.
			d := memdev.FromBytes(c.Bytes())
			w, err := blob.NewWriter(d, d.Size(), nil)
			if err != nil {
				t.Fatal(err)
			}
			id, err := w.NewThin([]byte("after the crash"))
			if err != nil {
				t.Fatal(err)
			}
			if state.spent[id] || id != state.m.nextID {
				t.Fatalf("seed %d, cut at %d/%d (%v): id %d handed out again (next id %d)", seed, c.K, log.Ops(), c.Mode, id, state.m.nextID)
			}
			if _, err := w.Metadata().Map(id, 3); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			if _, err := extendedState(d, d.Size()); err != nil {
				t.Fatalf("after writing the survivor of cut %d: %v", c.K, err)
			}
		}
	}
	t.Logf("%d cut points", points)
}
