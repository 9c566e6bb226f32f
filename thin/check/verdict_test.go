package check_test

// Verdicts of thinmeta check and of thin_check of both generations on the
// kernel fixtures and on every kind of damage the generator injects
// (docs/CHECK.md, "Where the generations disagree").

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

// verdict is what a checker makes of an image: it passes it, fails it
// only for non-fatal findings (it passes with --ignore-non-fatal-errors),
// or fails it with them ignored too.
type verdict int

const (
	vClean verdict = iota
	vNonFatal
	vFatal
)

func (v verdict) String() string { return [...]string{"clean", "non-fatal", "fatal"}[v] }

// tptVerdict runs thin_check of generation g (with args) plain and with
// --ignore-non-fatal-errors. A clean exit with findings on stderr counts
// as non-fatal.
func tptVerdict(t testing.TB, g tptest.Gen, img string, args ...string) (verdict, string) {
	var plain, ign tptest.Result
	var wg sync.WaitGroup
	wg.Go(func() { plain = tptest.RunGen(t, g, "thin_check", append(slices.Clone(args), img)...) })
	wg.Go(func() {
		ign = tptest.RunGen(t, g, "thin_check", append(append([]string{"--ignore-non-fatal-errors"}, args...), img)...)
	})
	wg.Wait()
	out := strings.Join(tptest.Findings(plain.Stderr), "\n")
	switch {
	case ign.Code != 0:
		return vFatal, out
	case plain.Code != 0 || out != "":
		return vNonFatal, out
	}
	return vClean, out
}

// ourVerdict is thinmeta's verdict and findings.
func ourVerdict(img string, opts check.Options) (verdict, []check.Finding, error) {
	sum, fs, p := checkImage(img, opts)
	if p != nil {
		return 0, nil, fmt.Errorf("check panicked: %v", p)
	}
	switch {
	case sum.Fatal > 0:
		return vFatal, fs, nil
	case sum.NonFatal > 0:
		return vNonFatal, fs, nil
	}
	return vClean, fs, nil
}

// genClass is a class of finding on which thin_check 0.9.0 and 1.1.0
// disagree: what each generation, and thinmeta, makes of metadata whose
// only problem is of that class. docs/CHECK.md gives the reasons for
// thinmeta's side.
type genClass struct {
	name             string
	v090, v110, ours verdict
}

var (
	classDataTooLow = genClass{"data count too low", vClean, vFatal, vFatal}
	classDataLeak   = genClass{"data block leaked", vClean, vNonFatal, vNonFatal}
	classMetaHigh   = genClass{"metadata count too high", vNonFatal, vFatal, vNonFatal}
	classDataHigh   = genClass{"data count too high", vClean, vFatal, vNonFatal}
	classMapped     = genClass{"mapped_blocks", vClean, vFatal, vFatal}
	classDevices    = genClass{"details/mapping devices", vClean, vFatal, vFatal}
	genClasses      = []genClass{classDataTooLow, classDataLeak, classMetaHigh, classDataHigh, classMapped, classDevices}
)

var countRE = regexp.MustCompile(`has count (\d+), (\d+) references found`)

// classOf returns the class of a finding, or ok == false if the two
// generations agree on it (and thinmeta with them).
func classOf(f check.Finding) (c genClass, ok bool) {
	data := f.Area == "data space map"
	high := false
	if errors.Is(f.Err, check.ErrLeak) {
		m := countRE.FindStringSubmatch(f.Err.Error())
		if m == nil {
			return genClass{}, false
		}
		got, _ := strconv.Atoi(m[1])
		high = errors.Is(f.Err, check.ErrExtraCount) || got > 1
	}
	switch {
	case high && data:
		return classDataHigh, true
	case high:
		return classMetaHigh, true
	case data && errors.Is(f.Err, check.ErrLeak):
		return classDataLeak, true
	case data && errors.Is(f.Err, check.ErrRefCount):
		return classDataTooLow, true
	case errors.Is(f.Err, check.ErrMappedBlocks):
		return classMapped, true
	case errors.Is(f.Err, thin.ErrDetailsMismatch):
		return classDevices, true
	}
	return genClass{}, false
}

// predict returns the verdicts thinmeta's findings imply for each
// generation (the worst finding decides), the classes met, and a problem
// if a finding's severity is not the one its class gives thinmeta.
func predict(fs []check.Finding) (v090, v110 verdict, classes []string, problem string) {
	for _, f := range fs {
		ours := vFatal
		if f.Severity == check.NonFatal {
			ours = vNonFatal
		}
		o, n := ours, ours
		if c, ok := classOf(f); ok {
			if c.ours != ours {
				problem = fmt.Sprintf("finding %q is %v; its class %q says %v", f, ours, c.name, c.ours)
			}
			o, n = c.v090, c.v110
			if !slices.Contains(classes, c.name) {
				classes = append(classes, c.name)
			}
		}
		v090, v110 = max(v090, o), max(v110, n)
	}
	return v090, v110, classes, problem
}

// verdictCase is one image and one way of checking it.
type verdictCase struct {
	name string
	img  string
	snap bool // -m
	// rep, for a damaged pool, is gen.Damage's report, whose verdicts of
	// both generations must be theirs.
	rep *gen.Report
	// extended pools are refused by both generations whatever they hold;
	// only the reports are compared with them.
	extended bool
}

// TestVerdictsBothGenerations runs thinmeta check and thin_check 0.9.0 and
// 1.1.0 on every kernel fixture (live and -m) and on every kind of damage
// gen.Damage injects (several seeds, each option, two pool shapes), and
// requires each generation's verdict to be the one thinmeta's findings
// predict: where the generations agree, thinmeta agrees with both; where
// they disagree, every finding that decides the difference is of a named
// class (genClasses) and has the severity the class gives thinmeta. Every
// class must be met, and every damage report's verdicts of both
// generations must be theirs (on extended pools too, which both refuse).
func TestVerdictsBothGenerations(t *testing.T) {
	tptest.NeedGen(t, tptest.V090, "thin_check")
	tptest.NeedGen(t, tptest.V110, "thin_check")
	if verdict(gen.Clean) != vClean || verdict(gen.NonFatal) != vNonFatal || verdict(gen.Fatal) != vFatal {
		t.Fatal("gen.Verdict and verdict no longer line up")
	}
	var cases []verdictCase
	for _, f := range tptest.Fixtures(t) {
		img := tptest.Unpack(t, f)
		cases = append(cases, verdictCase{tptest.Name(f), img, false, nil, false}, verdictCase{tptest.Name(f) + " -m", img, true, nil, false})
	}
	cases = append(cases, damageCases(t)...)

	met := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8) // the checkers mostly wait
	for _, vc := range cases {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var args []string
			if vc.snap {
				args = []string{"-m"}
			}
			o, oout := tptVerdict(t, tptest.V090, vc.img, args...)
			n, nout := tptVerdict(t, tptest.V110, vc.img, args...)
			ours, fs, err := ourVerdict(vc.img, check.Options{MetadataSnap: vc.snap})
			if err != nil {
				t.Errorf("%s: %v", vc.name, err)
				return
			}
			if vc.rep != nil && (verdict(vc.rep.ThinCheck) != o || verdict(vc.rep.ThinCheck110) != n) {
				t.Errorf("%s: the damage report says 0.9.0 %v, 1.1.0 %v; they say %v, %v", vc.name, vc.rep.ThinCheck, vc.rep.ThinCheck110, o, n)
			}
			if vc.extended {
				if o != vFatal || n != vFatal {
					t.Errorf("%s: an extended pool: 0.9.0 %v, 1.1.0 %v; both must refuse it", vc.name, o, n)
				}
				return
			}
			p090, p110, classes, problem := predict(fs)
			mu.Lock()
			defer mu.Unlock()
			for _, c := range classes {
				met[c]++
			}
			if problem != "" || o != p090 || n != p110 || (o == n && ours != o) {
				var b strings.Builder
				for _, f := range fs[:min(len(fs), 6)] {
					fmt.Fprintf(&b, "\n    %s", f)
				}
				t.Errorf("%s: 0.9.0 %v (predicted %v), 1.1.0 %v (predicted %v), thinmeta %v; classes %v %s\n  0.9.0: %.300s\n  1.1.0: %.300s\n  thinmeta:%s",
					vc.name, o, p090, n, p110, ours, classes, problem, oout, nout, b.String())
			}
		})
	}
	wg.Wait()
	var seen []string
	for _, c := range genClasses {
		if met[c.name] == 0 {
			t.Errorf("no case of class %q", c.name)
		}
		seen = append(seen, fmt.Sprintf("%s: %d", c.name, met[c.name]))
	}
	sort.Strings(seen)
	t.Logf("%d cases; classes met: %s", len(cases), strings.Join(seen, ", "))
}

// damageCases generates two pools (one with snapshots, deletions and a
// metadata snapshot; one whose device trees are shared three and more
// times, so metadata counts reach the overflow tree) and damages a copy of
// each with every kind, three seeds, and each option that applies.
func damageCases(t *testing.T) []verdictCase {
	dir := t.TempDir()
	specs := []string{
		"thins=3 mappings=300-1500 snapshots=5 shape=tree discard=0.05 deletions=1 metadata-snap=true",
		"thins=1 mappings=3000 snapshots=4 shape=fan rewrite=0",
		// Extended: one seed of each injection.
		"metadata-format=extended thins=3 mappings=300-1500 snapshots=5 shape=tree discard=0.05 deletions=1 metadata-snap=true",
	}
	var injs []gen.Injection
	for _, k := range gen.DamageKinds() {
		for seed := range uint64(3) {
			injs = append(injs, gen.Injection{Kind: k, Seed: seed})
			switch k {
			case gen.DataRefCount, gen.MetadataRefCount:
				injs = append(injs, gen.Injection{Kind: k, Seed: seed, Delta: 1},
					gen.Injection{Kind: k, Seed: seed, Overflow: true}, gen.Injection{Kind: k, Seed: seed, Overflow: true, Delta: 1})
			case gen.NodeChecksum:
				injs = append(injs, gen.Injection{Kind: k, Seed: seed, Internal: true})
			case gen.MappedBlocks:
				injs = append(injs, gen.Injection{Kind: k, Seed: seed, Delta: -1})
			}
		}
	}
	var cases []verdictCase
	kinds := map[gen.DamageKind]bool{}
	for si, text := range specs {
		spec, err := gen.ParseSpec(text)
		if err != nil {
			t.Fatal(err)
		}
		clean := filepath.Join(dir, fmt.Sprintf("clean%d.img", si))
		rec, err := gen.GenerateFile(clean, spec, 1)
		if err != nil {
			t.Fatal(err)
		}
		extended := strings.Contains(text, "extended")
		if !extended {
			tptest.CheckClean(t, clean)
		}
		data, err := os.ReadFile(clean)
		if err != nil {
			t.Fatal(err)
		}
		for ii, in := range injs {
			if extended && in.Seed != 0 {
				continue
			}
			img := filepath.Join(dir, fmt.Sprintf("p%d-%d.img", si, ii))
			if err := os.WriteFile(img, data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := gen.Damage(f, int64(len(data)), rec, in)
			f.Close()
			if errors.Is(err, gen.ErrNoCandidate) {
				continue
			}
			if err != nil {
				t.Fatalf("%v: %v", in, err)
			}
			kinds[in.Kind] = true
			name := fmt.Sprintf("pool %d, %v", si, in)
			cases = append(cases, verdictCase{name, img, false, rep, extended})
			if in.Kind == gen.SnapshotChecksum {
				cases = append(cases, verdictCase{name + " -m", img, true, nil, extended})
			}
		}
	}
	for _, k := range gen.DamageKinds() {
		if !kinds[k] {
			t.Errorf("damage kind %v injected into neither pool", k)
		}
	}
	return cases
}
