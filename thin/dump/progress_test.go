package dump_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/progresstest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// progressPool restores a pool of 400,000 mappings over 20 devices with
// thin_restore 0.9.0 and opens it through a read counter.
func progressPool(t *testing.T) (*genpool.Pool, *progresstest.ReaderAt, *thin.Pool) {
	t.Helper()
	model := genpool.Generate(rand.New(rand.NewPCG(3, 9)), genpool.Spec{Devices: 20, MinMappings: 20000, MaxMappings: 20000,
		MeanRun: 3, Sparsity: 2, SnapshotFraction: 0.3, RewriteFraction: 0.2})
	img, _ := genpool.Restore(t, model)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	ra := &progresstest.ReaderAt{R: f}
	p, err := thin.NewPool(ra, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return model, ra, p
}

// Progress counts the mappings written: Total is the model's count of
// mappings, reached at the end, in both generations' forms.
func TestDumpProgress(t *testing.T) {
	model, _, p := progressPool(t)
	for _, c := range []dump.Compat{dump.Compat090, dump.Compat110} {
		rec := progresstest.NewRecorder(t)
		if err := dump.Dump(context.Background(), io.Discard, p, dump.Options{Compat: c, Progress: rec.Func()}); err != nil {
			t.Fatal(err)
		}
		rec.CheckComplete(t, uint64(model.TotalMappings()))
	}
}

// A cancelled dump returns context.Canceled at once: each of the walking
// goroutines reads at most once more, and nothing is reported after.
func TestDumpCancel(t *testing.T) {
	model, ra, p := progressPool(t)
	total := uint64(model.TotalMappings())
	for _, c := range []dump.Compat{dump.Compat090, dump.Compat110} {
		rec := progresstest.NewRecorder(t)
		var cancelled time.Time
		var base int64
		ctx := rec.CancelWhen(t, func(pr thin.Progress) bool { return pr.Done >= total/3 },
			func() { ra.Arm(); base = ra.After(); cancelled = time.Now() })
		err := dump.Dump(ctx, io.Discard, p, dump.Options{Compat: c, Progress: rec.Func()})
		took := time.Since(cancelled)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("dump returned %v, want context.Canceled", err)
		}
		if n, most := ra.After()-base, int64(runtime.GOMAXPROCS(0)); n > most {
			t.Errorf("%d reads after the cancellation, at most %d expected", n, most)
		}
		t.Logf("compat %d: returned %v after the cancellation", c, took)
		if took > 100*time.Millisecond {
			t.Errorf("returned %v after the cancellation", took)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := dump.Dump(ctx, io.Discard, p, dump.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("dump under a cancelled context: %v", err)
	}
}
