package check_test

import (
	"context"
	"errors"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/thin/check"
)

// A wrong mapped_blocks leaves every reference known, so the space maps
// are still compared: a leak beside it is found too. Count and
// mapped_blocks findings carry their values (CountError,
// MappedBlocksError), which auto-repair uses.
func TestCountErrors(t *testing.T) {
	sp, err := gen.ParseSpec("thins=2 mappings=300 snapshots=2")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := gen.NewPlan(sp, 3)
	if err != nil {
		t.Fatal(err)
	}
	dev := memdev.New(plan.MetadataBytes())
	rec, err := plan.Build(dev, dev.Size())
	if err != nil {
		t.Fatal(err)
	}
	var want []gen.Expected
	for _, in := range []gen.Injection{{Kind: gen.MappedBlocks, Delta: 3}, {Kind: gen.LeakData}} {
		r, err := gen.Damage(dev, dev.Size(), rec, in)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r.Findings...)
	}
	var ce *check.CountError
	var me *check.MappedBlocksError
	check.Device(context.Background(), dev, dev.Size(), check.Options{}, func(f check.Finding) {
		switch {
		case errors.As(f.Err, &ce):
			if !errors.Is(f.Err, check.ErrLeak) || ce.Recorded != ce.Found+1 || f.Area != "data space map" {
				t.Errorf("%v: %+v", f, ce)
			}
		case errors.As(f.Err, &me):
			if !errors.Is(f.Err, check.ErrMappedBlocks) || me.Recorded != me.Found+3 {
				t.Errorf("%v: %+v", f, me)
			}
		default:
			t.Errorf("unexpected finding %v", f)
		}
	})
	if ce == nil || me == nil {
		t.Fatalf("found count %v, mapped_blocks %v; want both (%v)", ce, me, want)
	}
}
