package check_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

// TestCorruptBothGenerations is the seeded corruption test's damage
// (corruptdamage_test.go) judged by thinmeta and by thin_check of both
// generations, plain runs, on a sample of cases (thin_check 1.1.0 takes
// half a second a run; THINMETA_CORRUPT110_CASES sets how many, default
// 60, 24 with -short; THINMETA_CORRUPT_SEED the seed). For each case:
//
//   - where 0.9.0 and 1.1.0 agree, thinmeta agrees, or is stricter than
//     both for a documented reason (stricterClass: checks neither makes);
//   - where they disagree, the verdicts are those thinmeta's findings
//     predict through the named classes of genClasses (docs/CHECK.md),
//     or thinmeta sides with one generation for a named reason of
//     corrupt110Class.
//
// Anything else fails, with a replay line.
func TestCorruptBothGenerations(t *testing.T) {
	tptest.NeedGen(t, tptest.V090, "thin_check")
	tptest.NeedGen(t, tptest.V110, "thin_check")
	total := 60
	if testing.Short() {
		total = 24
	}
	if v := os.Getenv("THINMETA_CORRUPT110_CASES"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("THINMETA_CORRUPT110_CASES: %v", err)
		}
		total = x
	}
	_, seed := corruptCases(t)
	only := os.Getenv("THINMETA_CORRUPT_ONLY")
	bases := cleanBases(t)
	dir := t.TempDir()
	var mu sync.Mutex
	tally := map[string]int{}
	var wg sync.WaitGroup
	for bi, b := range bases {
		tptest.CheckClean(t, b.img)
		per := total / len(bases)
		if bi < total%len(bases) {
			per++
		}
		img := copyImage(t, b.img, dir, b.name+".110.img")
		wg.Go(func() {
			t.Run(b.name, func(t *testing.T) {
				l := mapLayout(t, img)
				pos, nd, nm := bitmapIndex(t, img)
				im := openImage(t, img)
				defer im.close()
				var roles []role
				for r := range nRoles {
					if len(l.byRole[r]) > 0 {
						roles = append(roles, r)
					}
				}
				for i := range per {
					id := fmt.Sprintf("%s/110/%d", b.name, i)
					// The stream differs from TestCorruptVersusThinCheck's
					// (the high bit), so the sample is fresh damage.
					m := &mutator{rng: rand.New(rand.NewPCG(seed, 1<<63|uint64(bi)<<32|uint64(i))), l: l, im: im, bmPos: pos, dataBlocks: nd, metaBlocks: nm}
					d := m.damageOne(im, roles)
					if only == "" || only == id {
						outcome := judgeBoth(t, img, d)
						key, detail, _ := strings.Cut(outcome, "\n")
						mu.Lock()
						tally[key]++
						mu.Unlock()
						if detail != "" && !strings.HasPrefix(outcome, "BAD") {
							t.Logf("case %s: %s\n  %s\n%s", id, key, d.desc, detail)
						}
						if strings.HasPrefix(outcome, "BAD") {
							t.Errorf("case %s (replay: THINMETA_CORRUPT_SEED=%d THINMETA_CORRUPT_ONLY=%s)\n  %s\n%s",
								id, seed, id, d.desc, outcome)
						}
					}
					im.rollback()
				}
			})
		})
	}
	wg.Wait()
	var lines []string
	for k, n := range tally {
		if !strings.HasPrefix(k, "BAD") {
			lines = append(lines, fmt.Sprintf("  %-70s %4d", k, n))
		}
	}
	sort.Strings(lines)
	t.Logf("outcomes:\n%s", strings.Join(lines, "\n"))
}

// judgeBoth runs the three checkers on a damaged image and returns the
// outcome's name ("agree: fatal", a class) or "BAD..." with the details.
func judgeBoth(t *testing.T, img string, d damage) string {
	var o, n verdict
	var oout, nout string
	var wg sync.WaitGroup
	wg.Go(func() { o, oout = tptVerdict(t, tptest.V090, img) })
	wg.Go(func() { n, nout = tptVerdict(t, tptest.V110, img) })
	ours, fs, err := ourVerdict(img, check.Options{})
	wg.Wait()
	if err != nil {
		return "BAD: " + err.Error()
	}
	show := func(why string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "BAD: %s: 0.9.0 %v, 1.1.0 %v, thinmeta %v\n  0.9.0: %.400s\n  1.1.0: %.400s\n  thinmeta:", why, o, n, ours, oout, nout)
		for _, f := range fs[:min(len(fs), 6)] {
			fmt.Fprintf(&b, "\n    %s", f)
		}
		return b.String()
	}
	if ours == o && o == n {
		return "agree: " + o.String()
	}
	if (d.role == roleDataOverflow || d.role == roleMetaOverflow) && ours == o && o == vClean && n == vFatal &&
		(strings.Contains(nout, "panicked at") || strings.Contains(nout, "Bad reference count")) {
		// An entry added to an overflow tree for a block whose bitmap
		// entry is not 3: 1.1.0 compares every entry with the references
		// (and panics on one beyond the space map); the kernel never reads
		// it (docs/CHECK.md, "stray overflow entry").
		if strings.Contains(nout, "panicked at") {
			return fmt.Sprintf("stray overflow entry: 1.1.0 panics; 0.9.0 and thinmeta %v", o)
		}
		return fmt.Sprintf("stray overflow entry: 1.1.0 fatal; 0.9.0 and thinmeta %v", o)
	}
	if strings.Contains(nout, "panicked at") {
		return show("thin_check 1.1.0 panicked")
	}
	if d.role == roleSnapNode && d.kind != "node.flags" && o == vClean && ours == vClean && n == vFatal {
		// The metadata snapshot's two trees list different devices:
		// 1.1.0 looks in every run, thinmeta and 0.9.0 with -m only, as
		// the kernel only ever releases the snapshot (docs/CHECK.md,
		// "metadata snapshot's devices").
		_, mfs, _ := ourVerdict(img, check.Options{MetadataSnap: true})
		for _, f := range mfs {
			if errors.Is(f.Err, thin.ErrDetailsMismatch) && f.Severity == check.Fatal {
				return "metadata snapshot's devices: 1.1.0 fatal; 0.9.0 and thinmeta clean (fatal with -m)"
			}
		}
		return show("1.1.0 fails a damaged metadata snapshot that thinmeta passes, even with -m")
	}
	if d.kind == "node.flags" && o == vClean && n == vFatal {
		// Bits besides the leaf and internal ones in a node's flags:
		// 1.1.0 refuses the node, 0.9.0 ignores them; thinmeta is as
		// strict as 1.1.0 (btree.ErrNodeFlags; docs/CHECK.md, "node flags").
		if ours != vFatal {
			return show("node flags: 1.1.0 refuses the node, thinmeta does not")
		}
		return "node flags: 0.9.0 clean, 1.1.0 and thinmeta fatal"
	}
	p090, p110, classes, problem := predict(fs)
	if problem != "" {
		return show(problem)
	}
	if o != n && p090 == o && p110 == n {
		return fmt.Sprintf("0.9.0 %v, 1.1.0 %v, thinmeta %v: %s", o, n, ours, strings.Join(classes, ", "))
	}
	if ours == o && n < o {
		if cls := missedBy110(fs, n); cls != "" {
			return fmt.Sprintf("0.9.0 and thinmeta %v, 1.1.0 %v (not checked by 1.1.0: %s)", o, n, cls)
		}
		return show("thinmeta sides with 0.9.0 against 1.1.0 for no named reason")
	}
	// What is left must be thinmeta failing metadata for checks that
	// 0.9.0 does not make (stricterClass), with 1.1.0 agreeing with
	// thinmeta or passing more than thinmeta does too.
	if ours > o && ours >= n {
		// 0.9.0's verdict non-fatal means its --ignore-non-fatal-errors
		// run passed: explain that run.
		cc := classCtx{opts: check.Options{IgnoreNonFatal: o == vNonFatal}, newRefs: d.newRefs, overfull: func(b uint64) bool {
			nd := btree.Node(readBlock(img, b))
			return len(nd) > 0 && nd.NrEntries() > nd.MaxEntries()
		}}
		if cls, ok := explain(fs, cc); ok {
			if ours == n {
				return fmt.Sprintf("0.9.0 %v, 1.1.0 and thinmeta %v (not checked by 0.9.0: %s)", o, n, strings.Join(cls, ", "))
			}
			var b strings.Builder
			for _, f := range fs[:min(len(fs), 4)] {
				fmt.Fprintf(&b, "\n    %s", f)
			}
			return fmt.Sprintf("0.9.0 %v, 1.1.0 %v, thinmeta %v (stricter than both: %s)\n  thinmeta:%s", o, n, ours, strings.Join(cls, ", "), b.String())
		}
		return show("thinmeta stricter than 0.9.0 for no documented reason")
	}
	return show(fmt.Sprintf("not as the classes predict (0.9.0 %v, 1.1.0 %v; classes %v)", p090, p110, classes))
}

// missedBy110 names the check thin_check 1.1.0 does not make that one of
// the findings comes from, or "" (docs/CHECK.md):
//
//   - "overflow count missing": a bitmap entry of 3 whose block has no
//     entry in the overflow tree. 1.1.0 only requires the references to
//     be 3 or more; the kernel's lookup of that count fails, and with it
//     the pool.
//   - "keys below the parent's key": a child holding keys below the key
//     its parent gives it. A lookup of those keys goes to the sibling
//     before and misses them.
//   - "value size": a node whose value_size is not its tree's (an
//     internal node's not 8). The kernel steps through values by the
//     node's value_size and would follow wrong pointers.
//   - "a block used by two structures": such as a space map index entry
//     naming the superblock as a bitmap. The kernel's bitmap validator
//     refuses the block.
//   - "damaged node ignored" (1.1.0 non-fatal): with
//     --ignore-non-fatal-errors 1.1.0 passes over a malformed node of a
//     tree it walks and drops what is below it; the kernel cannot read
//     through it.
func missedBy110(fs []check.Finding, n verdict) string {
	for _, f := range fs {
		switch {
		case errors.Is(f.Err, spacemap.ErrOverflow) && strings.Contains(f.Err.Error(), "has no count"):
			return "overflow count missing"
		case errors.Is(f.Err, btree.ErrKeyRange) && !errors.Is(f.Err, check.ErrNextKey):
			return "keys below the parent's key"
		case errors.Is(f.Err, btree.ErrValueSize):
			return "value size"
		case errors.Is(f.Err, check.ErrCrossLinked):
			return "a block used by two structures"
		}
	}
	if n == vNonFatal {
		for _, f := range fs {
			if f.Severity == check.Fatal && structural(f.Err) {
				return "damaged node ignored"
			}
		}
	}
	return ""
}
