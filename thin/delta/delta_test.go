package delta_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/delta"
)

func ourDelta(t testing.TB, img string, snap, verbose bool, left, right uint64) ([]byte, bool) {
	p, err := thin.Open(img, &thin.OpenOptions{Shared: snap})
	if err != nil {
		return nil, false
	}
	defer p.Close()
	view := p
	if snap {
		if view, err = p.MetadataSnapshot(); err != nil {
			return nil, false
		}
	}
	d, err := delta.Compare(context.Background(), view, left, right)
	if err != nil {
		return nil, false
	}
	var b bytes.Buffer
	if err := d.WriteXML(&b, verbose); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), true
}

func compare(t *testing.T, img string, snap, verbose bool, left, right uint64) {
	t.Helper()
	args := []string{"--thin1", fmt.Sprint(left), "--snap2", fmt.Sprint(right)}
	if snap {
		args = append(args, "-m")
	}
	if verbose {
		args = append(args, "--verbose")
	}
	want := tptest.Run(t, "thin_delta", append(args, img)...)
	got, ok := ourDelta(t, img, snap, verbose, left, right)
	if ok != (want.Code == 0) {
		t.Fatalf("thin_delta %v: exit %d (%s); thinmeta ok=%v", args, want.Code, firstLine(want.Stderr), ok)
	}
	if !bytes.Equal(got, want.Stdout) {
		t.Fatalf("thin_delta %v differs:\n%s", args, firstDiff(want.Stdout, got))
	}
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
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
			return fmt.Sprintf("line %d of %d/%d:\n thin_delta: %s\n thinmeta:   %s", i+1, len(wl), len(gl), w, g)
		}
	}
	return "(same lines)"
}

// Every fixture, live and metadata-snapshot views, terse and verbose:
// origin against snapshots, snapshots against each other, a device against
// itself, and missing devices.
func TestCompareFixtures(t *testing.T) {
	pairs := [][2]uint64{{1, 2}, {2, 1}, {1, 1}, {1, 10}, {4, 9}, {2, 3}, {1, 7}, {99, 1}}
	for _, f := range tptest.Fixtures(t) {
		t.Run(tptest.Name(f), func(t *testing.T) {
			img := tptest.Unpack(t, f)
			for _, snap := range []bool{false, true} {
				for _, verbose := range []bool{false, true} {
					for _, pr := range pairs {
						compare(t, img, snap, verbose, pr[0], pr[1])
					}
				}
			}
		})
	}
}

// Random pools restored by thin_restore, with many snapshots sharing (and
// rewriting) their origins' blocks, and devices left empty.
func TestCompareGenerated(t *testing.T) {
	specs := []genpool.Spec{
		{Devices: 2, MinMappings: 0, MaxMappings: 0},
		{Devices: 3, MinMappings: 1, MaxMappings: 10, MeanRun: 1, Sparsity: 5, SnapshotFraction: 0.5, RewriteFraction: 0.5},
		{Devices: 20, MinMappings: 0, MaxMappings: 400, MeanRun: 3, Sparsity: 3, SnapshotFraction: 0.5, RewriteFraction: 0.2},
		{Devices: 8, MinMappings: 20000, MaxMappings: 70000, MeanRun: 1, Sparsity: 2, SnapshotFraction: 0.6, RewriteFraction: 0.1},
		{Devices: 6, MinMappings: 50000, MaxMappings: 100000, MeanRun: 40, Sparsity: 0, SnapshotFraction: 0.8, RewriteFraction: 0.01},
	}
	for i, spec := range specs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 13))
			p := genpool.Generate(rng, spec)
			img, _ := genpool.Restore(t, p)
			ids := make([]uint64, len(p.Devices))
			for k, d := range p.Devices {
				ids[k] = uint64(d.ID)
			}
			for k := 0; k < 6; k++ {
				l, r := ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]
				compare(t, img, false, k%2 == 1, l, r)
			}
			compare(t, img, false, false, ids[0], ids[len(ids)-1])
			compare(t, img, false, true, ids[len(ids)-1], ids[0])
		})
	}
}
