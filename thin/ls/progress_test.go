package ls_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/progresstest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/ls"
)

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

// With exclusive counts, progress counts the mappings of both walks:
// twice the model's mappings; without, one report of the devices.
func TestListProgress(t *testing.T) {
	model, _, p := progressPool(t)
	rec := progresstest.NewRecorder(t)
	if _, err := ls.List(context.Background(), p, ls.Options{Exclusive: true, Progress: rec.Func()}); err != nil {
		t.Fatal(err)
	}
	rec.CheckComplete(t, 2*uint64(model.TotalMappings()))
	rec = progresstest.NewRecorder(t)
	if _, err := ls.List(context.Background(), p, ls.Options{Progress: rec.Func()}); err != nil {
		t.Fatal(err)
	}
	rec.CheckComplete(t, uint64(len(model.Devices)))
}

func TestListCancel(t *testing.T) {
	model, ra, p := progressPool(t)
	total := 2 * uint64(model.TotalMappings())
	for _, at := range []uint64{total / 4, total * 3 / 4} { // in each walk
		rec := progresstest.NewRecorder(t)
		var cancelled time.Time
		var ra2 int64
		ctx := rec.CancelWhen(t, func(pr thin.Progress) bool { return pr.Done >= at },
			func() { ra.Arm(); ra2 = ra.After(); cancelled = time.Now() })
		rep, err := ls.List(ctx, p, ls.Options{Exclusive: true, Progress: rec.Func()})
		took := time.Since(cancelled)
		if !errors.Is(err, context.Canceled) || rep != nil {
			t.Fatalf("ls returned %v, %v; want nil, context.Canceled", rep, err)
		}
		if n, most := ra.After()-ra2, int64(runtime.GOMAXPROCS(0)); n > most {
			t.Errorf("%d reads after the cancellation, at most %d expected", n, most)
		}
		t.Logf("returned %v after the cancellation", took)
		if took > 100*time.Millisecond {
			t.Errorf("returned %v after the cancellation", took)
		}
	}
}
