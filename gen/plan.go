package gen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// extent is a range of mapped virtual blocks [v, v+n).
type extent struct{ v, n uint64 }

// extents is the set of a device's mapped virtual blocks, as sorted,
// disjoint, non-adjacent extents. It is immutable once built, so a
// snapshot shares its origin's (writes to mapped blocks do not change it).
type extents struct {
	e   []extent
	cum []uint64 // cum[i]: mapped blocks in e[:i]; len(e)+1 entries
}

func newExtents(e []extent) *extents {
	x := &extents{e: e, cum: make([]uint64, len(e)+1)}
	for i, r := range e {
		x.cum[i+1] = x.cum[i] + r.n
	}
	return x
}

// total returns the number of mapped blocks.
func (x *extents) total() uint64 { return x.cum[len(x.e)] }

// at returns the extent holding the k-th mapped block and its offset in it.
func (x *extents) at(k uint64) (int, uint64) {
	i := sort.Search(len(x.e), func(i int) bool { return x.cum[i+1] > k })
	return i, k - x.cum[i]
}

// without returns the extents with the ranges cut (sorted by v, possibly
// overlapping) removed.
func (x *extents) without(cut []extent) *extents {
	var out []extent
	j := 0
	for _, r := range x.e {
		v, end := r.v, r.v+r.n
		for j < len(cut) && cut[j].v+cut[j].n <= v {
			j++
		}
		for k := j; k < len(cut) && cut[k].v < end; k++ {
			c := cut[k]
			if c.v > v {
				out = append(out, extent{v, c.v - v})
			}
			v = max(v, c.v+c.n)
		}
		if v < end {
			out = append(out, extent{v, end - v})
		}
	}
	return newExtents(out)
}

// stepKind is what one step of a plan does.
type stepKind uint8

const (
	stepCreate   stepKind = iota // create thin dev (a message)
	stepWrite                    // write [v, v+n) of dev
	stepSnapshot                 // snapshot origin as dev (a message)
	stepDiscard                  // unmap [v, v+n) of dev
	stepDelete                   // delete dev (a message)
	stepReserve                  // reserve a metadata snapshot (a message)
	stepEndPhase                 // commit the data writes of a phase
)

type step struct {
	kind        stepKind
	dev, origin uint64
	v, n        uint64
}

// Plan is a generator run decided in advance from a Spec and a seed: every
// device, write, snapshot and deletion, and the sizes of the data and
// metadata devices. Build carries it out.
type Plan struct {
	spec  Spec
	seed  uint64
	steps []step
	// population is the index in steps just past the initial writes of
	// the thins.
	population int
	// ext holds the ids and blobs of an extended pool (nil: stock).
	ext *extPlan

	// NewDataBlocks is the number of data block allocations the plan
	// makes (an upper bound of the blocks in use at any time).
	NewDataBlocks uint64
	// NrDataBlocks is the data device size in data blocks.
	NrDataBlocks uint64
	// MetadataBlocks is the metadata device size in 4 KiB blocks.
	MetadataBlocks uint64
}

// MetadataBytes is the size of the metadata device the plan needs.
func (p *Plan) MetadataBytes() int64 { return int64(p.MetadataBlocks) * transaction.BlockSize }

// Spec returns the plan's spec.
func (p *Plan) Spec() Spec { return p.spec }

// planner holds the state of planning.
type planner struct {
	s    Spec
	rng  *rand.Rand
	p    *Plan
	devs map[uint64]*extents // live devices' mapped blocks
	ids  []uint64            // live device ids, in creation order
	// depth bounds the height of the device trees; nodes estimates the
	// metadata blocks that writes and discards after the population
	// shadow or split (see touched).
	depth, nodes uint64
	maxMapped    uint64
}

// seedSalt separates the generator's random stream from other users of
// the same seed.
const seedSalt = 0x7468696e67656e31 // "thingen1"

// NewPlan decides everything a generator run with spec and seed does.
func NewPlan(spec Spec, seed uint64) (*Plan, error) {
	spec = spec.normalize()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	pl := &planner{
		s:    spec,
		rng:  rand.New(rand.NewPCG(seed, seedSalt)),
		p:    &Plan{spec: spec, seed: seed},
		devs: make(map[uint64]*extents),
	}
	pl.populate()
	pl.snapshots()
	pl.discards()
	pl.deletions()
	pl.metadataSnapshot()
	if spec.Variant == thin.Extended {
		pl.planExtended(spec.Thins + spec.Snapshots)
	}
	if err := pl.size(); err != nil {
		return nil, err
	}
	return pl.p, nil
}

func (pl *planner) add(st step) {
	pl.p.steps = append(pl.p.steps, st)
	if st.kind == stepWrite {
		pl.p.NewDataBlocks += st.n
	}
}

// touched adds to the metadata estimate the nodes that runs writes (or
// discards) to a device with mapped blocks may allocate in one
// transaction: each run shadows a leaf, which may split or be rebalanced
// with a neighbour (up to perLeaf nodes), but a leaf is shadowed at most
// once per transaction; the internal nodes above are fewer still.
func (pl *planner) touched(runs, mapped, perLeaf uint64) {
	leaves := mapped/100 + 1
	internal := leaves/50 + pl.depth
	pl.nodes += perLeaf*min(runs, leaves) + min(runs*(pl.depth-1), internal)
}

// geometric draws a run length with the given mean (at least 1).
func (pl *planner) geometric(mean float64) uint64 {
	if mean <= 1 {
		return 1
	}
	u := pl.rng.Float64()
	n := 1 + math.Floor(math.Log1p(-u)/math.Log1p(-1/mean))
	if !(n < 1<<40) {
		n = 1 << 40
	}
	return uint64(n)
}

// gap draws the unmapped gap before a run.
func (pl *planner) gap() uint64 {
	s := pl.s.Sparsity
	if s == 0 {
		return 0
	}
	mean := pl.s.MeanRun * s / (1 - s)
	g := -math.Log1p(-pl.rng.Float64()) * mean
	if !(g < 1<<40) {
		g = 1 << 40
	}
	return uint64(math.Round(g))
}

// populate creates the thins and plans their initial writes, interleaved.
func (pl *planner) populate() {
	s := pl.s
	perThin := make([][]extent, s.Thins)
	var order []int // one entry per run: the thin it belongs to
	for t := range s.Thins {
		id := uint64(t + 1)
		pl.add(step{kind: stepCreate, dev: id})
		want := s.Mappings.Min
		if s.Mappings.Max > s.Mappings.Min {
			want += pl.rng.Uint64N(s.Mappings.Max - s.Mappings.Min + 1)
		}
		var runs, ext []extent
		v := uint64(0)
		for left := want; left > 0; {
			v += pl.gap()
			n := min(pl.geometric(s.MeanRun), left)
			runs = append(runs, extent{v, n})
			if k := len(ext) - 1; k >= 0 && ext[k].v+ext[k].n == v {
				ext[k].n += n
			} else {
				ext = append(ext, extent{v, n})
			}
			v += n
			left -= n
			order = append(order, t)
		}
		perThin[t] = runs
		pl.devs[id] = newExtents(ext)
		pl.ids = append(pl.ids, id)
		pl.maxMapped = max(pl.maxMapped, want)
	}
	pl.depth = 2
	for c := uint64(126); c < pl.maxMapped; c *= 126 {
		pl.depth++
	}
	// A uniformly random interleaving of the thins' runs, each thin's in
	// increasing order: as concurrent writers would allocate data blocks.
	pl.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	next := make([]int, s.Thins)
	for _, t := range order {
		r := perThin[t][next[t]]
		next[t]++
		pl.add(step{kind: stepWrite, dev: uint64(t + 1), v: r.v, n: r.n})
	}
	pl.add(step{kind: stepEndPhase})
	pl.p.population = len(pl.p.steps)
}

// rewrite plans writes to a fraction of dev's mapped blocks (at least
// atLeast), in runs starting at random mapped blocks.
func (pl *planner) rewrite(dev uint64, fraction float64, atLeast uint64) {
	x := pl.devs[dev]
	total := x.total()
	if total == 0 {
		return
	}
	want := max(uint64(math.Ceil(fraction*float64(total))), atLeast)
	want = min(want, total)
	var runs uint64
	for got := uint64(0); got < want; {
		i, off := x.at(pl.rng.Uint64N(total))
		n := min(pl.geometric(pl.s.MeanRun), x.e[i].n-off, want-got)
		pl.add(step{kind: stepWrite, dev: dev, v: x.e[i].v + off, n: n})
		got += n
		runs++
	}
	pl.touched(runs, total, 2)
}

// snapshots plans the snapshots and the writes after each.
func (pl *planner) snapshots() {
	s := pl.s
	chainHead := make([]uint64, s.Thins) // chains: the latest device of each
	for t := range chainHead {
		chainHead[t] = uint64(t + 1)
	}
	for k := range s.Snapshots {
		id := uint64(s.Thins + 1 + k)
		var origin uint64
		switch s.Shape {
		case Chain:
			origin = chainHead[k%s.Thins]
			chainHead[k%s.Thins] = id
		case Fan:
			origin = uint64(k%s.Thins + 1)
		case Tree:
			origin = pl.ids[pl.rng.IntN(len(pl.ids))]
		}
		pl.add(step{kind: stepSnapshot, dev: id, origin: origin})
		pl.devs[id] = pl.devs[origin]
		pl.ids = append(pl.ids, id)
		if s.Target != Snapshot {
			pl.rewrite(origin, s.Rewrite, 0)
		}
		if s.Target != Origin {
			pl.rewrite(id, s.Rewrite, 0)
		}
		pl.add(step{kind: stepEndPhase})
	}
}

// discards plans the unmapping of a fraction of every device's blocks.
func (pl *planner) discards() {
	if pl.s.Discard == 0 {
		return
	}
	for _, id := range pl.ids {
		x := pl.devs[id]
		total := x.total()
		want := uint64(math.Floor(pl.s.Discard * float64(total)))
		var cut []extent
		for got := uint64(0); got < want; {
			i, off := x.at(pl.rng.Uint64N(total))
			n := min(pl.geometric(pl.s.MeanRun), x.e[i].n-off, want-got)
			cut = append(cut, extent{x.e[i].v + off, n})
			pl.add(step{kind: stepDiscard, dev: id, v: x.e[i].v + off, n: n})
			got += n
		}
		pl.touched(uint64(len(cut)), total, 3)
		slices.SortFunc(cut, func(a, b extent) int { return cmpU64(a.v, b.v) })
		pl.devs[id] = x.without(cut)
	}
	pl.add(step{kind: stepEndPhase})
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// deletions plans the deletion of random devices.
func (pl *planner) deletions() {
	for range pl.s.Deletions {
		i := pl.rng.IntN(len(pl.ids))
		id := pl.ids[i]
		pl.ids = slices.Delete(pl.ids, i, i+1)
		delete(pl.devs, id)
		pl.add(step{kind: stepDelete, dev: id})
	}
}

// metadataSnapshot plans the metadata snapshot and the writes that make
// the live metadata diverge from it.
func (pl *planner) metadataSnapshot() {
	if !pl.s.MetadataSnapshot {
		return
	}
	pl.add(step{kind: stepReserve})
	var cands []uint64
	for _, id := range pl.ids {
		if pl.devs[id].total() > 0 {
			cands = append(cands, id)
		}
	}
	if len(cands) > 0 {
		pl.rewrite(cands[pl.rng.IntN(len(cands))], pl.s.Rewrite, 1)
	}
	pl.add(step{kind: stepEndPhase})
}

// size decides the data and metadata device sizes.
func (pl *planner) size() error {
	s, p := pl.s, pl.p
	p.NrDataBlocks = s.NrDataBlocks
	if p.NrDataBlocks == 0 {
		p.NrDataBlocks = max(p.NewDataBlocks+uint64(math.Ceil(s.DataSlack*float64(p.NewDataBlocks))), 16)
	}
	p.MetadataBlocks = s.MetadataBlocks
	if p.MetadataBlocks == 0 {
		p.MetadataBlocks = pl.estimateMetadata()
	}
	if p.MetadataBlocks > spacemap.MaxMetadataBlocks {
		return fmt.Errorf("gen: the pool needs about %d metadata blocks, more than the %d a pool can use",
			p.MetadataBlocks, spacemap.MaxMetadataBlocks)
	}
	return nil
}

// estimateMetadata returns a generous estimate of the metadata blocks the
// plan needs at its peak.
func (pl *planner) estimateMetadata() uint64 {
	s, p := pl.s, pl.p
	var pop uint64
	for _, st := range p.steps[:p.population] {
		if st.kind == stepWrite {
			pop += st.n
		}
	}
	// Leaves hold 126 to 252 mappings; bulk-built ones are full.
	perLeaf := uint64(110)
	if s.Bulk {
		perLeaf = 240
	}
	nodes := pop/perLeaf + pop/perLeaf/100 + 2*uint64(s.Thins)
	nodes += pl.nodes + 8*uint64(s.Thins+s.Snapshots)
	if s.Variant == thin.Extended {
		nodes += pl.extendedMetadata()
	}
	bitmaps := spacemap.NrBitmaps(p.NrDataBlocks) + spacemap.NrBitmaps(nodes*2)
	nodes += 3*bitmaps + 64
	est := nodes + nodes/2
	return max((est+255)/256*256, 1024)
}
