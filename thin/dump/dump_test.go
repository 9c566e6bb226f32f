package dump_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// ourDump dumps img with thinmeta; ok is false if the dump failed.
func ourDump(t *testing.T, img string, snap bool, opts dump.Options) (out []byte, ok bool) {
	t.Helper()
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
	var b bytes.Buffer
	err = dump.Dump(context.Background(), &b, view, opts)
	return b.Bytes(), err == nil
}

func compare(t *testing.T, img string, snap bool, opts dump.Options, args ...string) {
	t.Helper()
	if snap {
		args = append(args, "-m")
	}
	want := tptest.Run(t, "thin_dump", append(args, img)...)
	got, ok := ourDump(t, img, snap, opts)
	if ok != (want.Code == 0) {
		t.Fatalf("thin_dump %v: exit %d (%s); thinmeta ok=%v", args, want.Code, want.Stderr, ok)
	}
	if !bytes.Equal(got, want.Stdout) {
		t.Fatalf("thin_dump %v differs:\n%s", args, firstDiff(want.Stdout, got))
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
			return fmt.Sprintf("line %d:\n thin_dump: %s\n thinmeta:  %s", i+1, w, g)
		}
	}
	return "(same lines)"
}

// Every kernel-written fixture: our dump equals thin_dump's byte for byte,
// live and metadata-snapshot views, in both formats; where thin_dump fails,
// we fail too.
func TestDumpFixtures(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		t.Run(tptest.Name(f), func(t *testing.T) {
			img := tptest.Unpack(t, f)
			compare(t, img, false, dump.Options{})
			compare(t, img, true, dump.Options{})
			compare(t, img, false, dump.Options{Format: dump.HumanReadable}, "-f", "human_readable")
			compare(t, img, false, dump.Options{SkipMappings: true}, "--skip-mappings")
		})
	}
}

// Random pools restored by thin_restore: our dump equals thin_dump's.
func TestDumpGenerated(t *testing.T) {
	specs := []genpool.Spec{
		{Devices: 1, MinMappings: 0, MaxMappings: 0},
		{Devices: 3, MinMappings: 1, MaxMappings: 10, MeanRun: 1, Sparsity: 5},
		{Devices: 20, MinMappings: 0, MaxMappings: 400, MeanRun: 3, Sparsity: 3, SnapshotFraction: 0.3, RewriteFraction: 0.2},
		{Devices: 5, MinMappings: 20000, MaxMappings: 70000, MeanRun: 1, Sparsity: 2, SnapshotFraction: 0.5, RewriteFraction: 0.1},
		{Devices: 300, MinMappings: 0, MaxMappings: 30, MeanRun: 8, Sparsity: 100}, // several levels of details tree
		{Devices: 2, MinMappings: 100000, MaxMappings: 100000, MeanRun: 50, Sparsity: 0},
	}
	for i, spec := range specs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			p := genpool.Generate(rng, spec)
			img, _ := genpool.Restore(t, p)
			compare(t, img, false, dump.Options{})
			id := uint64(p.Devices[len(p.Devices)/2].ID)
			compare(t, img, false, dump.Options{DevIDs: []uint64{id}}, "--dev-id", fmt.Sprint(id))
			compare(t, img, false, dump.Options{Format: dump.HumanReadable}, "--format", "human_readable")
		})
	}
}
