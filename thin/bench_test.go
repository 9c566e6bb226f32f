package thin_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin"
)

// BenchmarkIncrementalMap maps random virtual blocks into a thin device
// whose tree is shared with 10 snapshots, committing every 10,000 mappings,
// on a metadata file (so the commits' fdatasyncs are included). It reports
// mappings per second and metadata blocks written per mapping. The issue's
// size is -benchtime=1000000x.
func BenchmarkIncrementalMap(b *testing.B) {
	b.Run("device=file", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "meta.img")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Truncate(1 << 30)
		f.Close()
		md, err := thin.CreateMetadata(path, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 4 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer md.Close()
		incrementalMap(b, md)
	})
	// In memory: what the CPU allows when the device's flushes cost nothing.
	b.Run("device=memory", func(b *testing.B) {
		dev := memdev.New(1 << 30)
		md, err := thin.Format(dev, dev.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 4 << 20})
		if err != nil {
			b.Fatal(err)
		}
		incrementalMap(b, md)
	})
}

func incrementalMap(b *testing.B, md *thin.Metadata) {
	const virtual = 1 << 24
	rng := rand.New(rand.NewPCG(1, 2))
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(md.CreateThin(0))
	for i := range 100000 {
		_, err := md.Map(0, uint64(i)*97%virtual)
		must(err)
	}
	for s := uint64(1); s <= 10; s++ {
		must(md.CreateSnapshot(s, 0))
	}
	must(md.Commit())
	w0 := md.Manager().BlocksWritten()
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	for i := range b.N {
		if _, err := md.Map(0, rng.Uint64N(virtual)); err != nil {
			b.Fatal(err)
		}
		if i%10000 == 9999 {
			must(md.Commit())
		}
	}
	must(md.Commit())
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)/el.Seconds(), "mappings/s")
	// CPU time is steadier than wall time on a shared machine.
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "mappings/cpu-s")
	b.ReportMetric(float64(md.Manager().BlocksWritten()-w0)/float64(b.N), "blocks-written/mapping")
}

// cpuTime returns the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
