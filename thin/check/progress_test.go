package check_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/progresstest"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

// progressPool is a pool of 400,000 mappings over 20 devices (some
// snapshots), restored by thin_restore 0.9.0.
func progressPool(t *testing.T) (*os.File, int64) {
	t.Helper()
	p := genpool.Generate(rand.New(rand.NewPCG(3, 9)), genpool.Spec{Devices: 20, MinMappings: 20000, MaxMappings: 20000,
		MeanRun: 3, Sparsity: 2, SnapshotFraction: 0.3, RewriteFraction: 0.2})
	img, _ := genpool.Restore(t, p)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	return f, st.Size()
}

func TestCheckProgress(t *testing.T) {
	f, size := progressPool(t)
	// The oracle for Total, the allocated metadata blocks: thin_check
	// 1.1.0 prints nr_blocks - nr_allocated of the metadata space map,
	// which covers the whole device here (thin_restore sizes it so).
	out := tptest.MustRunGen(t, tptest.V110, "thin_check", f.Name()).Stdout
	i := bytes.Index(out, []byte("METADATA_FREE_BLOCKS="))
	if i < 0 {
		t.Fatalf("no METADATA_FREE_BLOCKS in thin_check 1.1.0's output %q", out)
	}
	free, err := strconv.ParseUint(string(bytes.Fields(out[i+len("METADATA_FREE_BLOCKS="):])[0]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(size)/4096 - free

	rec := progresstest.NewRecorder(t)
	sum, err := check.Device(context.Background(), f, size, check.Options{Progress: rec.Func()}, nil)
	if err != nil || !sum.OK(false) {
		t.Fatalf("check: %+v, %v", sum, err)
	}
	rec.CheckComplete(t, want)
	// Every allocated block but the superblock (read when the pool is
	// opened) is read once: the count is exact, so the report before the
	// final one is within a step of the total.
	rs := rec.Reports()
	if len(rs) < 2 || want-rs[len(rs)-2].Done > (want+999)/1000+1 {
		t.Errorf("the final report jumps from %d to %d", rs[len(rs)-2].Done, want)
	}
	if rs[0].Phase != "walk" || rs[len(rs)-1].Phase != "space maps" {
		t.Errorf("phases %q ... %q, want walk ... space maps", rs[0].Phase, rs[len(rs)-1].Phase)
	}
}

// A cancelled check returns context.Canceled at once, in either phase:
// at most one more read of the device, and no report or finding after
// the cancellation.
func TestCheckCancel(t *testing.T) {
	f, size := progressPool(t)
	for _, phase := range []string{"walk", "space maps"} {
		t.Run(phase, func(t *testing.T) {
			ra := &progresstest.ReaderAt{R: f}
			rec := progresstest.NewRecorder(t)
			var cancelled time.Time
			ctx := rec.CancelWhen(t, func(p thin.Progress) bool { return p.Phase == phase && p.Done >= 100 },
				func() { ra.Arm(); cancelled = time.Now() })
			findings := 0
			sum, err := check.Device(ctx, ra, size, check.Options{Progress: rec.Func()}, func(fd check.Finding) {
				findings++
			})
			took := time.Since(cancelled)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("check returned %v (%+v), want context.Canceled", err, sum)
			}
			if cancelled.IsZero() {
				t.Fatal("never cancelled")
			}
			if n := ra.After(); n > 1 {
				t.Errorf("%d reads after the cancellation, at most 1 expected", n)
			}
			if findings != 0 || sum.Fatal != 0 || sum.NonFatal != 0 {
				t.Errorf("findings on a sound pool: %d, %+v", findings, sum)
			}
			t.Logf("returned %v after the cancellation", took)
			if took > 100*time.Millisecond {
				t.Errorf("returned %v after the cancellation", took)
			}
		})
	}
	// Cancelled before it starts: nothing is read.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ra := &progresstest.ReaderAt{R: f}
	ra.Arm()
	if _, err := check.Device(ctx, ra, size, check.Options{}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("check under a cancelled context: %v", err)
	}
	if ra.After() != 0 {
		t.Errorf("%d reads under a cancelled context", ra.After())
	}
}
