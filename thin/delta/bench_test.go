package delta_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/delta"
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

// benchPair returns the two largest devices of the pool.
func benchPair(p *genpool.Pool) (uint64, uint64) {
	devs := slices.Clone(p.Devices)
	slices.SortFunc(devs, func(a, b genpool.Device) int { return len(b.Mappings) - len(a.Mappings) })
	return uint64(devs[0].ID), uint64(devs[1].ID)
}

// BenchmarkCompare compares the two largest devices of the benchmark pool
// and writes the verbose XML.
func BenchmarkCompare(b *testing.B) {
	img, gp := benchPool(b)
	l, r := benchPair(gp)
	p, err := thin.Open(img, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		d, err := delta.Compare(p, l, r)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.WriteXML(io.Discard, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThinDelta runs thin_delta 0.9.0 on the same pool and devices.
func BenchmarkThinDelta(b *testing.B) {
	img, gp := benchPool(b)
	l, r := benchPair(gp)
	for b.Loop() {
		tptest.MustRun(b, "thin_delta", "--verbose", "--thin1", fmt.Sprint(l), "--thin2", fmt.Sprint(r), img)
	}
}
