package dump

import (
	"fmt"
	"slices"
	"testing"
)

// The atomic runs of leaf lists, as thin_dump 1.1.0 cuts them: each case
// is the devices' leaf lists and the runs (first leaf, then the rest;
// shared or not) that 1.1.0's own tests of its run gatherer expect.
func TestLeafGraphRuns(t *testing.T) {
	type run struct {
		leaves []uint64
		shared bool
	}
	cases := []struct {
		lists [][]uint64
		runs  []run
	}{
		{nil, nil},
		{[][]uint64{{1}}, []run{{[]uint64{1}, false}}},
		{[][]uint64{{1, 2, 3}}, []run{{[]uint64{1, 2, 3}, false}}},
		{[][]uint64{{1, 2}, {1, 2, 3}}, []run{{[]uint64{1, 2}, true}, {[]uint64{3}, false}}},
		{[][]uint64{{2, 3}, {1, 2, 3}}, []run{{[]uint64{1}, false}, {[]uint64{2, 3}, true}}},
		{[][]uint64{{1, 2, 3, 4}, {2, 3, 4, 5}}, []run{{[]uint64{1}, false}, {[]uint64{2, 3, 4}, true}, {[]uint64{5}, false}}},
		{[][]uint64{{2, 3, 4, 5}, {1, 2, 3, 4}}, []run{{[]uint64{1}, false}, {[]uint64{2, 3, 4}, true}, {[]uint64{5}, false}}},
		{[][]uint64{{1, 2, 3, 4}, {2, 3, 4, 5, 6}, {3, 4}, {5, 6}},
			[]run{{[]uint64{1}, false}, {[]uint64{2}, true}, {[]uint64{3, 4}, true}, {[]uint64{5, 6}, true}}},
		{[][]uint64{{2, 3, 4, 5}, {2, 3, 4, 6}, {1, 3, 4, 5}},
			[]run{{[]uint64{1}, false}, {[]uint64{2}, true}, {[]uint64{3, 4}, true}, {[]uint64{5}, true}, {[]uint64{6}, false}}},
		{[][]uint64{{1, 2}, {2, 1}}, []run{{[]uint64{1}, true}, {[]uint64{2}, true}}},
		// Two devices with the same tree: one shared run.
		{[][]uint64{{7, 3, 9}, {7, 3, 9}}, []run{{[]uint64{7, 3, 9}, true}}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			g := newLeafGraph()
			for _, l := range c.lists {
				g.sequence(l)
			}
			got, err := g.runs()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.runs) {
				t.Fatalf("runs %v, want %v", got, c.runs)
			}
			for j, r := range got {
				if !slices.Equal(r.leaves, c.runs[j].leaves) || r.shared != c.runs[j].shared {
					t.Fatalf("run %d: %v, want %v", j, r, c.runs[j])
				}
			}
			// Every list is its runs, whole and in order.
			for _, l := range c.lists {
				var back []uint64
				for _, p := range g.parts(l, got) {
					switch p.kind {
					case partLeaves:
						back = append(back, p.leaves...)
					case partRef:
						back = append(back, got[g.ents[g.index[p.ref]].run].leaves...)
					}
				}
				if !slices.Equal(back, l) {
					t.Fatalf("list %v comes back as %v", l, back)
				}
			}
		})
	}
}

// Leaf lists of damaged trees (a leaf listed twice, a loop back to the
// first leaf) neither panic nor hang: every leaf still comes back.
func TestLeafGraphDamaged(t *testing.T) {
	for _, l := range [][]uint64{{5, 5}, {1, 2, 3, 1}, {4, 4, 4}, {1, 2, 1, 2}} {
		g := newLeafGraph()
		g.sequence(l)
		runs, err := g.runs()
		if err != nil {
			continue // a cycle, reported
		}
		n := 0
		for _, p := range g.parts(l, runs) {
			switch p.kind {
			case partLeaves:
				n += len(p.leaves)
			case partRef:
				n += len(runs[g.ents[g.index[p.ref]].run].leaves)
			}
		}
		if n < 1 {
			t.Errorf("%v: nothing comes back", l)
		}
	}
}
