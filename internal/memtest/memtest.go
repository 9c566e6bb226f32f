// Package memtest measures the memory a piece of code or a process uses,
// so that tests can hold it to a bound: the heap a library call allocates,
// and the peak resident set of a process (which a test binary run as a
// command reports about itself).
package memtest

import (
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Usage is what Measure observed.
type Usage struct {
	// Allocated is the number of heap bytes allocated while fn ran
	// (runtime.MemStats.TotalAlloc before and after): an upper bound on
	// how much the live heap can have grown, however briefly.
	Allocated uint64
	// Peak is the largest live heap (bytes in heap objects) a sampler saw
	// every millisecond while fn ran, above what was live before.
	Peak uint64
}

func (u Usage) String() string {
	return fmt.Sprintf("%.1f MiB allocated, peak live heap +%.1f MiB", float64(u.Allocated)/(1<<20), float64(u.Peak)/(1<<20))
}

const heapObjects = "/memory/classes/heap/objects:bytes"

func liveHeap(s []metrics.Sample) uint64 {
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Measure runs fn and reports the heap it used. Other goroutines of the
// test binary allocating at the same time are counted too, so tests that
// measure should not run in parallel.
func Measure(fn func()) Usage {
	runtime.GC()
	s := []metrics.Sample{{Name: heapObjects}}
	base := liveHeap(s)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: heapObjects}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			h := liveHeap(s)
			mu.Lock()
			peak = max(peak, h)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(done)
	wg.Wait()
	runtime.ReadMemStats(&after)
	u := Usage{Allocated: after.TotalAlloc - before.TotalAlloc}
	if peak > base {
		u.Peak = peak - base
	}
	return u
}

// Bound runs fn and fails the test if it allocated more than limit bytes
// (which bounds its peak heap too). It returns what was measured.
func Bound(t testing.TB, limit uint64, what string, fn func()) Usage {
	t.Helper()
	u := Measure(fn)
	t.Logf("%s: %v", what, u)
	if u.Allocated > limit {
		t.Errorf("%s: %v; the bound is %.1f MiB", what, u, float64(limit)/(1<<20))
	}
	return u
}

// SelfPeakRSS returns the peak resident set size, in bytes, of this
// process since it started (VmHWM of /proc/self/status; Linux only).
func SelfPeakRSS() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				n, err := strconv.ParseUint(f[0], 10, 64)
				return n * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
