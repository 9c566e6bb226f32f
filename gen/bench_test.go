package gen_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
)

// bench10M is a pool of 10M mappings: ten thins of a million blocks (runs
// of 16 on average, a fifth of the span unmapped), ten snapshots in a
// random tree, 1% of both sides rewritten after each. Bulk-built, its
// metadata fits a 316 MB device (64k of its 77,150 blocks end up in use);
// written one mapping at a time its leaves are fuller only by half, and the
// device is sized by the estimate.
const bench10M = "thins=10 mappings=1000000 run-length=16 sparsity=0.2 snapshots=10 shape=tree rewrite=0.01"

// BenchmarkGenerate10M generates the 10M-mapping pool into a file, with
// the thins' initial trees bulk-built or written one mapping at a time.
// peak-RSS-MB is the process's peak resident set so far: run one
// sub-benchmark at a time (-bench Generate10M/bulk) for a clean figure.
//
//	go test ./gen -run - -bench Generate10M -benchtime 1x
func BenchmarkGenerate10M(b *testing.B) {
	for _, v := range []struct{ name, extra string }{{"bulk", " bulk=true metadata-blocks=77150"}, {"one-by-one", ""}} {
		b.Run(v.name, func(b *testing.B) {
			s, err := gen.ParseSpec(bench10M + v.extra)
			if err != nil {
				b.Fatal(err)
			}
			img := filepath.Join(b.TempDir(), "big.img")
			var rec *gen.Record
			for b.Loop() {
				if rec, err = gen.GenerateFile(img, s, 1); err != nil {
					b.Fatal(err)
				}
			}
			var mapped uint64
			for _, e := range rec.Events {
				if e.Kind == gen.Map {
					mapped += e.Len
				}
			}
			b.ReportMetric(float64(mapped)/1e6, "M-writes")
			var ru syscall.Rusage
			if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
				b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB")
			}
			os.Remove(img)
		})
	}
}
