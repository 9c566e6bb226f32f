package rmap_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/progresstest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/rmap"
)

// A walk cancelled part way (here at the 20th read of the device) returns
// context.Canceled at once: each walking goroutine reads at most once
// more. Cancelled before it starts, nothing is read.
func TestCancel(t *testing.T) {
	model := genpool.Generate(rand.New(rand.NewPCG(3, 9)), genpool.Spec{Devices: 20, MinMappings: 20000, MaxMappings: 20000,
		MeanRun: 3, Sparsity: 2, SnapshotFraction: 0.3, RewriteFraction: 0.2})
	img, _ := genpool.Restore(t, model)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ra := &progresstest.ReaderAt{R: f}
	var once sync.Once
	ra.OnRead = func(n int64) {
		if n == 20 {
			once.Do(func() { cancel(); ra.Arm() })
		}
	}
	p, err := thin.NewPool(ra, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, p); !errors.Is(err, context.Canceled) {
		t.Fatalf("returned %v, want context.Canceled", err)
	}
	// The 20th read itself, then at most one per goroutine.
	if n, most := ra.After(), int64(1+runtime.GOMAXPROCS(0)); n > most {
		t.Errorf("%d reads after the cancellation, at most %d expected", n, most)
	}
	before := ra.Reads()
	if err := run(ctx, p); !errors.Is(err, context.Canceled) {
		t.Fatalf("under a cancelled context: %v", err)
	}
	if ra.Reads() != before {
		t.Errorf("%d reads under a cancelled context", ra.Reads()-before)
	}
}

func run(ctx context.Context, p *thin.Pool) error {
	_, err := rmap.Map(ctx, p, []rmap.Region{{Begin: 0, End: 1 << 40}})
	return err
}
