package rmap_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/rmap"
)

func ourRmap(t testing.TB, img string, regions []rmap.Region) ([]byte, bool) {
	p, err := thin.Open(img, nil)
	if err != nil {
		return nil, false
	}
	defer p.Close()
	es, err := rmap.Map(context.Background(), p, regions)
	if err != nil {
		return nil, false
	}
	var b bytes.Buffer
	if err := rmap.Write(&b, es); err != nil {
		t.Fatal(err)
	}
	// WriteMap prints the same, whatever the size of its chunks.
	defer rmap.SetChunkBits(2)()
	var w bytes.Buffer
	if err := rmap.WriteMap(context.Background(), &w, p, regions); err != nil {
		t.Fatalf("WriteMap: %v (Map succeeded)", err)
	}
	if !bytes.Equal(w.Bytes(), b.Bytes()) {
		t.Fatalf("WriteMap with chunks of 4 entries differs from Map and Write:\n%s", firstDiff(b.Bytes(), w.Bytes()))
	}
	return b.Bytes(), true
}

func compare(t *testing.T, img string, regions ...rmap.Region) {
	t.Helper()
	var args []string
	for _, r := range regions {
		args = append(args, "--region", fmt.Sprintf("%d..%d", r.Begin, r.End))
	}
	want := tptest.Run(t, "thin_rmap", append(args, img)...)
	got, ok := ourRmap(t, img, regions)
	if ok != (want.Code == 0) {
		t.Fatalf("thin_rmap %v: exit %d (%s); thinmeta ok=%v", args, want.Code, bytes.TrimSpace(want.Stderr), ok)
	}
	if !bytes.Equal(got, want.Stdout) {
		t.Fatalf("thin_rmap %v differs:\n%s", args, firstDiff(want.Stdout, got))
	}
}

func firstDiff(want, got []byte) string {
	wl, gl := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if !bytes.Equal(w, g) {
			return fmt.Sprintf("line %d of %d/%d:\n thin_rmap: %s\n thinmeta:  %s", i+1, len(wl), len(gl), w, g)
		}
	}
	return "(same lines)"
}

// Every fixture: whole data device, pieces, overlapping and empty
// regions. The fixtures have snapshots sharing nodes with their origins,
// which thin_rmap reports under the first device only.
func TestMapFixtures(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		t.Run(tptest.Name(f), func(t *testing.T) {
			img := tptest.Unpack(t, f)
			compare(t, img, rmap.Region{Begin: 0, End: 1 << 40})
			compare(t, img, rmap.Region{Begin: 0, End: 1000})
			compare(t, img, rmap.Region{Begin: 5, End: 7}, rmap.Region{Begin: 100, End: 2000}, rmap.Region{Begin: 1500, End: 2500})
			compare(t, img, rmap.Region{Begin: 1 << 30, End: 1<<30 + 10})
			compare(t, img, rmap.Region{Begin: 3, End: 4}, rmap.Region{Begin: 4, End: 9}, rmap.Region{Begin: 10000, End: 10100})
		})
	}
}

// Random pools restored by thin_restore.
func TestMapGenerated(t *testing.T) {
	specs := []genpool.Spec{
		{Devices: 1, MinMappings: 0, MaxMappings: 0},
		{Devices: 3, MinMappings: 1, MaxMappings: 10, MeanRun: 1, Sparsity: 5},
		{Devices: 20, MinMappings: 0, MaxMappings: 400, MeanRun: 3, Sparsity: 3, SnapshotFraction: 0.3, RewriteFraction: 0.2},
		{Devices: 8, MinMappings: 20000, MaxMappings: 70000, MeanRun: 1, Sparsity: 2, SnapshotFraction: 0.6, RewriteFraction: 0.1},
		{Devices: 300, MinMappings: 0, MaxMappings: 30, MeanRun: 8, Sparsity: 100, SnapshotFraction: 0.5, RewriteFraction: 0.5},
		{Devices: 40, MinMappings: 1000, MaxMappings: 5000, MeanRun: 20, Sparsity: 1, SnapshotFraction: 0.9, RewriteFraction: 0.01},
	}
	for i, spec := range specs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			p := genpool.Generate(rng, spec)
			img, _ := genpool.Restore(t, p)
			n := p.NrDataBlocks
			compare(t, img, rmap.Region{Begin: 0, End: n})
			compare(t, img, rmap.Region{Begin: n / 3, End: n/3 + 50}, rmap.Region{Begin: n / 2, End: n})
			compare(t, img, rmap.Region{Begin: n + 5, End: n + 100})
			for k := 0; k < 3; k++ {
				var rs []rmap.Region
				for range 1 + rng.IntN(4) {
					b := rng.Uint64N(n + 1)
					rs = append(rs, rmap.Region{Begin: b, End: b + 1 + rng.Uint64N(n/4+1)})
				}
				compare(t, img, rs...)
			}
		})
	}
}

func TestParseRegion(t *testing.T) {
	good := map[string]rmap.Region{
		"5..45":                   {5, 45},
		" 5.. 45xyz":              {5, 45},
		"+1..2":                   {1, 2},
		"0..18446744073709551615": {0, 1<<64 - 1},
	}
	for s, want := range good {
		got, err := rmap.ParseRegion(s)
		if err != nil || got != want {
			t.Errorf("ParseRegion(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "5", "5.", "5 ..6", "..6", "5..", "5..x", "6..5", "5..5", "0..18446744073709551616", "a..b"} {
		if r, err := rmap.ParseRegion(s); err == nil {
			t.Errorf("ParseRegion(%q) = %v, want error", s, r)
		}
	}
}
