package delta_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/delta"
)

// benchPool returns the shared benchmark pool's image and model.
func benchPool(b *testing.B) (string, *genpool.Pool) { return genpool.BenchPool(b) }

func TestMain(m *testing.M) {
	code := m.Run()
	genpool.BenchCleanup()
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
		d, err := delta.Compare(context.Background(), p, l, r)
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
