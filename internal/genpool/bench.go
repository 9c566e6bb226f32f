package genpool

import (
	"math/rand/v2"
	"os"
	"sync"
	"testing"
)

// BenchSpec is the shared benchmark pool of the query packages: about a
// million mappings over 50 devices, half of them snapshots sharing most of
// their origin's blocks.
var BenchSpec = Spec{Devices: 50, MinMappings: 10000, MaxMappings: 30000, MeanRun: 4, Sparsity: 3, SnapshotFraction: 0.5, RewriteFraction: 0.1}

var bench struct {
	once sync.Once
	img  string
	pool *Pool
	dir  string
}

// BenchPool restores the BenchSpec pool (seed 7) with thin_restore once
// per test binary and returns its image and model. Call BenchCleanup from
// TestMain to remove it.
func BenchPool(b testing.TB) (string, *Pool) {
	bench.once.Do(func() {
		dir, err := os.MkdirTemp("", "thinmeta-bench")
		if err != nil {
			b.Fatal(err)
		}
		bench.dir = dir
		p := Generate(rand.New(rand.NewPCG(7, 7)), BenchSpec)
		img, _ := Restore(&keep{b, dir}, p)
		bench.img, bench.pool = img, p
	})
	if bench.img == "" {
		b.Fatal("no benchmark pool")
	}
	return bench.img, bench.pool
}

// BenchCleanup removes the pool BenchPool made, if any.
func BenchCleanup() {
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
}

// keep is a testing.TB whose TempDir outlives the benchmark that made it,
// so later benchmarks reuse the pool.
type keep struct {
	testing.TB
	dir string
}

func (k *keep) TempDir() string { return k.dir }
