package ls_test

import (
	"context"
	"os"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/ls"
)

// benchPool returns the shared benchmark pool's image.
func benchPool(b *testing.B) string {
	img, _ := genpool.BenchPool(b)
	return img
}

func TestMain(m *testing.M) {
	code := m.Run()
	genpool.BenchCleanup()
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
		if _, err := ls.List(context.Background(), p, ls.Options{Exclusive: true}); err != nil {
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
		if _, err := ls.List(context.Background(), p, ls.Options{Exclusive: true, Workers: 1}); err != nil {
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
