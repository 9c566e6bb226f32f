package thin_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin"
	"pgregory.net/rapid"
)

// kernelReserve is what the kernel keeps back of a metadata device of n
// blocks: min(4096, n/10) (dm-thin-metadata.c, __set_metadata_reserve).
func kernelReserve(n uint64) uint64 { return min(4096, n/10) }

// fill is a way of writing a pool's mappings.
type fill struct {
	nrData uint64
	counts []uint64 // mappings per thin; they sum to at most nrData
	order  string   // "thin by thin", "round robin" or "random"
	spread bool     // virtual blocks far apart (else 0, 1, 2, ...)
	batch  int      // mappings per transaction
	seed   uint64
}

// run formats a pool of metaBlocks blocks and writes f's mappings, each to
// its own data block, committing every f.batch mappings. It returns the
// metadata blocks in use at the end.
func (f fill) run(metaBlocks uint64) (uint64, error) {
	size := int64(metaBlocks) * 4096
	m, err := thin.Format(memdev.New(size), size, &thin.FormatOptions{NrDataBlocks: f.nrData})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	type mapping struct{ id, v uint64 }
	var ms []mapping
	rng := rand.New(rand.NewPCG(f.seed, 1))
	for id, n := range f.counts {
		if err := m.CreateThin(uint64(id)); err != nil {
			return 0, err
		}
		for v := range n {
			if f.spread {
				v = v*1000 + rng.Uint64N(1000)
			}
			ms = append(ms, mapping{uint64(id), v})
		}
	}
	switch f.order {
	case "round robin":
		var rr []mapping
		next := make([]int, len(f.counts))
		start := make([]int, len(f.counts))
		for i := 1; i < len(f.counts); i++ {
			start[i] = start[i-1] + int(f.counts[i-1])
		}
		for len(rr) < len(ms) {
			for id := range f.counts {
				if next[id] < int(f.counts[id]) {
					rr = append(rr, ms[start[id]+next[id]])
					next[id]++
				}
			}
		}
		ms = rr
	case "random":
		rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	}
	for i, mp := range ms {
		if err := m.MapTo(mp.id, mp.v, uint64(i)); err != nil {
			return 0, err
		}
		if (i+1)%f.batch == 0 {
			if err := m.Commit(); err != nil {
				return 0, err
			}
		}
	}
	if err := m.Commit(); err != nil {
		return 0, err
	}
	return m.MetadataSpaceMap().NrAllocated(), nil
}

// A pool filled as estimated fits: all its data blocks mapped over at most
// the estimated number of thins, spread over them in any way (rapid draws
// the spread, including the worst: trees of 253 mappings, two leaves and
// a root each), in any order, committed in batches of up to 64 mappings,
// fits in the estimated metadata device less the kernel's reserve.
func TestEstimateMetadataBlocksFits(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		nrData := rapid.Uint64Range(1, 12000).Draw(rt, "nrData")
		thins := rapid.IntRange(1, 48).Draw(rt, "thins")
		counts := make([]uint64, thins)
		left := nrData
		switch rapid.SampledFrom([]string{"even", "one", "253 each", "random"}).Draw(rt, "spread") {
		case "even":
			for i := range counts {
				counts[i] = nrData / uint64(thins)
			}
		case "one":
			counts[0] = nrData
		case "253 each":
			for i := range counts {
				counts[i] = min(253, left)
				left -= counts[i]
			}
		case "random":
			for i := range counts {
				counts[i] = rapid.Uint64Range(0, left).Draw(rt, "count")
				left -= counts[i]
			}
		}
		var total uint64
		for _, c := range counts {
			total += c
		}
		f := fill{nrData: nrData, counts: counts,
			order:  rapid.SampledFrom([]string{"thin by thin", "round robin", "random"}).Draw(rt, "order"),
			spread: rapid.Bool().Draw(rt, "spread"),
			batch:  rapid.IntRange(1, 64).Draw(rt, "batch") + int(total/400),
			seed:   rapid.Uint64().Draw(rt, "seed")}
		est, ok := thin.EstimateMetadataBlocks(nrData, uint64(thins))
		if !ok {
			rt.Fatalf("no estimate for %d data blocks", nrData)
		}
		if _, err := f.run(est - kernelReserve(est)); err != nil {
			rt.Fatalf("estimate %d blocks (%d usable): %v", est, est-kernelReserve(est), err)
		}
	})
}

// Large pools, where the estimate is tightest: every leaf written in order
// is left half full. How conservative the estimate is: the blocks used,
// and the usable estimate, are logged.
func TestEstimateMetadataBlocksLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("fills pools of up to 600,000 mappings")
	}
	for _, f := range []fill{
		{nrData: 600000, counts: []uint64{600000}, order: "thin by thin", batch: 1000},
		{nrData: 300000, counts: repeat(253, 1185), order: "thin by thin", batch: 1000},
		{nrData: 300000, counts: repeat(3000, 100), order: "random", batch: 200},
	} {
		var total uint64
		for _, c := range f.counts {
			total += c
		}
		est, _ := thin.EstimateMetadataBlocks(f.nrData, uint64(len(f.counts)))
		usable := est - kernelReserve(est)
		used, err := f.run(usable)
		if err != nil {
			t.Errorf("%d mappings over %d thins (%s): estimate %d blocks (%d usable): %v", total, len(f.counts), f.order, est, usable, err)
			continue
		}
		tool := 1 + divUp(f.nrData, 126) + uint64(len(f.counts)) // thin_metadata_size 1.1.0
		t.Logf("%d mappings over %d thins (%s): %d blocks used; estimate %d (%d usable, %.2fx); thin_metadata_size 1.1.0 says %d",
			total, len(f.counts), f.order, used, est, usable, float64(usable)/float64(used), tool)
	}
}

// thin_metadata_size's estimate (1.1.0's is the larger of the two
// generations') is too small for a pool filled in order: the leaves are
// half full, and the other structures are not counted. This is why
// EstimateMetadataBlocks is larger.
func TestToolEstimateTooSmall(t *testing.T) {
	f := fill{nrData: 100000, counts: []uint64{100000}, order: "thin by thin", batch: 1000}
	tool := 1 + divUp(f.nrData, 126) + 1
	if _, err := f.run(tool); !errors.Is(err, thin.ErrNoMetadataSpace) {
		t.Fatalf("a pool filled in order in thin_metadata_size 1.1.0's %d blocks: %v, want ErrNoMetadataSpace", tool, err)
	}
	// Nor does a small pool fit: the estimate leaves no room for the
	// space maps and trees every pool has.
	f = fill{nrData: 10, counts: []uint64{10}, order: "thin by thin", batch: 1}
	if _, err := f.run(1 + 1 + 1); err == nil {
		t.Fatal("a pool of 10 mappings fits in 3 blocks")
	}
}

func repeat(n uint64, k int) []uint64 {
	s := make([]uint64, k)
	for i := range s {
		s[i] = n
	}
	return s
}

func divUp(a, b uint64) uint64 { return (a + b - 1) / b }
