package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
)

// ls, rmap and delta print thin_*'s 0.9.0 output; thin-provisioning-tools
// 1.1.0 prints the same information in a slightly different form. Each
// function below turns thinmeta's output into 1.1.0's by the documented
// differences only (the ones named in "thinmeta help ls|rmap|delta"), so
// the tests can require equality with 1.1.0 byte for byte.

// lsAs110: sizes of at most 8192 bytes in the MAPPED, EXCLUSIVE and SHARED
// columns carry the unit "b" (0 is "0b"), and the columns are as wide as
// their widest entry then is.
func lsAs110(out string, args []string) string {
	fields := []string{"DEV", "MAPPED", "CREATE_TIME", "SNAP_TIME"}
	headers := true
	for i, a := range args {
		switch {
		case a == "-o" || a == "--format":
			fields = strings.Split(args[i+1], ",")
		case strings.HasPrefix(a, "--format="):
			fields = strings.Split(strings.TrimPrefix(a, "--format="), ",")
		case a == "--no-headers":
			headers = false
		}
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if out == "" {
		return ""
	}
	var rows [][]string
	for i, l := range lines {
		cells := strings.Fields(l)
		if !headers || i > 0 {
			for j, c := range cells {
				switch fields[j] {
				case "MAPPED", "EXCLUSIVE", "SHARED":
					if n, err := strconv.ParseUint(c, 10, 64); err == nil && n <= 8192 {
						cells[j] = c + "b"
					}
				}
			}
		}
		rows = append(rows, cells)
	}
	width := make([]int, len(fields))
	for _, r := range rows {
		for j, c := range r {
			width[j] = max(width[j], len(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for j, c := range r {
			fmt.Fprintf(&b, "%*s ", width[j], c)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// rmapAs110: lines that begin at the same data block are ordered by their
// end, then by device id, then by virtual block (0.9.0 keeps another
// order among them).
func rmapAs110(out string) string {
	re := regexp.MustCompile(`^data (\d+)\.\.(\d+) -> thin\((\d+)\) (\d+)\.\.`)
	lines := strings.SplitAfter(out, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	key := func(l string) [4]uint64 {
		var k [4]uint64
		m := re.FindStringSubmatch(l)
		for i := range k {
			k[i], _ = strconv.ParseUint(m[i+1], 10, 64)
		}
		return k
	}
	slices.SortStableFunc(lines, func(a, b string) int {
		ka, kb := key(a), key(b)
		for i := range ka {
			if ka[i] != kb[i] {
				if ka[i] < kb[i] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
	return strings.Join(lines, "")
}

// deltaAs110: no metadata_snap attribute, flags="1" after the transaction
// when needs_check is set, and no newline after </superblock>. With
// --verbose, also 1.1.0's defect: consecutive ranges of one kind are
// merged whenever their virtual blocks follow on, whether or not their
// data blocks do (the merged range keeps the first one's data_begin).
func deltaAs110(out string, needsCheck, verbose bool) string {
	out = regexp.MustCompile(` metadata_snap="\d+"`).ReplaceAllString(out, "")
	if needsCheck {
		out = regexp.MustCompile(`^(<superblock [^>]* transaction="\d+")`).ReplaceAllString(out, `$1 flags="1"`)
	}
	if verbose {
		out = mergeVerboseAs110(out)
	}
	return strings.TrimSuffix(out, "\n")
}

var rangeLine = regexp.MustCompile(`^(\s*<range begin=")(\d+)(".*length=")(\d+)("/>)$`)

func mergeVerboseAs110(out string) string {
	var res []string
	var pb, pl uint64 // begin and length of the range line last kept
	for _, l := range strings.Split(out, "\n") {
		m := rangeLine.FindStringSubmatch(l)
		if m == nil {
			res = append(res, l)
			pl = 0
			continue
		}
		b, _ := strconv.ParseUint(m[2], 10, 64)
		n, _ := strconv.ParseUint(m[4], 10, 64)
		if pl > 0 && b == pb+pl {
			pl += n
			pm := rangeLine.FindStringSubmatch(res[len(res)-1])
			res[len(res)-1] = pm[1] + pm[2] + pm[3] + strconv.FormatUint(pl, 10) + pm[5]
			continue
		}
		res = append(res, l)
		pb, pl = b, n
	}
	return strings.Join(res, "\n")
}

// queryPools returns every fixture (unpacked) and generated pools of
// snapshots (one with a held metadata snapshot, one with needs_check).
func queryPools(t *testing.T) []string {
	t.Helper()
	var imgs []string
	for _, f := range tptest.Fixtures(t) {
		imgs = append(imgs, tptest.Unpack(t, f))
	}
	for i, sp := range []func(*gen.Spec){
		func(s *gen.Spec) {
			s.Thins, s.Snapshots, s.Shape, s.Mappings, s.MetadataSnapshot = 3, 5, gen.Tree, gen.Range{Min: 500, Max: 4000}, true
		},
		func(s *gen.Spec) {
			s.Thins, s.Snapshots, s.Shape, s.MeanRun, s.Rewrite, s.Discard = 2, 4, gen.Chain, 2, 0.3, 0.1
		},
	} {
		s := gen.DefaultSpec()
		sp(&s)
		img := filepath.Join(t.TempDir(), fmt.Sprintf("gen%d.img", i))
		if _, err := gen.GenerateFile(img, s, uint64(10+i)); err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	nc := filepath.Join(t.TempDir(), "needs-check.img")
	copyFile(t, imgs[len(imgs)-1], nc)
	if code, _, errs := queryRun(messageCommand, "-q", nc, "set_needs_check"); code != 0 {
		t.Fatal(errs)
	}
	return append(imgs, nc)
}

func needsCheck(t *testing.T, img string) bool {
	p, err := thin.Open(img, nil)
	if err != nil {
		return false
	}
	defer p.Close()
	return p.LiveSuperblock().NeedsCheck()
}

// ls, rmap and delta on every fixture and on generated pools: thinmeta's
// output, put in 1.1.0's form by the documented differences (and, for
// delta --verbose, by 1.1.0's defect), equals thin_* 1.1.0's byte for
// byte, and each fails where 1.1.0 fails.
func TestQueryCommandsAgainst110(t *testing.T) {
	cases := append(append([]queryCase(nil), queryCases...),
		queryCase{"thin_delta", []string{"--thin1", "1", "--thin2", "2", "--verbose"}, deltaCommand},
		queryCase{"thin_delta", []string{"--thin1", "2", "--thin2", "4", "--verbose"}, deltaCommand},
		queryCase{"thin_delta", []string{"--thin1", "3", "--thin2", "1"}, deltaCommand},
		queryCase{"thin_ls", []string{"-o", "DEV,EXCLUSIVE,SHARED,MAPPED", "--no-headers"}, lsCommand},
	)
	merged, walkedOnly := 0, 0
	for _, img := range queryPools(t) {
		nc := needsCheck(t, img)
		for _, qc := range cases {
			args := append(append([]string(nil), qc.args...), img)
			want := tptest.RunGen(t, tptest.V110, qc.tool, args...)
			code, out, errs := queryRun(qc.cmd, args...)
			if qc.tool == "thin_ls" && emptyField(qc.args) {
				// 1.1.0 refuses an empty field name (a trailing comma,
				// -o ""), which 0.9.0 and thinmeta accept.
				if want.Code != 2 || code == exitUsage {
					t.Fatalf("%s %v: 1.1.0 exit %d, thinmeta exit %d; expected 2 and not 2", qc.tool, qc.args, want.Code, code)
				}
				continue
			}
			if qc.tool == "thin_ls" && code == 0 && want.Code != 0 && !lsWalks(qc.args) {
				// 1.1.0 walks every mapping tree whatever the fields, so
				// damage there fails it; 0.9.0 and thinmeta read only the
				// device details for fields that need nothing else.
				walkedOnly++
				continue
			}
			if (code == 0) != (want.Code == 0) {
				t.Fatalf("%s %s %v: 1.1.0 exit %d (%s), thinmeta exit %d (%s)", filepath.Base(img), qc.tool, qc.args, want.Code, strings.TrimSpace(string(want.Stderr)), code, errs)
			}
			var got string
			switch qc.tool {
			case "thin_ls":
				got = lsAs110(out, qc.args)
			case "thin_rmap":
				got = rmapAs110(out)
			case "thin_delta":
				verbose := slices.Contains(qc.args, "--verbose")
				got = deltaAs110(out, nc, verbose)
				if verbose && mergeVerboseAs110(out) != out {
					merged++
				}
			}
			if code == 0 && got != string(want.Stdout) {
				t.Fatalf("%s %s %v: thinmeta's output in 1.1.0's form differs from 1.1.0's\n%s", filepath.Base(img), qc.tool, qc.args, lineDiff(string(want.Stdout), got))
			}
		}
	}
	t.Logf("%d ls runs failed in 1.1.0 only, for damage in mapping trees the fields do not need", walkedOnly)
	if merged == 0 {
		t.Fatal("no pool shows thin_delta 1.1.0's --verbose merging")
	}
}

// emptyField reports whether an ls field list has an empty name.
func emptyField(args []string) bool {
	for i, a := range args {
		list, ok := "", false
		switch {
		case (a == "-o" || a == "--format") && i+1 < len(args):
			list, ok = args[i+1], true
		case strings.HasPrefix(a, "--format="):
			list, ok = strings.TrimPrefix(a, "--format="), true
		}
		if ok && slices.Contains(strings.Split(list, ","), "") {
			return true
		}
	}
	return false
}

// lsWalks reports whether ls's fields need the mapping trees (the
// exclusive and shared counts).
func lsWalks(args []string) bool {
	for i, a := range args {
		var list string
		switch {
		case (a == "-o" || a == "--format") && i+1 < len(args):
			list = args[i+1]
		case strings.HasPrefix(a, "--format="):
			list = strings.TrimPrefix(a, "--format=")
		default:
			continue
		}
		return strings.Contains(list, "EXCLUSIVE") || strings.Contains(list, "SHARED")
	}
	return false
}

var verboseRange = regexp.MustCompile(`<range begin="(\d+)"(?: data_begin="(\d+)")?(?: left_data_begin="(\d+)" right_data_begin="(\d+)")? length="(\d+)"/>`)

// badRanges returns the <range> lines of a delta --verbose output (of
// devices left and right of img) whose virtual blocks do not map to
// consecutive data blocks from the range's data_begin: checked block by
// block with Pool.Lookup, independently of package delta.
func badRanges(t *testing.T, img string, left, right uint64, out string) []string {
	t.Helper()
	p, err := thin.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	kind := ""
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		switch l {
		case "<left_only>", "<right_only>", "<different>", "<same>":
			kind = strings.Trim(l, "<>")
			continue
		}
		m := verboseRange.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		num := func(s string) uint64 { v, _ := strconv.ParseUint(s, 10, 64); return v }
		begin, n := num(m[1]), num(m[5])
		type want struct {
			dev  uint64
			data uint64
		}
		var ws []want
		switch kind {
		case "left_only", "same":
			ws = []want{{left, num(m[2])}}
		case "right_only":
			ws = []want{{right, num(m[2])}}
		case "different":
			ws = []want{{left, num(m[3])}, {right, num(m[4])}}
		}
		for _, w := range ws {
			for i := range n {
				mp, ok, err := p.Lookup(w.dev, begin+i)
				if err != nil || !ok || mp.Block != w.data+i {
					bad = append(bad, l)
					break
				}
			}
		}
	}
	return bad
}

// thin_delta 1.1.0 --verbose merges ranges whose data blocks are not
// consecutive (it joins ranges of one kind when their virtual blocks
// follow on, and keeps the first data_begin): its ranges claim mappings
// that do not exist. thinmeta's (equal to 0.9.0's) are all true.
func TestDelta110VerboseMergesNonConsecutive(t *testing.T) {
	var img string
	for _, f := range tptest.Fixtures(t) {
		if tptest.Name(f) == "tmeta" {
			img = tptest.Unpack(t, f)
		}
	}
	if img == "" {
		t.Fatal("fixture tmeta missing")
	}
	args := []string{"--thin1", "1", "--thin2", "2", "--verbose", img}
	theirs := string(tptest.MustRunGen(t, tptest.V110, "thin_delta", args...).Stdout)
	code, ours, errs := queryRun(deltaCommand, args...)
	if code != 0 {
		t.Fatal(errs)
	}
	if ours != string(tptest.MustRun(t, "thin_delta", args...).Stdout) {
		t.Fatal("thinmeta delta --verbose differs from thin_delta 0.9.0")
	}
	if bad := badRanges(t, img, 1, 2, ours); len(bad) > 0 {
		t.Fatalf("thinmeta prints %d ranges that are not so mapped, first %s", len(bad), bad[0])
	}
	bad := badRanges(t, img, 1, 2, theirs)
	if len(bad) == 0 {
		t.Fatal("thin_delta 1.1.0 --verbose no longer merges non-consecutive ranges: update the help and deltaAs110")
	}
	t.Logf("thin_delta 1.1.0 prints %d ranges that are not so mapped, e.g. %s", len(bad), bad[0])
}

// delta --root1/--root2 compare trees given by their root blocks: the
// same ranges as by device id (the diff element names left_root or
// right_root), equal to thin_delta 1.1.0's in its form, also for the
// roots of a metadata snapshot's devices read through the live view
// (trees of an older transaction), and a block that is no mapping tree
// fails as it fails 1.1.0.
func TestDeltaRoots(t *testing.T) {
	img, _, _ := rootsPool(t)
	p, err := thin.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := func(v *thin.Pool, id uint64) string {
		r, err := v.Root(id)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(r)
	}
	snap, err := p.MetadataSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	r1, r2, s1, s3 := root(p, 1), root(p, 2), root(snap, 1), root(snap, 3)
	p.Close()
	for _, verbose := range []bool{false, true} {
		v := func(a ...string) []string {
			if verbose {
				a = append(a, "--verbose")
			}
			return append(a, img)
		}
		_, byID, _ := queryRun(deltaCommand, v("--thin1", "1", "--thin2", "2")...)
		for _, tc := range []struct {
			args []string
			want string // "" if not derived from byID
		}{
			{v("--root1", r1, "--thin2", "2"), strings.Replace(byID, `left="1"`, `left_root="`+r1+`"`, 1)},
			{v("--thin1", "1", "--root2", r2), strings.Replace(byID, `right="2"`, `right_root="`+r2+`"`, 1)},
			{v("--root1", r1, "--root2", r2), strings.Replace(strings.Replace(byID, `left="1"`, `left_root="`+r1+`"`, 1), `right="2"`, `right_root="`+r2+`"`, 1)},
			{v("--root1", s1, "--thin2", "1"), ""},
			{v("--root1", s1, "--root2", s3), ""},
			{v("--root1", "1", "--thin2", "1"), ""}, // block 1: not a mapping tree
		} {
			code, out, errs := queryRun(deltaCommand, tc.args...)
			want := tptest.RunGen(t, tptest.V110, "thin_delta", tc.args...)
			if (code == 0) != (want.Code == 0) || code == exitUsage {
				t.Fatalf("delta %v: exit %d (%s), 1.1.0 exit %d (%s)", tc.args, code, errs, want.Code, want.Stderr)
			}
			if code != 0 {
				continue
			}
			if tc.want != "" && out != tc.want {
				t.Fatalf("delta %v differs from the comparison by device id\n%s", tc.args, lineDiff(tc.want, out))
			}
			if got := deltaAs110(out, false, verbose); got != string(want.Stdout) {
				t.Fatalf("delta %v in 1.1.0's form differs from thin_delta 1.1.0's\n%s", tc.args, lineDiff(string(want.Stdout), got))
			}
		}
	}
	for _, args := range [][]string{
		{"--thin1", "1", "--root1", r1, "--thin2", "2", img},
		{"--root1", "0", "--thin2", "2", img},
		{"--root2", "x", "--thin1", "2", img},
		{"--root1", r1, img},
	} {
		if code, _, errs := queryRun(deltaCommand, args...); code != exitUsage || errs == "" {
			t.Errorf("delta %v: exit %d, stderr %q", args, code, errs)
		}
	}
}

// rawImage writes the image at path (any form thinmeta reads: pack, LZ4)
// as a raw file, for the tools that read raw images only.
func rawImage(t *testing.T, path string) string {
	t.Helper()
	im, err := thin.OpenImage(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	buf := make([]byte, im.Size())
	if _, err := im.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "raw.img")
	if err := os.WriteFile(out, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// thin_delta 1.1.0 refuses a pool whose mapping tree and details tree
// list different devices ("inconsistent device ids"), even to compare two
// devices that are in both; 0.9.0 and thinmeta compare them.
func TestDelta110RefusesMismatchedTrees(t *testing.T) {
	img := rawImage(t, filepath.Join("..", "..", "testdata", "gen-missing-details.lz4"))
	args := []string{"--thin1", "1", "--thin2", "2", img}
	if r := tptest.RunGen(t, tptest.V110, "thin_delta", args...); r.Code == 0 || !strings.Contains(string(r.Stderr), "inconsistent device ids") {
		t.Fatalf("thin_delta 1.1.0: exit %d (%s); it no longer refuses", r.Code, r.Stderr)
	}
	want := tptest.MustRun(t, "thin_delta", args...)
	if code, out, errs := queryRun(deltaCommand, args...); code != 0 || out != string(want.Stdout) {
		t.Fatalf("thinmeta delta: exit %d (%s); same as 0.9.0: %v", code, errs, out == string(want.Stdout))
	}
}
