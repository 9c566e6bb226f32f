package ls_test

import (
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/ls"
)

// benchSpec makes a pool of about a million mappings over 50 devices, half
// of them snapshots sharing most of their origin's blocks.
var benchSpec = genpool.Spec{Devices: 50, MinMappings: 10000, MaxMappings: 30000, MeanRun: 4, Sparsity: 3, SnapshotFraction: 0.5, RewriteFraction: 0.1}

var (
	benchOnce sync.Once
	benchImg  string
	benchDir  string
)

// benchPool restores the benchmark pool once per test binary.
func benchPool(b *testing.B) string {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "thinmeta-ls-bench")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = dir
		p := genpool.Generate(rand.New(rand.NewPCG(7, 7)), benchSpec)
		b.Logf("benchmark pool: %d devices, %d mappings", len(p.Devices), p.TotalMappings())
		img, _ := genpool.Restore(&keep{b, dir}, p)
		benchImg = img
	})
	if benchImg == "" {
		b.Fatal("no benchmark pool")
	}
	return benchImg
}

// keep is a testing.TB whose TempDir outlives the benchmark that made it,
// so later benchmarks reuse the pool.
type keep struct {
	testing.TB
	dir string
}

func (k *keep) TempDir() string { return k.dir }

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// BenchmarkList lists the benchmark pool with exclusive counts.
func BenchmarkList(b *testing.B) {
	img := benchPool(b)
	p, err := thin.Open(img, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		if _, err := ls.List(p, ls.Options{Exclusive: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListOneWorker is BenchmarkList on a single goroutine.
func BenchmarkListOneWorker(b *testing.B) {
	img := benchPool(b)
	p, err := thin.Open(img, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		if _, err := ls.List(p, ls.Options{Exclusive: true, Workers: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThinLs runs thin_ls 0.9.0 with an exclusive field on the same
// pool, for comparison.
func BenchmarkThinLs(b *testing.B) {
	img := benchPool(b)
	for b.Loop() {
		tptest.MustRun(b, "thin_ls", "-o", "DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS", img)
	}
}
