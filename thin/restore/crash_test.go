package restore_test

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/restore"
	"github.com/thinmeta/thinmeta/transaction"
)

// dumpImage dumps a pool image, or returns "" if it holds no pool.
func dumpImage(t *testing.T, img []byte) string {
	t.Helper()
	d := memdev.FromBytes(img)
	p, err := thin.NewPool(d, d.Size())
	if err != nil {
		return ""
	}
	sum := check.Device(d, d.Size(), check.Options{}, func(f check.Finding) { t.Errorf("check: %s: %v", f.Area, f.Err) })
	if !sum.OK(false) {
		t.Fatalf("image holds an inconsistent pool: %+v", sum)
	}
	var b bytes.Buffer
	if err := dump.Dump(&b, p, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A power cut at any write or flush of a restore over an existing pool
// leaves the old pool intact, no pool, or the whole new pool: never a
// pool with damaged trees.
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
		_, err := restore.Restore(bytes.NewReader([]byte(s)), dev, size, restore.Options{})
		return err
	}
	old := memdev.New(size)
	if err := restoreTo(old, xml(1)); err != nil {
		t.Fatal(err)
	}
	oldDump := dumpImage(t, old.Bytes())
	newXML := xml(2)
	ref := memdev.NewCrashing(old.Bytes(), 0, memdev.KeepUnflushed, 0)
	if err := restoreTo(ref, newXML); err != nil {
		t.Fatal(err)
	}
	newDump := dumpImage(t, ref.Durable())
	total := ref.Writes()
	t.Logf("%d writes and flushes", total)
	for _, mode := range []memdev.Mode{memdev.KeepUnflushed, memdev.DropUnflushed, memdev.TearUnflushed} {
		judged := map[string]bool{}
		for i := 1; i <= 4*total; i++ {
			k := 1 + (i-1)%total // each crash point with 4 tearing seeds
			dev := memdev.NewCrashing(old.Bytes(), k, mode, uint64(i))
			if err := restoreTo(dev, newXML); err == nil {
				t.Fatalf("mode %d, crash at %d of %d: restore succeeded", mode, k, total)
			}
			switch got := dumpImage(t, dev.Durable()); got {
			case "", oldDump, newDump:
				// Both thin_check generations judge the first survivor
				// of each outcome in each mode.
				if !judged[got] {
					judged[got] = true
					checkSurvivor(t, dev.Durable(), got != "")
				}
			default:
				t.Fatalf("mode %d, crash at %d of %d: the image holds neither pool", mode, k, total)
			}
		}
	}
	// Without a flush between them, a disk may make later writes durable
	// and lose an earlier one: here the writes to block 0.
	for k := 1; k <= total; k++ {
		dev := &reordering{Crashing: memdev.NewCrashing(old.Bytes(), k, memdev.KeepUnflushed, 0), img: old.Bytes()}
		if err := restoreTo(dev, newXML); err == nil {
			t.Fatalf("crash at %d of %d: restore succeeded", k, total)
		}
		switch got := dumpImage(t, dev.durable()); got {
		case "", oldDump, newDump:
		default:
			t.Fatalf("reordered writes, crash at %d of %d: the image holds neither pool", k, total)
		}
	}
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

// checkSurvivor runs thin_check of both generations on what a crash left:
// it must pass a pool and refuse the rest.
func checkSurvivor(t *testing.T, img []byte, pool bool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "survivor.img")
	writeFile(t, path, img)
	if pool {
		tptest.CheckClean(t, path)
	} else {
		tptest.CheckRejects(t, path)
	}
}
