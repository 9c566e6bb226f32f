package check_test

// A seeded corruption test: damage a clean image, run thin_check 0.9.0 and
// check.Device on it with the same options, and compare their verdicts.
//
// The clean images are every clean fixture plus generated pools restored
// by thin_restore (corruptimage_test.go). Each case picks a role (the
// superblock, the metadata-snapshot copy, a node of each tree, a bitmap, the
// metadata index, a free block, or the device size) and a block of that
// role, and damages it (corruptdamage_test.go): flipped bits and bytes
// (caught by checksums), random bytes resealed with a valid checksum, a
// wrong salt, another block's contents, and semantic edits resealed so that
// only the deeper checks can tell — header fields, keys, entries inserted or
// removed, child pointers, mappings, details, index entries, bitmap and
// overflow counts, superblock fields — some made consistent with the space
// maps and mapped_blocks. Both checkers then run plain, with
// --ignore-non-fatal-errors, with -m where a metadata snapshot exists, with
// --skip-mappings and --super-block-only.
//
// thinmeta's check is deliberately stricter than thin_check 0.9.0 in named
// ways (see stricterClass); every other disagreement fails the test, as does
// any panic. A summary table is logged at the end (go test -v).
//
//	THINMETA_CORRUPT_CASES=5000 go test ./thin/check -run Corrupt -v   # more cases (default 250)
//	THINMETA_CORRUPT_SEED=7 ...                                        # another seed (default 1)
//	THINMETA_CORRUPT_ONLY=tmeta/17 ...                                 # replay one case
//	THINMETA_CORRUPT_KEEP=/tmp/dir ...                                 # and keep its damaged image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/transaction"
)

// Outcomes of thin_check other than an exit status.
const (
	tcTimeout = -1000 // did not finish in time
	tcSignal  = -1001 // killed by a signal (crashed)
)

// thinCheck runs thin_check with a timeout: some damage (a cycle in the
// overflow tree) makes 0.9.0 loop forever.
func thinCheck(t testing.TB, args ...string) (int, string) {
	t.Helper()
	bin := tptest.Need(t, "thin_check")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return tcTimeout, out.String()
	case err == nil:
		return 0, out.String()
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("running thin_check: %v", err)
	}
	if !ee.Exited() {
		return tcSignal, out.String()
	}
	return ee.ExitCode(), out.String()
}

// stricterClass names the documented reason why thinmeta may fail metadata
// that thin_check 0.9.0 passes, or "" if f is not such a finding. Each
// class is a check 0.9.0 does not make:
//
//   - "mapped_blocks": a device's mapped_blocks is not compared with its tree.
//   - "data block range": mappings beyond the data device are not looked for.
//   - "details/mapping devices": the details tree and the top level of the
//     mapping tree are not compared.
//   - "data space map": its reference counts are never compared (0.9.0 does
//     not even read the bitmaps' contents) and its index is not checked
//     against nr_blocks.
//   - "superblock magic/blocknr": only the superblock's checksum is checked
//     (live and metadata-snapshot copy).
//   - "parent's next key": a child's keys are checked against its parent's
//     key only as a lower bound (plus leaf overlap), not against the next
//     key of the parent.
//   - "incompat flags": 0.9.0 ignores the superblock's incompat_flags; the
//     kernel refuses to open metadata with a feature it does not know, and
//     so does thinmeta (superblock.ErrIncompatible).
//   - "space map tree structure": the metadata space map's overflow tree is
//     only walked by 0.9.0's counting pass, which skips a malformed node
//     (or a node of another structure) and so reports it as a leaked block
//     — a non-fatal error. The kernel would read wrong counts from it.
//   - "metadata snapshot structure": likewise the metadata snapshot's
//     trees, when not checked with -m: 0.9.0 only counts their blocks. The
//     kernel walks them to release the snapshot.
//   - "reached again": 0.9.0's walk skips a node it has seen before
//     without checking it against the new parent; only its counting pass
//     looks, and drops a reference that does not fit (a leaked block,
//     non-fatal). thinmeta checks every reference: a shared node must fit
//     every parent's key range (check.ErrReachedAgain) and must not be its
//     own ancestor (check.ErrCycle); and which reference is checked first
//     depends on the walk order, so damage found at a block the damage
//     pointed at anew (a misdirected pointer) belongs here too.
//   - "nr_entries > max_entries": with --ignore-non-fatal-errors 0.9.0
//     skips its whole nr_entries test, the upper bound included, along with
//     the under-population test it is meant to skip. The kernel's node
//     validator rejects such a node.
//   - "node flags": 0.9.0 takes a node for internal or leaf by its bit
//     and ignores the other bits of the flags word; thinmeta, like
//     thin_check 1.1.0, refuses a word that is not exactly one of the two
//     (btree.ErrNodeFlags; TestNodeFlagsVersusThinCheck).
func stricterClass(f check.Finding, cc classCtx) string {
	var ce *transaction.CorruptError
	isCE := errors.As(f.Err, &ce)
	opts := cc.opts
	switch {
	case errors.Is(f.Err, check.ErrMappedBlocks):
		return "mapped_blocks"
	case errors.Is(f.Err, check.ErrDataBlockRange):
		return "data block range"
	case errors.Is(f.Err, thin.ErrDetailsMismatch):
		return "details/mapping devices"
	case f.Area == "data space map":
		return "data space map"
	case errors.Is(f.Err, superblock.ErrBadMagic),
		errors.Is(f.Err, transaction.ErrBlockNumber) && isCE && ce.Kind == superblock.Kind:
		return "superblock magic/blocknr"
	case errors.Is(f.Err, check.ErrNextKey):
		return "parent's next key"
	case errors.Is(f.Err, btree.ErrNodeFlags):
		return "node flags"
	case errors.Is(f.Err, superblock.ErrIncompatible):
		return "incompat flags"
	case f.Area == "metadata space map" && (structural(f.Err) || errors.Is(f.Err, check.ErrCrossLinked)):
		return "space map tree structure"
	case !opts.MetadataSnap && strings.HasPrefix(f.Area, "metadata snapshot") && (structural(f.Err) || errors.Is(f.Err, check.ErrCrossLinked)):
		return "metadata snapshot structure"
	case opts.IgnoreNonFatal && errors.Is(f.Err, btree.ErrNodeHeader) && isCE && cc.overfull(ce.Block):
		return "nr_entries > max_entries"
	case errors.Is(f.Err, check.ErrReachedAgain), errors.Is(f.Err, check.ErrCycle),
		isCE && cc.newRefs[ce.Block] && (structural(f.Err) || errors.Is(f.Err, check.ErrCrossLinked)):
		return "reached again"
	}
	return ""
}

// classCtx is what classifying a finding needs to know of the case.
type classCtx struct {
	opts     check.Options
	overfull func(b uint64) bool // block b of the damaged image is a node with nr_entries > max_entries
	newRefs  map[uint64]bool     // blocks the damage gave another reference
}

// structural reports whether err is a B-tree node that reads correctly
// (checksum, location) but is malformed.
func structural(err error) bool {
	for _, e := range []error{btree.ErrNodeHeader, btree.ErrValueSize, btree.ErrKeyOrder, btree.ErrKeyRange,
		btree.ErrMaxEntries, btree.ErrDepth, btree.ErrUnderfull} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// explain returns the stricter classes of the findings that made the check
// fail, or ok == false if one of them is in no class.
func explain(fs []check.Finding, cc classCtx) (classes []string, ok bool) {
	for _, f := range fs {
		if f.Severity == check.NonFatal && cc.opts.IgnoreNonFatal {
			continue
		}
		c := stricterClass(f, cc)
		if c == "" {
			return nil, false
		}
		if !slices.Contains(classes, c) {
			classes = append(classes, c)
		}
	}
	slices.Sort(classes)
	return classes, len(classes) > 0
}

// checkImage runs check.Device on an image file, turning a panic into a
// finding-less failure report.
func checkImage(img string, opts check.Options) (sum check.Summary, fs []check.Finding, panicked any) {
	f, err := os.Open(img)
	if err != nil {
		return sum, nil, err
	}
	defer f.Close()
	st, _ := f.Stat()
	defer func() { panicked = recover() }()
	sum, _ = check.Device(context.Background(), f, st.Size(), opts, func(fd check.Finding) { fs = append(fs, fd) })
	return sum, fs, nil
}

// tally collects the outcomes of all cases for the summary.
type tally struct {
	mu       sync.Mutex
	cases    map[string]int // by damage kind
	agree    map[string]int // by damage kind: every option set agreed
	stricter map[string]int // by damage kind: some option set disagreed within a class
	bad      map[string]int // by damage kind: unexplained disagreements
	classes  map[string]int // stricter disagreements by class and option set
	oracle   map[string]int // thin_check timeouts and crashes
	roles    map[role]int
	runs     map[string]int // thin_check runs by option set
}

func newTally() *tally {
	return &tally{cases: map[string]int{}, agree: map[string]int{}, stricter: map[string]int{}, bad: map[string]int{},
		classes: map[string]int{}, oracle: map[string]int{}, roles: map[role]int{}, runs: map[string]int{}}
}

func (ta *tally) log(t *testing.T) {
	var kinds []string
	for k := range ta.cases {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "thin_check runs by option set: %v\n%-24s %6s %6s %8s %6s\n", ta.runs, "damage", "cases", "agree", "stricter", "BAD")
	tot := [4]int{}
	for _, k := range kinds {
		fmt.Fprintf(&b, "%-24s %6d %6d %8d %6d\n", k, ta.cases[k], ta.agree[k], ta.stricter[k], ta.bad[k])
		tot[0] += ta.cases[k]
		tot[1] += ta.agree[k]
		tot[2] += ta.stricter[k]
		tot[3] += ta.bad[k]
	}
	fmt.Fprintf(&b, "%-24s %6d %6d %8d %6d\n", "total", tot[0], tot[1], tot[2], tot[3])
	b.WriteString("stricter disagreements (option set: classes):\n")
	var cs []string
	for c := range ta.classes {
		cs = append(cs, c)
	}
	sort.Strings(cs)
	for _, c := range cs {
		fmt.Fprintf(&b, "  %-60s %5d\n", c, ta.classes[c])
	}
	for o, n := range ta.oracle {
		fmt.Fprintf(&b, "thin_check %s: %d\n", o, n)
	}
	b.WriteString("damaged blocks by role:")
	for r := range nRoles {
		fmt.Fprintf(&b, " %s=%d", r, ta.roles[r])
	}
	t.Log(b.String())
}

// optionSet is one way of running both checkers.
type optionSet struct {
	name string
	args []string
	opts check.Options
}

var (
	optPlain     = optionSet{"plain", nil, check.Options{}}
	optIgnore    = optionSet{"ignore-non-fatal", []string{"--ignore-non-fatal-errors"}, check.Options{IgnoreNonFatal: true}}
	optSnap      = optionSet{"-m", []string{"-m"}, check.Options{MetadataSnap: true}}
	optSnapIgn   = optionSet{"-m ignore-non-fatal", []string{"-m", "--ignore-non-fatal-errors"}, check.Options{MetadataSnap: true, IgnoreNonFatal: true}}
	optSkip      = optionSet{"skip-mappings", []string{"--skip-mappings"}, check.Options{SkipMappings: true}}
	optSkipIgn   = optionSet{"skip-mappings ignore", []string{"--skip-mappings", "--ignore-non-fatal-errors"}, check.Options{SkipMappings: true, IgnoreNonFatal: true}}
	optSuperOnly = optionSet{"super-block-only", []string{"--super-block-only"}, check.Options{SuperblockOnly: true}}
)

// corruptCases returns how many cases to run in all (THINMETA_CORRUPT_CASES,
// default 250) and the seed (THINMETA_CORRUPT_SEED, default 1).
func corruptCases(t *testing.T) (int, uint64) {
	n, seed := 250, uint64(1)
	if testing.Short() {
		n = 60
	}
	if v := os.Getenv("THINMETA_CORRUPT_CASES"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("THINMETA_CORRUPT_CASES: %v", err)
		}
		n = x
	}
	if v := os.Getenv("THINMETA_CORRUPT_SEED"); v != "" {
		x, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("THINMETA_CORRUPT_SEED: %v", err)
		}
		seed = x
	}
	return n, seed
}

// TestCorruptVersusThinCheck damages clean images one block at a time and
// requires check.Device's verdict to equal thin_check 0.9.0's, for plain
// runs, --ignore-non-fatal-errors, -m (where a metadata snapshot exists)
// and --skip-mappings, except for the documented stricter classes.
func TestCorruptVersusThinCheck(t *testing.T) {
	tptest.Need(t, "thin_check")
	total, seed := corruptCases(t)
	only := os.Getenv("THINMETA_CORRUPT_ONLY")
	bases := cleanBases(t)
	ta := newTally()
	// thin_check spends most of its time waiting (each run tears down an
	// AIO context), so cases run concurrently beyond -parallel, in shards
	// of each base with an image copy each.
	const shards = 3
	dir := t.TempDir()
	sem := make(chan struct{}, 4*runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for bi, b := range bases {
		per := total / len(bases)
		if bi < total%len(bases) {
			per++
		}
		checkClean(t, b)
		for sh := range shards {
			img := copyImage(t, b.img, dir, fmt.Sprintf("%s.%d.img", b.name, sh))
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				t.Run(fmt.Sprintf("%s#%d", b.name, sh), func(t *testing.T) {
					runShard(t, base{b.name, img}, bi, per, sh, shards, seed, only, ta)
				})
			})
		}
	}
	wg.Wait()
	ta.log(t)
}

// checkClean requires both checkers to agree on a clean base (and both to
// pass it, but for -m without a metadata snapshot).
func checkClean(t *testing.T, b base) {
	for _, o := range []optionSet{optPlain, optSnap} {
		code, out := thinCheck(t, append(slices.Clone(o.args), b.img)...)
		sum, fs, p := checkImage(b.img, o.opts)
		if p != nil || sum.OK(false) != (code == 0) || (o.name == "plain" && code != 0) {
			t.Fatalf("clean image %s, %s: thin_check %d %s; thinmeta %+v %v %v", b.name, o.name, code, out, sum, fs, p)
		}
	}
}

// runShard runs the cases i < cases of base b with i%shards == shard.
func runShard(t *testing.T, b base, bi, cases, shard, shards int, seed uint64, only string, ta *tally) {
	l := mapLayout(t, b.img)
	pos, nd, nm := bitmapIndex(t, b.img)
	im := openImage(t, b.img)
	defer im.close()
	var roles []role
	for r := range nRoles {
		if len(l.byRole[r]) > 0 {
			roles = append(roles, r)
		}
	}
	reported := 0
	for i := shard; i < cases; i += shards {
		id := fmt.Sprintf("%s/%d", b.name, i)
		if only != "" && only != id {
			continue
		}
		m := &mutator{rng: rand.New(rand.NewPCG(seed, uint64(bi)<<32|uint64(i))), l: l, im: im, bmPos: pos, dataBlocks: nd, metaBlocks: nm}
		d := m.damageOne(im, roles)
		r := d.role
		if only != "" {
			if dir := os.Getenv("THINMETA_CORRUPT_KEEP"); dir != "" {
				kept := copyImage(t, b.img, dir, strings.ReplaceAll(id, "/", "-")+".img")
				t.Logf("damaged image kept in %s", kept)
			}
		}
		res := runCase(t, b.img, d, l.held != 0, i, m.rng)
		im.rollback()

		ta.mu.Lock()
		ta.cases[d.kind]++
		ta.roles[r]++
		for o, n := range res.runs {
			ta.runs[o] += n
		}
		for o, n := range res.oracle {
			ta.oracle[o] += n
		}
		for _, c := range res.classes {
			ta.classes[c]++
		}
		switch {
		case len(res.problems) > 0:
			ta.bad[d.kind]++
		case len(res.classes) > 0:
			ta.stricter[d.kind]++
		default:
			ta.agree[d.kind]++
		}
		ta.mu.Unlock()
		if len(res.oracle) > 0 {
			t.Logf("case %s: thin_check %v (counted as failing)\n  %s", id, res.oracle, d.desc)
		}
		if len(res.problems) > 0 {
			reported++
			if reported <= 15 {
				t.Errorf("case %s (replay: THINMETA_CORRUPT_SEED=%d THINMETA_CORRUPT_ONLY=%s)\n  %s\n%s",
					id, seed, id, d.desc, strings.Join(res.problems, "\n"))
			}
		}
	}
	if reported > 15 {
		t.Errorf("%d more failing cases not shown", reported-15)
	}
}

// caseResult is the comparison of both checkers on one damaged image.
type caseResult struct {
	runs     map[string]int // thin_check runs by option set
	classes  []string       // "option set: classes" of stricter disagreements
	problems []string       // unexplained disagreements and panics
	oracle   map[string]int // thin_check timeouts and crashes
}

func runCase(t *testing.T, img string, d damage, hasSnap bool, i int, rng *rand.Rand) caseResult {
	res := caseResult{oracle: map[string]int{}, runs: map[string]int{}}
	compare := func(o optionSet, code int, out string) {
		sum, fs, p := checkImage(img, o.opts)
		if p != nil {
			res.problems = append(res.problems, fmt.Sprintf("  %s: PANIC: %v", o.name, p))
			return
		}
		ours := sum.OK(o.opts.IgnoreNonFatal)
		switch code {
		case tcTimeout:
			res.oracle["timeout"]++
		case tcSignal:
			res.oracle["crash"]++
		}
		theirs := code == 0
		if ours == theirs {
			return
		}
		show := func() string {
			var b strings.Builder
			fmt.Fprintf(&b, "    thin_check %s exit %d:\n", strings.Join(o.args, " "), code)
			for _, line := range strings.Split(strings.TrimSpace(out), "\n")[:min(12, strings.Count(strings.TrimSpace(out), "\n")+1)] {
				fmt.Fprintf(&b, "      %s\n", line)
			}
			fmt.Fprintf(&b, "    thinmeta: %d fatal, %d non-fatal\n", sum.Fatal, sum.NonFatal)
			for _, f := range fs[:min(len(fs), 10)] {
				fmt.Fprintf(&b, "      %s\n", f)
			}
			return b.String()
		}
		if ours {
			res.problems = append(res.problems, fmt.Sprintf("  %s: thinmeta passes what thin_check fails (too lenient)\n%s", o.name, show()))
			return
		}
		cls, ok := explain(fs, classCtx{opts: o.opts, newRefs: d.newRefs, overfull: func(b uint64) bool {
			n := btree.Node(readBlock(img, b))
			return len(n) > 0 && n.NrEntries() > n.MaxEntries()
		}})
		if !ok {
			res.problems = append(res.problems, fmt.Sprintf("  %s: thinmeta fails what thin_check passes, outside the stricter classes\n%s", o.name, show()))
			return
		}
		res.classes = append(res.classes, o.name+": "+strings.Join(cls, ", "))
	}
	// Where thin_check's verdict follows from the source, the run is
	// skipped (thin_check costs ~60 ms of wall time, mostly tearing down an
	// AIO context, serialised across processes) and the verdict inferred —
	// but one time in sixteen it runs anyway, and a wrong inference fails.
	sample := func() bool { return rng.IntN(16) == 0 }
	run := func(o optionSet, inferPass bool, why string) int {
		if inferPass && !sample() {
			compare(o, 0, "(not run: "+why+")")
			return 0
		}
		res.runs[o.name]++
		code, out := thinCheck(t, append(slices.Clone(o.args), img)...)
		if inferPass && code != 0 {
			res.problems = append(res.problems, fmt.Sprintf("  %s: thin_check fails (%d) where it was inferred to pass (%s):\n%s", o.name, code, why, out))
		}
		compare(o, code, out)
		return code
	}
	// A run that passes also passes with --ignore-non-fatal-errors (it only
	// disables checks).
	pair := func(plain, ignore optionSet) {
		unread := !reads(plain.opts, d.role)
		code := run(plain, unread, "thin_check does not read the damaged block with these options")
		run(ignore, code == 0, "passes without --ignore-non-fatal-errors")
	}
	pair(optPlain, optIgnore)
	if hasSnap {
		pair(optSnap, optSnapIgn)
	}
	if i%2 == 0 {
		pair(optSkip, optSkipIgn)
	}
	run(optSuperOnly, !reads(optSuperOnly.opts, d.role), "thin_check does not read the damaged block with these options")
	return res
}

// reads reports whether thin_check 0.9.0, run with opts, reads blocks of
// role r: never a free block, always the device size; with --super-block-only only the superblock (and for -m the copy);
// with --skip-mappings the superblock, the details tree and the top level
// of the mapping tree; with -m the superblock and the trees (it never
// touches the space maps).
func reads(opts check.Options, r role) bool {
	switch {
	case r == roleFree:
		return false
	case r == roleDevice:
		return true
	case opts.SuperblockOnly:
		return r == roleSuperblock
	case opts.SkipMappings:
		return r == roleSuperblock || r == roleDetailsInternal || r == roleDetailsLeaf || r == roleTopInternal || r == roleTopLeaf
	case opts.MetadataSnap:
		return r <= roleSnapNode
	}
	return true
}

// readBlock reads one block of an image file (nil if it cannot).
func readBlock(img string, b uint64) []byte {
	f, err := os.Open(img)
	if err != nil {
		return nil
	}
	defer f.Close()
	buf := make([]byte, transaction.BlockSize)
	if _, err := f.ReadAt(buf, int64(b)*transaction.BlockSize); err != nil {
		return nil
	}
	return buf
}
