package rmap_test

import (
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/rmap"
)

// benchSpec makes a pool of about a million mappings over 50 devices, half
// of them snapshots sharing most of their origin's blocks (the pool of
// thin/ls's benchmarks).
var benchSpec = genpool.Spec{Devices: 50, MinMappings: 10000, MaxMappings: 30000, MeanRun: 4, Sparsity: 3, SnapshotFraction: 0.5, RewriteFraction: 0.1}

var (
	benchOnce sync.Once
	benchImg  string
	benchGen  *genpool.Pool
	benchDir  string
)

// benchPool restores the benchmark pool once per test binary.
func benchPool(b *testing.B) (string, *genpool.Pool) {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "thinmeta-bench")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = dir
		p := genpool.Generate(rand.New(rand.NewPCG(7, 7)), benchSpec)
		img, _ := genpool.Restore(&keep{b, dir}, p)
		benchImg, benchGen = img, p
	})
	if benchImg == "" {
		b.Fatal("no benchmark pool")
	}
	return benchImg, benchGen
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

var wholeDevice = []rmap.Region{{Begin: 0, End: 1 << 40}}

// BenchmarkMap maps the whole data device of the benchmark pool back.
func BenchmarkMap(b *testing.B) {
	img, _ := benchPool(b)
	p, err := thin.Open(img, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		es, err := rmap.Map(p, wholeDevice)
		if err != nil {
			b.Fatal(err)
		}
		if err := rmap.Write(io.Discard, es); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThinRmap runs thin_rmap 0.9.0 on the same pool and region.
func BenchmarkThinRmap(b *testing.B) {
	img, _ := benchPool(b)
	for b.Loop() {
		tptest.MustRun(b, "thin_rmap", "--region", "0..1099511627776", img)
	}
}
