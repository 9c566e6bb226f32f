package main

import (
	"bytes"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
)

func metadataSizeRun(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), isTerminal: func(*os.File) bool { return false }}
	code := metadataSizeCommand.run(e, args)
	return code, out.String(), errb.String()
}

// printedTolerance is half the last digit of a number as printed ("0.51",
// "5.24e+02", "0.5117568969726563").
func printedTolerance(s string) float64 {
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		exp, _ = strconv.Atoi(s[i+1:])
	}
	d := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		d = len(mant) - i - 1
	}
	return 0.5 * math.Pow10(exp-d)
}

// For every combination of block size, pool size, number of thins and
// unit, "metadata-size --compat G" gives the estimate thin_metadata_size
// of generation G gives: the same digits when it is a whole number, else
// the same value to the precision printed; and the default estimate is
// never below either generation's (nor the largest device).
func TestMetadataSizeVersusThinMetadataSize(t *testing.T) {
	blocks := []string{"64k", "128k", "256k", "512k", "1m", "2m", "4m", "64m", "1g", "128", "2048"}
	pools := []string{"1g", "10g", "100g", "1t", "3t", "16t", "256t", "1p", "4p", "5000000000", "2T", "500G"}
	thins := []string{"1", "7", "65535", "1000000"}
	units := []string{"b", "s", "k", "m", "g", "K", "M", "G"}
	n := 0
	for _, b := range blocks {
		for _, s := range pools {
			for _, m := range thins {
				var ours [2]uint64 // estimates of --compat 0.9 and 1.1, bytes
				for _, u := range units {
					for gi, g := range []tptest.Gen{tptest.V090, tptest.V110} {
						args := []string{"-b", b, "-s", s, "-m", m, "-u", u, "-n"}
						if g == tptest.V110 && strings.ContainsAny(s, "TG") {
							continue // 1.1.0 takes powers of 1024 only
						}
						r := tptest.RunGen(t, g, "thin_metadata_size", args...)
						if g == tptest.V090 && r.Code == 1 && bytes.Contains(r.Stderr, []byte("pool size must be larger than block size")) {
							// 0.9.0 wants two blocks; 1.1.0 and thinmeta one.
							if code, _, _ := metadataSizeRun(append(args, "--compat", "0.9")...); code != 0 {
								t.Errorf("%v: exit %d", args, code)
							}
							continue
						}
						if r.Code != 0 {
							t.Fatalf("thin_metadata_size %v %v: exit %d: %s", g, args, r.Code, r.Stderr)
						}
						want := strings.TrimSpace(string(r.Stdout))
						code, out, errs := metadataSizeRun(append(args, "--compat", []string{"0.9", "1.1"}[gi])...)
						got := strings.TrimSpace(out)
						if code != 0 {
							t.Fatalf("metadata-size %v: exit %d: %s", args, code, errs)
						}
						n++
						wv, err1 := strconv.ParseFloat(want, 64)
						gv, err2 := strconv.ParseFloat(got, 64)
						if err1 != nil || err2 != nil {
							t.Fatalf("%v (%v): unreadable numbers %q and %q", args, g, want, got)
						}
						if _, err := strconv.ParseUint(want, 10, 64); err == nil {
							if got != want {
								t.Errorf("%v (%v): %s, thin_metadata_size says %s", args, g, got, want)
							}
						} else if math.Abs(gv-wv) > printedTolerance(want)+printedTolerance(got) {
							t.Errorf("%v (%v): %s, thin_metadata_size says %s", args, g, got, want)
						}
						if u == "b" {
							ours[gi], _ = strconv.ParseUint(got, 10, 64)
						}
					}
				}
				// The default is at least either generation's, up to the
				// largest device.
				_, out, _ := metadataSizeRun("-b", b, "-s", s, "-m", m, "-u", "b", "-n")
				def, _ := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
				limit := uint64(4161600) * 4096
				for gi, o := range ours {
					if o != 0 && def < min(o, limit) {
						t.Errorf("-b %s -s %s -m %s: default estimate %d bytes, below --compat %s's %d", b, s, m, def, []string{"0.9", "1.1"}[gi], o)
					}
				}
			}
		}
	}
	t.Logf("%d estimates compared", n)
}

// The library's estimate is what the command prints by default.
func TestMetadataSizeUsesLibrary(t *testing.T) {
	for _, c := range [][3]uint64{{128, 1 << 24, 1000}, {2048, 1 << 20, 1}, {128, 100, 0}} {
		blocks, _ := thin.EstimateMetadataBlocks(c[1], c[2])
		args := []string{"-b", strconv.FormatUint(c[0], 10), "-s", strconv.FormatUint(c[0]*c[1], 10),
			"-m", strconv.FormatUint(c[2], 10), "-n"}
		_, out, _ := metadataSizeRun(args...)
		if want := strconv.FormatUint(blocks*8, 10) + "\n"; out != want {
			t.Errorf("%v: %q, want %q", args, out, want)
		}
	}
}

// Output forms, units and refusals.
func TestMetadataSizeCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"-b", "64k", "-s", "1t", "-m", "1000", "--compat", "0.9"}, 0, "1073224 sectors\n"},
		{[]string{"-b64k", "-s1t", "-m1000", "--compat", "1.1", "-um", "-nshort"}, 0, "524.04m\n"},
		{[]string{"--block-size=64k", "--pool-size=1t", "--max-thins=1000", "--compat=1.1", "--unit=mebi", "--numeric-only=long"}, 0, "524.04mebibytes\n"},
		{[]string{"-b", "64k", "-s", "1t", "-m", "1000", "-u", "s", "-n", "--compat", "1.1"}, 0, "1073232\n"},
		{[]string{"-b", "192k", "-s", "1t", "-m", "1", "-n", "--compat", "1.1"}, 0, "355096\n"}, // 0.9.0 refuses 192k; 1.1.0 says 355096
		{[]string{"-b", "64k", "-s", "64k", "-m", "0", "-n", "--compat", "1.1"}, 0, "16\n"},
		{[]string{"-b", "4k", "-s", "1t", "-m", "1"}, exitUsage, ""},
		{[]string{"-b", "96k", "-s", "1t", "-m", "1"}, exitUsage, ""},
		{[]string{"-b", "2g", "-s", "1p", "-m", "1"}, exitUsage, ""},
		{[]string{"-b", "64k", "-s", "32k", "-m", "1"}, exitUsage, ""},
		{[]string{"-b", "64k", "-s", "1t", "-m", "1k"}, exitUsage, ""},
		{[]string{"-b", "64k", "-s", "1t"}, exitUsage, ""},
		{[]string{"-b", "64k", "-s", "1x", "-m", "1"}, exitUsage, ""},
		{[]string{"-b", "64k", "-s", "1t", "-m", "1", "-u", "q"}, exitUsage, ""},
		{[]string{"-b", "64k", "-s", "1t", "-m", "1", "-nwide"}, exitUsage, ""},
		{[]string{"-b", "64k", "-s", "1t", "-m", "1", "--compat", "2.0"}, exitUsage, ""},
		{[]string{"-b", "64k", "-s", "99999999999999999999999p", "-m", "1"}, exitUsage, ""},
	} {
		code, out, errs := metadataSizeRun(tc.args...)
		if code != tc.code || tc.code == 0 && out != tc.out || tc.code != 0 && (out != "" || errs == "") {
			t.Errorf("%v: exit %d, %q, %q; want exit %d, %q", tc.args, code, out, errs, tc.code, tc.out)
		}
	}
	// A pool no metadata device can hold: the largest, and a warning.
	code, out, errs := metadataSizeRun("-b", "64k", "-s", "4p", "-m", "1", "-n", "-u", "b")
	if code != 0 || out != "17045913600\n" || !strings.Contains(errs, "warning: no metadata device holds such a pool") {
		t.Errorf("4 PiB pool: exit %d, %q, %q", code, out, errs)
	}
}
