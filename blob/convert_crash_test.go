package blob_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/crashtest"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// committedDump is the dump of a pool as a commit of the uncrashed run left
// it, filled in when that commit returns.
type committedDump struct{ xml []byte }

// convertWorkload populates an extended pool, then converts it back and
// forth — downgrades (renumbering ids beyond 24 bits), upgrades with other
// blob and index sizes, blob changes and mappings in between — each commit
// run through commit. It stops at the first error (the crash).
func convertWorkload(dev transaction.Device, size int64, seed uint64, commit func(func() error) error) error {
	rng := rand.New(rand.NewPCG(seed, 11))
	md, err := thin.NewMetadata(dev, size, nil)
	if err != nil {
		return err
	}
	name := func(id uint64) []byte { return []byte(fmt.Sprintf("vol-%d-%d", id, rng.IntN(100))) }
	populate := func() error {
		var ids []uint64
		for i := range 3 + rng.IntN(5) {
			id := md.NextID()
			if i%3 == 2 {
				id += 1<<30 + uint64(rng.IntN(1000)) // renumbered by a downgrade
			}
			if err := md.CreateThin(id); err != nil {
				return err
			}
			if err := md.SetBlob(id, pad(name(id), md.BlobSize())); err != nil {
				return err
			}
			for v := range uint64(rng.IntN(400)) {
				if _, err := md.Map(id, v*2); err != nil {
					return err
				}
			}
			ids = append(ids, id)
		}
		if err := md.CreateSnapshot(md.NextID(), ids[0]); err != nil {
			return err
		}
		return md.Commit()
	}
	if err := commit(populate); err != nil {
		return err
	}
	for round := range 3 {
		if err := commit(func() error { _, err := blob.Downgrade(md, true); return err }); err != nil {
			return err
		}
		// A stock transaction between the conversions.
		if err := commit(func() error {
			if err := md.CreateThin(uint64(100 + round)); err != nil {
				return err
			}
			if _, err := md.Map(uint64(100+round), 5); err != nil {
				return err
			}
			return md.Commit()
		}); err != nil {
			return err
		}
		bs := 8 + rng.IntN(300)
		ib := rng.IntN(min(bs, 32) + 1)
		if err := commit(func() error { return blob.Upgrade(md, bs, ib) }); err != nil {
			return err
		}
		if err := commit(func() error {
			if err := md.SetBlob(uint64(100+round), pad([]byte("renamed"), bs)); err != nil {
				return err
			}
			return md.Commit()
		}); err != nil {
			return err
		}
	}
	return nil
}

func pad(b []byte, n int) []byte {
	return append(b[:min(len(b), n):min(len(b), n)], make([]byte, max(n-len(b), 0))...)
}

// Power cuts at every write and flush of conversions between the stock
// and the extended format (and the transactions around them): the pool
// reopens as exactly the commit before the cut or the one in flight,
// judged against the pool each commit of the uncrashed run left, and
// checks clean; stock survivors pass both thin_check generations on a
// sample.
func TestConvertCrash(t *testing.T) {
	seeds := 4
	if testing.Short() {
		seeds = 1
	}
	if n, err := strconv.Atoi(os.Getenv("THINMETA_CRASH_SEEDS")); err == nil {
		seeds = n
	}
	base := memdev.New(1024 * 4096)
	w, err := blob.Format(base, base.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 20000, BlobSize: 64, IndexBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	image := base.Bytes()
	initialXML, err := extendedState(bytes.NewReader(image), int64(len(image)))
	if err != nil {
		t.Fatal(err)
	}
	oracle := crashtest.NewOracle(t)
	points := 0
	for seed := range uint64(seeds) {
		rec := crashtest.NewRecorder(image, &committedDump{initialXML})
		err := convertWorkload(rec, rec.Size(), seed, func(fn func() error) error {
			st := &committedDump{}
			return rec.Commit(st, func() error {
				if err := fn(); err != nil {
					return err
				}
				var err error
				st.xml, err = extendedState(bytes.NewReader(rec.Bytes()), rec.Size())
				return err
			})
		})
		if err != nil {
			t.Fatalf("seed %d without crash: %v", seed, err)
		}
		log := rec.Log()
		for c := range log.Cuts(crashtest.Modes, 3) {
			points++
			got, err := extendedState(c, c.Size())
			if err != nil {
				t.Fatalf("seed %d, cut at %d/%d (%v): %v", seed, c.K, log.Ops(), c.Mode, err)
			}
			if !bytes.Equal(got, c.Committed.(*committedDump).xml) && (!c.HasInflight || !bytes.Equal(got, c.Inflight.(*committedDump).xml)) {
				t.Fatalf("seed %d, cut at %d/%d (%v): neither the last commit nor the one in flight:\n%s", seed, c.K, log.Ops(), c.Mode, got)
			}
			if points%40 == 0 && !bytes.Contains(got, []byte("blob_size=")) {
				oracle.Check(c.Bytes(), fmt.Sprintf("seed %d, cut at %d (%v)", seed, c.K, c.Mode))
			}
		}
	}
	oracle.Wait()
	t.Logf("%d cut points, %d stock survivors judged by thin_check", points, oracle.Checked())
}
