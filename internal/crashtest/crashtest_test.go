package crashtest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/transaction"
)

// randomIO is a deterministic workload of writes (whole sectors, some over
// several blocks) and flushes, with two commits declared.
func randomIO(dev transaction.Device, rec *Recorder, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 3))
	step := func() error {
		if rng.IntN(5) == 0 {
			return dev.Flush()
		}
		n := 512 * (1 + rng.IntN(20))
		off := int64(512 * rng.IntN(64*8-n/512))
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		_, err := dev.WriteAt(b, off)
		return err
	}
	for i := 0; i < 60; i++ {
		var err error
		if i == 20 || i == 40 {
			fn := func() error {
				for range 5 {
					if err := step(); err != nil {
						return err
					}
				}
				return dev.Flush()
			}
			if rec != nil {
				err = rec.Commit(i, fn)
			} else {
				err = fn()
			}
		} else {
			err = step()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// The media of every cut equals that of a device that really fails at the
// k-th operation (keeping or dropping what was not flushed), and a torn or
// reordered cut holds, in every sector, what a kept or dropped one holds
// or what some unflushed write put there; the commit states are those the
// workload was in.
func TestReplayMatchesCrashingDevice(t *testing.T) {
	image := make([]byte, 64*blockSize)
	for i := range image {
		image[i] = byte(i * 7)
	}
	for seed := range uint64(8) {
		rec := NewRecorder(image, "initial")
		if err := randomIO(rec, rec, seed); err != nil {
			t.Fatal(err)
		}
		log := rec.Log()
		if !bytes.Equal(log.Final(), rec.Bytes()) {
			t.Fatal("Final differs from the recorder's contents")
		}
		ref := map[[2]int][]byte{} // (k, mode) -> media of a crashing device
		for k := 1; k <= log.Ops(); k++ {
			for _, m := range []memdev.Mode{memdev.KeepUnflushed, memdev.DropUnflushed} {
				dev := memdev.NewCrashing(image, k, m, 0)
				if err := randomIO(dev, nil, seed); !errors.Is(err, memdev.ErrCrashed) {
					t.Fatalf("seed %d: no crash at %d: %v", seed, k, err)
				}
				ref[[2]int{k, int(m)}] = dev.Durable()
			}
		}
		n := 0
		for c := range log.Cuts(Modes, 3) {
			n++
			got := c.Bytes()
			rd := make([]byte, len(got))
			c.ReadAt(rd[:100], 5)
			c.ReadAt(rd[100:], 100)
			if !bytes.Equal(rd[100:], got[100:]) || !bytes.Equal(rd[:100], got[5:105]) {
				t.Fatalf("seed %d cut %d %v: ReadAt differs from Bytes", seed, c.K, c.Mode)
			}
			keep, drop := ref[[2]int{c.K, int(memdev.KeepUnflushed)}], ref[[2]int{c.K, int(memdev.DropUnflushed)}]
			switch c.Mode {
			case Keep:
				if !bytes.Equal(got, keep) {
					t.Fatalf("seed %d cut %d: kept media differs from the crashing device's", seed, c.K)
				}
			case Drop:
				if !bytes.Equal(got, drop) {
					t.Fatalf("seed %d cut %d: dropped media differs from the crashing device's", seed, c.K)
				}
			default:
				for s := 0; s < len(got); s += 512 {
					g := got[s : s+512]
					if !bytes.Equal(g, keep[s:s+512]) && !bytes.Equal(g, drop[s:s+512]) && !written(log, c.K, s, g) {
						t.Fatalf("seed %d cut %d %v: sector %d holds what no write put there", seed, c.K, c.Mode, s/512)
					}
				}
			}
			// The commits: 0 or 1 returned, by operation counts.
			want := "initial"
			for _, cm := range log.commits {
				if cm.last < c.K {
					want = ""
				}
			}
			if want == "initial" && c.Committed != "initial" || want == "" && c.Committed == "initial" {
				t.Fatalf("seed %d cut %d: committed state %v", seed, c.K, c.Committed)
			}
			in := false
			for _, cm := range log.commits {
				if cm.first <= c.K && c.K <= cm.last {
					in = true
					if !c.HasInflight || c.Inflight != cm.state {
						t.Fatalf("seed %d cut %d: in flight %v, want %v", seed, c.K, c.Inflight, cm.state)
					}
				}
			}
			if in != c.HasInflight {
				t.Fatalf("seed %d cut %d: HasInflight %v", seed, c.K, c.HasInflight)
			}
		}
		if n != log.Ops()*(2+3+3) {
			t.Fatalf("%d cuts of %d operations", n, log.Ops())
		}
	}
}

// written reports whether some write before operation k put data at
// sector offset s.
func written(l *Log, k, s int, data []byte) bool {
	for _, o := range l.ops[:k-1] {
		if !o.flush && int64(s) >= o.off && int64(s)+512 <= o.off+int64(len(o.data)) && bytes.Equal(o.data[int64(s)-o.off:int64(s)-o.off+512], data) {
			return true
		}
	}
	return false
}
