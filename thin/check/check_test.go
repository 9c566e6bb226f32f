package check_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin/check"
)

func runCheck(t *testing.T, img string, opts check.Options) (check.Summary, []check.Finding) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	var fs []check.Finding
	sum, _ := check.Device(context.Background(), f, st.Size(), opts, func(fd check.Finding) { fs = append(fs, fd) })
	return sum, fs
}

// verdicts compares our pass/fail with thin_check's for several option sets.
func verdicts(t *testing.T, img string) {
	t.Helper()
	for _, tc := range []struct {
		args []string
		opts check.Options
	}{
		{nil, check.Options{}},
		{[]string{"-m"}, check.Options{MetadataSnap: true}},
		{[]string{"--skip-mappings"}, check.Options{SkipMappings: true}},
		{[]string{"--super-block-only"}, check.Options{SuperblockOnly: true}},
		{[]string{"--ignore-non-fatal-errors"}, check.Options{IgnoreNonFatal: true}},
	} {
		want := tptest.Run(t, "thin_check", append(tc.args, img)...)
		sum, fs := runCheck(t, img, tc.opts)
		if got := sum.OK(tc.opts.IgnoreNonFatal); got != (want.Code == 0) {
			t.Errorf("thin_check %v: exit %d\n%s%s\nthinmeta ok=%v findings: %v", tc.args, want.Code, want.Stdout, want.Stderr, got, fs)
		}
	}
}

// Every kernel-written fixture: our verdict equals thin_check's, for each
// option set.
func TestCheckFixtures(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		t.Run(tptest.Name(f), func(t *testing.T) {
			img := tptest.Unpack(t, f)
			verdicts(t, img)
			sum, fs := runCheck(t, img, check.Options{})
			if tptest.DamagedFixtures[tptest.Name(f)] {
				if sum.OK(false) {
					t.Fatal("damaged fixture passed")
				}
			} else if !sum.OK(false) || !sum.SpaceMapsChecked {
				t.Fatalf("clean fixture: %+v %v", sum, fs)
			}
		})
	}
}

// Random pools restored by thin_restore are clean for both checkers.
func TestCheckGenerated(t *testing.T) {
	for i, spec := range []genpool.Spec{
		{Devices: 1},
		{Devices: 10, MinMappings: 0, MaxMappings: 2000, MeanRun: 4, Sparsity: 3, SnapshotFraction: 0.4, RewriteFraction: 0.3},
		{Devices: 3, MinMappings: 50000, MaxMappings: 80000, MeanRun: 2, Sparsity: 1, SnapshotFraction: 0.5, RewriteFraction: 0.05},
		{Devices: 400, MinMappings: 0, MaxMappings: 20, MeanRun: 2, Sparsity: 50},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			p := genpool.Generate(rand.New(rand.NewPCG(uint64(i), 7)), spec)
			img, _ := genpool.Restore(t, p)
			verdicts(t, img)
			sum, fs := runCheck(t, img, check.Options{})
			if !sum.OK(false) || !sum.SpaceMapsChecked || sum.Mappings != uint64(p.TotalMappings()) || sum.Devices != len(p.Devices) {
				t.Fatalf("%+v %v (want %d mappings, %d devices)", sum, fs, p.TotalMappings(), len(p.Devices))
			}
		})
	}
}
