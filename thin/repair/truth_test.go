package repair_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/repair"
)

// A corpus case: a clean pool of known content (the generator's record)
// and a damaged image of it.

type pool struct {
	spec  string
	seed  uint64
	rec   *gen.Record
	truth *gen.State
	clean []byte
	// lineage: each snapshot's origin and creation time.
	origin  map[uint64]uint64
	created map[uint64]uint32
}

// mayShare reports whether devices x and y can both map a data block
// through a mapping of time t: they descend from a common device, and the
// mapping is older than the snapshot that separated their lines.
func (p *pool) mayShare(x, y uint64, t uint32) bool {
	// The line of x: x, its origin, ... with the time each was created.
	line := func(d uint64) []uint64 {
		l := []uint64{d}
		for {
			o, ok := p.origin[d]
			if !ok {
				return l
			}
			d = o
			l = append(l, d)
		}
	}
	lx, ly := line(x), line(y)
	for i, a := range lx {
		j := slices.Index(ly, a)
		if j < 0 {
			continue
		}
		// a is the nearest common ancestor; each side split off at the
		// creation of its first device below a.
		split := uint32(math.MaxUint32)
		if i > 0 {
			split = min(split, p.created[lx[i-1]])
		}
		if j > 0 {
			split = min(split, p.created[ly[j-1]])
		}
		return t < split
	}
	return false
}

var pools = map[string]*pool{}

// genPool generates (once per test binary) the pool of spec and seed.
func genPool(t testing.TB, spec string, seed uint64) *pool {
	t.Helper()
	key := fmt.Sprintf("%s/%d", spec, seed)
	if p := pools[key]; p != nil {
		return p
	}
	sp, err := gen.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := gen.NewPlan(sp, seed)
	if err != nil {
		t.Fatal(err)
	}
	dev := memdev.New(plan.MetadataBytes())
	rec, err := plan.Build(dev, dev.Size())
	if err != nil {
		t.Fatal(err)
	}
	truth, err := rec.Final()
	if err != nil {
		t.Fatal(err)
	}
	p := &pool{spec: spec, seed: seed, rec: rec, truth: truth, clean: dev.Bytes(),
		origin: map[uint64]uint64{}, created: map[uint64]uint32{}}
	for _, e := range rec.Events {
		if e.Kind == gen.Snap {
			p.origin[e.Dev], p.created[e.Dev] = e.Origin, e.Time
		}
	}
	pools[key] = p
	return p
}

// damaged returns a copy of the pool's image with the injection applied.
func (p *pool) damaged(t testing.TB, ins ...gen.Injection) ([]byte, []*gen.Report) {
	t.Helper()
	dev := memdev.FromBytes(p.clean)
	var reps []*gen.Report
	for _, in := range ins {
		r, err := gen.Damage(dev, dev.Size(), p.rec, in)
		if err != nil {
			t.Skipf("damage %v: %v", in, err)
		}
		reps = append(reps, r)
	}
	return dev.Bytes(), reps
}

// outcome compares a salvaged pool with the truth.
type outcome struct {
	exact      int // mappings equal to the truth's
	stale      int // mappings the truth does not have (other block or time, or unmapped)
	missing    int // truth mappings the output lacks
	leaks      int // mappings to data blocks the truth gives another device through another mapping
	extraDevs  int // devices the truth does not have (a deleted one brought back)
	unreported []string
}

func (o outcome) String() string {
	return fmt.Sprintf("exact %d, stale %d, missing %d, leaks %d, extra devices %d, unreported %d", o.exact, o.stale, o.missing, o.leaks, o.extraDevs, len(o.unreported))
}

type dmap struct {
	dev uint64
	m   thin.Mapping
}

// compareTruth reads every mapping of the pool in out and compares them
// with truth; rep (may be nil) must explain every difference.
func compareTruth(t testing.TB, pl *pool, out []byte, rep *repair.Report) outcome {
	t.Helper()
	return compareTruthOf(t, pl, out, rep, true)
}

// compareTruthOf is compareTruth; strict makes each leak a test error.
func compareTruthOf(t testing.TB, pl *pool, out []byte, rep *repair.Report, strict bool) outcome {
	t.Helper()
	truth := pl.truth
	p, err := thin.NewPool(memdev.FromBytes(out), int64(len(out)))
	if err != nil {
		if !strict {
			return outcome{}
		}
		t.Fatalf("open the output: %v", err)
	}
	var o outcome
	// Who owns each data block in the truth, through which virtual block.
	owner := map[uint64][]dmap{}
	want := map[uint64]map[uint64]thin.Mapping{}
	for _, d := range truth.Devices {
		want[d.ID] = map[uint64]thin.Mapping{}
		for _, m := range d.Mappings {
			owner[m.Block] = append(owner[m.Block], dmap{d.ID, m})
			want[d.ID][m.VBlock] = m
		}
	}
	devRep := map[uint64]*repair.DeviceReport{}
	if rep != nil {
		for i := range rep.Devices {
			devRep[rep.Devices[i].ID] = &rep.Devices[i]
		}
	}
	inOlder := func(id, v, b uint64) bool {
		r := devRep[id]
		if r == nil {
			return false
		}
		for _, x := range r.Older {
			if v >= x.VBlock && v < x.VBlock+x.Len && b == x.Block+(v-x.VBlock) {
				return true
			}
		}
		return false
	}
	explained := func(id, v uint64) bool {
		r := devRep[id]
		if r == nil {
			return slices.ContainsFunc(rep.LostDevices, func(l repair.LostDevice) bool { return l.ID == id })
		}
		for _, x := range r.Damaged {
			if v >= x.First && v <= x.Last {
				return true
			}
		}
		for _, x := range r.Dropped {
			if v >= x.VBlock && v < x.VBlock+x.Len {
				return true
			}
		}
		return false
	}
	got := map[uint64]map[uint64]thin.Mapping{}
	for dr, err := range p.DeviceRoots() {
		if err != nil {
			t.Fatal(err)
		}
		got[dr.ID] = map[uint64]thin.Mapping{}
		if _, ok := want[dr.ID]; !ok {
			o.extraDevs++
			// Reported if the report shows none of it comes from the
			// newest metadata (a device found only in older copies).
			if r := devRep[dr.ID]; rep != nil && (r == nil || r.Kept > 0) {
				o.unreported = append(o.unreported, fmt.Sprintf("device %d is not in the clean pool", dr.ID))
			}
		}
		for m, err := range p.Mappings(dr.ID, 0, math.MaxUint64) {
			if err != nil {
				t.Fatal(err)
			}
			got[dr.ID][m.VBlock] = m
			if w, ok := want[dr.ID][m.VBlock]; ok && w == m {
				o.exact++
				continue
			}
			o.stale++
			for _, ow := range owner[m.Block] {
				if ow.dev != dr.ID && (ow.m.VBlock != m.VBlock || ow.m.Time != m.Time || !pl.mayShare(dr.ID, ow.dev, m.Time)) {
					o.leaks++
					if strict {
						t.Errorf("leak: device %d maps virtual block %d to data block %d, which the clean pool gives device %d (virtual block %d)",
							dr.ID, m.VBlock, m.Block, ow.dev, ow.m.VBlock)
					}
					break
				}
			}
			if rep != nil && !inOlder(dr.ID, m.VBlock, m.Block) {
				o.unreported = append(o.unreported, fmt.Sprintf("device %d: %v not in the clean pool and not reported as older", dr.ID, m))
			}
		}
	}
	for id, ms := range want {
		for v := range ms {
			if _, ok := got[id][v]; ok {
				continue
			}
			o.missing++
			if rep != nil && !explained(id, v) {
				o.unreported = append(o.unreported, fmt.Sprintf("device %d: virtual block %d missing and not reported", id, v))
			}
		}
	}
	return o
}

// theirRepair runs thin_repair 1.1.0 on img; if it refuses for want of
// geometry it is told the clean pool's. It returns its output compared
// with the truth (all zero if it fails) and why it failed.
func theirRepair(t testing.TB, p *pool, img []byte) (outcome, string) {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.img"), filepath.Join(dir, "out.img")
	if err := os.WriteFile(in, img, 0o644); err != nil {
		t.Fatal(err)
	}
	mkOut := func() {
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(int64(len(img)) + 4<<20)
		f.Close()
	}
	mkOut()
	r := tptest.RunGen(t, tptest.V110, "thin_repair", "-i", in, "-o", out)
	if r.Code != 0 && strings.Contains(string(r.Stderr), "data block size") {
		mkOut()
		r = tptest.RunGen(t, tptest.V110, "thin_repair", "-i", in, "-o", out,
			"--data-block-size", fmt.Sprint(p.rec.DataBlockSize), "--nr-data-blocks", fmt.Sprint(p.rec.NrDataBlocks))
	}
	if r.Code != 0 {
		return outcome{}, "thin_repair failed: " + strings.TrimSpace(string(r.Stderr))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return compareTruthOf(t, p, b, nil, false), ""
}

// salvage repairs img into a new image and checks the output is clean for
// our check and, for stock pools, both thin_check generations.
func salvage(t testing.TB, img []byte, opts repair.Options) ([]byte, *repair.Report) {
	t.Helper()
	sv, err := repair.Salvage(context.Background(), memdev.FromBytes(img), int64(len(img)), opts)
	if err != nil {
		t.Fatalf("salvage: %v", err)
	}
	out := memdev.New(int64(len(img)) + 4<<20)
	if err := sv.Write(context.Background(), out, out.Size()); err != nil {
		t.Fatalf("write: %v", err)
	}
	sum, _ := check.Device(context.Background(), out, out.Size(), check.Options{}, func(f check.Finding) {
		t.Errorf("check of the output: %v", f)
	})
	if !sum.OK(false) {
		t.Fatalf("the output does not check clean: %+v", sum)
	}
	return out.Bytes(), sv.Report
}

// tptCheck runs both thin_check generations on a stock output.
func tptCheck(t *testing.T, out []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.img")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	tptest.CheckClean(t, path)
}
