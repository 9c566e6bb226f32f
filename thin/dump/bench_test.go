package dump_test

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// BenchmarkDump dumps a pool as XML to io.Discard. The pool is the image
// named by THINMETA_BENCH_IMAGE (e.g. bench/out/pool.img from
// bench/compare.sh), or else a generated pool of 10 devices with 100,000
// mappings each restored by thin_restore.
func BenchmarkDump(b *testing.B) { benchmarkDump(b, dump.Options{}) }

// BenchmarkDump110 is BenchmarkDump in thin_dump 1.1.0's form.
func BenchmarkDump110(b *testing.B) { benchmarkDump(b, dump.Options{Compat: dump.Compat110}) }

func benchmarkDump(b *testing.B, opts dump.Options) {
	img := os.Getenv("THINMETA_BENCH_IMAGE")
	if img == "" {
		rng := rand.New(rand.NewPCG(7, 7))
		p := genpool.Generate(rng, genpool.Spec{Devices: 10, MinMappings: 100000, MaxMappings: 100000,
			MeanRun: 4, Sparsity: 3, SnapshotFraction: 0.4, RewriteFraction: 0.2})
		img, _ = genpool.Restore(b, p)
	}
	p, err := thin.Open(img, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	st, _ := os.Stat(img)
	b.SetBytes(st.Size())
	b.ResetTimer()
	for b.Loop() {
		if err := dump.Dump(context.Background(), io.Discard, p, opts); err != nil {
			b.Fatal(err)
		}
	}
}
