package restore_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/thin/restore"
	"github.com/thinmeta/thinmeta/transaction"
)

// BenchmarkRestore restores the XML file named by THINMETA_BENCH_XML (e.g.
// the pool.xml bench/compare.sh generates), or else a generated pool of 10
// devices with 100,000 mappings each, into a sparse file.
func BenchmarkRestore(b *testing.B) {
	path := os.Getenv("THINMETA_BENCH_XML")
	if path == "" {
		rng := rand.New(rand.NewPCG(7, 7))
		p := genpool.Generate(rng, genpool.Spec{Devices: 10, MinMappings: 100000, MaxMappings: 100000,
			MeanRun: 4, Sparsity: 3, SnapshotFraction: 0.4, RewriteFraction: 0.2})
		var buf bytes.Buffer
		if err := p.WriteXML(&buf); err != nil {
			b.Fatal(err)
		}
		path = filepath.Join(b.TempDir(), "pool.xml")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	img := filepath.Join(b.TempDir(), "meta.img")
	size := st.Size()*2 + 64<<20
	b.SetBytes(st.Size())
	cpu0 := cpuTime()
	for b.Loop() {
		in, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(img)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			b.Fatal(err)
		}
		if _, err := restore.Restore(context.Background(), in, transaction.FileDevice{File: f}, size, restore.Options{}); err != nil {
			b.Fatal(err)
		}
		f.Close()
		in.Close()
	}
	// CPU time is what the code costs; wall time on a shared machine
	// also counts what other processes took.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

// cpuTime returns the user and system time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
