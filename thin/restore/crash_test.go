package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/internal/crashtest"
	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/restore"
	"github.com/thinmeta/thinmeta/transaction"
)

// dumpImage dumps a pool image, or returns "" if it holds no pool.
func dumpImage(t *testing.T, img []byte) string {
	t.Helper()
	return dumpAt(t, bytes.NewReader(img), int64(len(img)))
}

// dumpAt dumps the pool on r (size bytes), or returns "" if there is
// none; a pool must check clean.
func dumpAt(t *testing.T, r io.ReaderAt, size int64) string {
	t.Helper()
	p, err := thin.NewPool(r, size)
	if errors.Is(err, superblock.ErrUnformatted) {
		return "" // no pool: block 0 is zeros
	}
	if err != nil {
		t.Fatalf("a crash left a superblock that does not open: %v", err)
	}
	sum, _ := check.Device(context.Background(), r, size, check.Options{}, func(f check.Finding) { t.Errorf("check: %s: %v", f.Area, f.Err) })
	if !sum.OK(false) {
		t.Fatalf("image holds an inconsistent pool: %+v", sum)
	}
	var b bytes.Buffer
	if err := dump.Dump(context.Background(), &b, p, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A power cut at any write or flush of a restore over an existing pool,
// with the unflushed writes kept, dropped, torn or partly lost out of
// order (crashtest, several draws of each), leaves the old pool intact,
// no pool, or the whole new pool: never a pool with damaged trees. Both
// thin_check generations judge the first survivor of each outcome (a pool
// must pass, the rest be refused).
func TestRestoreCrash(t *testing.T) {
	const size = 16 << 20
	xml := func(seed uint64) string {
		p := genpool.Generate(rand.New(rand.NewPCG(seed, 1)), genpool.Spec{Devices: 8, MinMappings: 5000, MaxMappings: 20000,
			MeanRun: 3, Sparsity: 2, SnapshotFraction: 0.5, RewriteFraction: 0.3})
		var b bytes.Buffer
		p.WriteXML(&b)
		return b.String()
	}
	restoreTo := func(dev transaction.Device, s string) error {
		_, err := restore.Restore(context.Background(), bytes.NewReader([]byte(s)), dev, size, restore.Options{})
		return err
	}
	pairs := 6
	if testing.Short() {
		pairs = 1
	}
	oracle := crashtest.NewOracle(t)
	points := 0
	for pair := range uint64(pairs) {
		old := memdev.New(size)
		if err := restoreTo(old, xml(2*pair+1)); err != nil {
			t.Fatal(err)
		}
		oldDump := dumpImage(t, old.Bytes())
		newXML := xml(2*pair + 2)
		rec := crashtest.NewRecorder(old.Bytes(), nil)
		if err := rec.Commit(nil, func() error { return restoreTo(rec, newXML) }); err != nil {
			t.Fatal(err)
		}
		log := rec.Log()
		newDump := dumpImage(t, log.Final())
		judged := map[string]bool{}
		for c := range log.Cuts(crashtest.Modes, 8) {
			points++
			switch got := dumpAt(t, c, c.Size()); got {
			case "", oldDump, newDump:
				if !judged[got] {
					judged[got] = true
					img := c.Bytes()
					if got != "" {
						oracle.Check(img, fmt.Sprintf("pair %d, cut at %d (%v)", pair, c.K, c.Mode))
					} else {
						path := filepath.Join(t.TempDir(), "survivor.img")
						writeFile(t, path, img)
						tptest.CheckRejects(t, path)
					}
				}
			default:
				t.Fatalf("pair %d, cut at %d of %d (%v): the image holds neither pool", pair, c.K, log.Ops(), c.Mode)
			}
		}
		if pair > 0 {
			continue
		}
		// Without a flush between them, a disk may make later writes
		// durable and lose an earlier one: here the writes to block 0.
		total := log.Ops()
		for k := 1; k <= total; k++ {
			dev := &reordering{Crashing: memdev.NewCrashing(old.Bytes(), k, memdev.KeepUnflushed, 0), img: old.Bytes()}
			if err := restoreTo(dev, newXML); err == nil {
				t.Fatalf("crash at %d of %d: restore succeeded", k, total)
			}
			points++
			switch got := dumpImage(t, dev.durable()); got {
			case "", oldDump, newDump:
			default:
				t.Fatalf("reordered writes, crash at %d of %d: the image holds neither pool", k, total)
			}
		}
	}
	oracle.Wait()
	t.Logf("%d cut points", points)
}

// reordering is a crashing device whose unflushed writes to block 0 are
// lost in the crash while later ones survive.
type reordering struct {
	*memdev.Crashing
	img     []byte // contents as of the last flush
	block0  []byte // unflushed contents of block 0, if written
	flushed bool
}

func (r *reordering) WriteAt(p []byte, off int64) (int, error) {
	n, err := r.Crashing.WriteAt(p, off)
	if err == nil && off < 4096 {
		r.block0 = append([]byte(nil), p...)
	}
	return n, err
}

func (r *reordering) Flush() error {
	err := r.Crashing.Flush()
	if err == nil {
		r.img = r.Crashing.Durable()
		r.block0 = nil
	}
	return err
}

// durable is what the media holds after the crash: every write but the
// unflushed ones to block 0.
func (r *reordering) durable() []byte {
	out := r.Crashing.Durable() // KeepUnflushed: every write
	if r.block0 != nil {
		copy(out[:4096], r.img[:4096])
	}
	return out
}
