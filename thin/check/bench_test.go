package check_test

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/thin/check"
)

// BenchmarkCheck checks a whole pool. The pool is the image named by
// THINMETA_BENCH_IMAGE (e.g. bench/out/pool.img from bench/compare.sh), or
// else a generated pool of 10 devices with 100,000 mappings each, restored
// by thin_restore.
func BenchmarkCheck(b *testing.B) {
	img := os.Getenv("THINMETA_BENCH_IMAGE")
	if img == "" {
		rng := rand.New(rand.NewPCG(7, 7))
		p := genpool.Generate(rng, genpool.Spec{Devices: 10, MinMappings: 100000, MaxMappings: 100000,
			MeanRun: 4, Sparsity: 3, SnapshotFraction: 0.4, RewriteFraction: 0.2})
		img, _ = genpool.Restore(b, p)
	}
	f, err := os.Open(img)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	b.ResetTimer()
	for b.Loop() {
		sum, _ := check.Device(context.Background(), f, st.Size(), check.Options{}, nil)
		if !sum.OK(false) {
			b.Fatalf("%+v", sum)
		}
	}
}
