package ls_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/ls"
)

// ourLs lists img with thinmeta; ok is false if it failed.
func ourLs(t testing.TB, img string, snap bool, fields []ls.Field, headers bool) (out []byte, ok bool) {
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
	rep, err := ls.List(context.Background(), view, ls.Options{Exclusive: slices.ContainsFunc(fields, ls.Field.NeedsExclusive)})
	if err != nil {
		return nil, false
	}
	var b bytes.Buffer
	if err := rep.Format(&b, fields, headers); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), true
}

func fieldList(fs []ls.Field) string {
	var names []string
	for _, f := range fs {
		names = append(names, f.String())
	}
	return strings.Join(names, ",")
}

// compare runs thin_ls and thinmeta on img and requires the same output,
// or both failing.
func compare(t *testing.T, img string, snap bool, fields []ls.Field, headers bool) {
	t.Helper()
	var args []string
	if snap {
		args = append(args, "-m")
	}
	if fields != nil {
		args = append(args, "-o", fieldList(fields))
	} else {
		fields = ls.DefaultFields
	}
	if !headers {
		args = append(args, "--no-headers")
	}
	want := tptest.Run(t, "thin_ls", append(args, img)...)
	got, ok := ourLs(t, img, snap, fields, headers)
	if ok != (want.Code == 0) {
		t.Fatalf("thin_ls %v: exit %d (%s); thinmeta ok=%v", args, want.Code, bytes.TrimSpace(want.Stderr), ok)
	}
	if !bytes.Equal(got, want.Stdout) {
		t.Fatalf("thin_ls %v differs:\n thin_ls:\n%s\n thinmeta:\n%s", args, want.Stdout, got)
	}
}

// Every kernel-written fixture, live and metadata-snapshot views, default
// and all fields, with and without headers: the same bytes as thin_ls, and
// failure exactly where thin_ls fails.
func TestListFixtures(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		t.Run(tptest.Name(f), func(t *testing.T) {
			img := tptest.Unpack(t, f)
			for _, snap := range []bool{false, true} {
				compare(t, img, snap, nil, true)
				compare(t, img, snap, ls.AllFields(), true)
				compare(t, img, snap, ls.AllFields(), false)
				compare(t, img, snap, []ls.Field{ls.SnapTime, ls.Shared, ls.DevID, ls.Shared}, false)
			}
		})
	}
}

var specs = []genpool.Spec{
	{Devices: 1, MinMappings: 0, MaxMappings: 0},
	{Devices: 3, MinMappings: 1, MaxMappings: 10, MeanRun: 1, Sparsity: 5},
	{Devices: 20, MinMappings: 0, MaxMappings: 400, MeanRun: 3, Sparsity: 3, SnapshotFraction: 0.3, RewriteFraction: 0.2},
	{Devices: 8, MinMappings: 20000, MaxMappings: 70000, MeanRun: 1, Sparsity: 2, SnapshotFraction: 0.6, RewriteFraction: 0.1},
	{Devices: 300, MinMappings: 0, MaxMappings: 30, MeanRun: 8, Sparsity: 100, SnapshotFraction: 0.5, RewriteFraction: 0.5},
	{Devices: 4, MinMappings: 100000, MaxMappings: 150000, MeanRun: 50, Sparsity: 0, SnapshotFraction: 0.7, RewriteFraction: 0.02},
}

// Random pools restored by thin_restore: many devices, snapshots sharing
// blocks, runs and single mappings, multi-level trees.
func TestListGenerated(t *testing.T) {
	for i, spec := range specs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			p := genpool.Generate(rng, spec)
			img, _ := genpool.Restore(t, p)
			compare(t, img, false, nil, true)
			compare(t, img, false, ls.AllFields(), true)
			compare(t, img, false, []ls.Field{ls.Exclusive, ls.ExclusiveBytes, ls.SharedSectors}, false)
		})
	}
}

// The exclusive walk skips the leaves the counting walk summarised and the
// counts settle; with the summaries' budget running out before the first
// leaf, part way through a device, or never, the output is thin_ls's.
func TestListSummaryBudget(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	img, _ := genpool.Restore(t, genpool.Generate(rng, specs[3]))
	for _, n := range []int64{0, 1, 37, 500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			defer ls.SetMaxSummaries(n)()
			compare(t, img, false, []ls.Field{ls.DevID, ls.MappedBlocks, ls.ExclusiveBlocks, ls.SharedBlocks}, true)
		})
	}
}

// The exclusive count of a device comes from its run log when the log fit
// the budget, and from a second walk (with or without leaf summaries)
// when it did not: with no budget, a budget that holds some devices' logs
// but not others', and one that holds all, the output is thin_ls's.
func TestListLogBudget(t *testing.T) {
	for _, si := range []int{2, 3, 4, 5} {
		rng := rand.New(rand.NewPCG(uint64(si), 11))
		img, _ := genpool.Restore(t, genpool.Generate(rng, specs[si]))
		for _, chunks := range []int{0, 1, 3, 1 << 10} {
			for _, sums := range []int64{0, 1 << 17} {
				t.Run(fmt.Sprintf("spec%d/chunks%d/sums%d", si, chunks, sums), func(t *testing.T) {
					defer ls.SetMaxLogBytes(chunks * ls.LogChunkBytes)()
					defer ls.SetMaxSummaries(sums)()
					compare(t, img, false, []ls.Field{ls.DevID, ls.MappedBlocks, ls.ExclusiveBlocks, ls.SharedBlocks}, true)
				})
			}
		}
	}
}
