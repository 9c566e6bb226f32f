package rmap_test

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/rmap"
)

// benchPool returns the image to benchmark: the one named by
// THINMETA_BENCH_IMAGE (e.g. bench/compare.sh's pool.img), or else the
// shared generated benchmark pool.
func benchPool(b *testing.B) string {
	if img := os.Getenv("THINMETA_BENCH_IMAGE"); img != "" {
		return img
	}
	img, _ := genpool.BenchPool(b)
	return img
}

func TestMain(m *testing.M) {
	code := m.Run()
	genpool.BenchCleanup()
	os.Exit(code)
}

var wholeDevice = []rmap.Region{{Begin: 0, End: 1 << 40}}

// BenchmarkMap maps the whole data device of the benchmark pool back.
func BenchmarkMap(b *testing.B) {
	img := benchPool(b)
	p, err := thin.Open(img, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		es, err := rmap.Map(context.Background(), p, wholeDevice)
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
	img := benchPool(b)
	for b.Loop() {
		tptest.MustRun(b, "thin_rmap", "--region", "0..1099511627776", img)
	}
}
