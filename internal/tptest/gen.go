package tptest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Gen is a generation of thin-provisioning-tools. Images thinmeta writes
// must pass the checker of both: 0.9.0 is Debian 12's (C++), 1.1.0 the Rust
// rewrite that current distributions ship and LVM runs before it activates
// a pool.
type Gen int

const (
	// V090 is thin-provisioning-tools 0.9.0, installed from Debian 12's
	// package (/usr/sbin). Need, Run and MustRun use it.
	V090 Gen = iota
	// V110 is thin-provisioning-tools 1.1.0, Debian trixie's package
	// extracted by .ci/tpt1 into $THINMETA_TPT1_ROOT (default
	// ~/.cache/thinmeta/tpt-1.1.0); its pdata_tools is multi-call, with
	// thin_check and the others as symlinks beside it.
	V110
)

// Gens lists both generations, oldest first.
var Gens = []Gen{V090, V110}

func (g Gen) String() string {
	if g == V110 {
		return "1.1.0"
	}
	return "0.9.0"
}

// Tpt1Root returns where .ci/tpt1 extracts thin-provisioning-tools 1.1.0.
func Tpt1Root() string {
	if r := os.Getenv("THINMETA_TPT1_ROOT"); r != "" {
		return r
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "thinmeta", "tpt-1.1.0")
}

// NeedGen returns the path of a command (thin_check, thin_dump, ...) of
// generation g. If it is missing the test is skipped, or failed when CI is
// set.
func NeedGen(t testing.TB, g Gen, name string) string {
	t.Helper()
	if g == V090 {
		return Need(t, name)
	}
	c := filepath.Join(Tpt1Root(), "usr", "sbin", name)
	if isExec(c) {
		return c
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s of thin-provisioning-tools 1.1.0 not found at %s and CI is set: run .ci/tpt1", name, c)
	}
	t.Skipf("%s of thin-provisioning-tools 1.1.0 not found at %s (run .ci/tpt1)", name, c)
	return ""
}

// RunGen runs a command of generation g and returns its output and exit
// code. A failure to start it fails the test.
func RunGen(t testing.TB, g Gen, name string, args ...string) Result {
	t.Helper()
	return runPath(t, NeedGen(t, g, name), args...)
}

// MustRunGen is RunGen that fails the test on a non-zero exit.
func MustRunGen(t testing.TB, g Gen, name string, args ...string) Result {
	t.Helper()
	r := RunGen(t, g, name, args...)
	if r.Code != 0 {
		t.Fatalf("%s %s (%s): exit %d\n%s%s", name, strings.Join(args, " "), g, r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// CheckClean runs thin_check of both generations on the metadata image at
// path (with extra arguments, such as -m or --super-block-only) and fails
// the test unless both exit 0. 1.1.0 also reports non-fatal problems it
// finds on stderr with exit 0; those fail the test too, since thinmeta
// must write images with no findings at all.
func CheckClean(t testing.TB, path string, args ...string) {
	t.Helper()
	for _, g := range Gens {
		r := RunGen(t, g, "thin_check", append(append([]string(nil), args...), path)...)
		if r.Code != 0 {
			t.Fatalf("thin_check %s %s: exit %d\n%s%s", g, strings.Join(append(args, path), " "), r.Code, r.Stdout, r.Stderr)
		}
		if f := Findings(r.Stderr); len(f) > 0 {
			t.Fatalf("thin_check %s %s: exit 0 but reported\n%s", g, strings.Join(append(args, path), " "), strings.Join(f, "\n"))
		}
	}
}

// progressLines are what thin_check of either generation prints on stderr
// on a clean run: the names of its stages, not findings.
var progressLines = map[string]bool{
	// 0.9.0
	"examining superblock":      true,
	"examining devices tree":    true,
	"examining mapping tree":    true,
	"checking space map counts": true,
	// 1.1.0
	"Checking thin metadata": true,
	"device details tree":    true,
	"mapping tree":           true,
	"data space map":         true,
	"metadata space map":     true,
}

// Findings returns the lines of a thin_check run's stderr that are not
// stage names: what it found, fatal or not.
func Findings(stderr []byte) []string {
	var out []string
	for _, l := range strings.Split(string(stderr), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !progressLines[l] {
			out = append(out, l)
		}
	}
	return out
}

// CheckRejects runs thin_check of both generations on the metadata image
// at path (with extra arguments) and fails the test unless both exit
// non-zero: metadata they must refuse, such as an extended pool or the
// remains of a failed restore.
func CheckRejects(t testing.TB, path string, args ...string) {
	t.Helper()
	for _, g := range Gens {
		r := RunGen(t, g, "thin_check", append(append([]string(nil), args...), path)...)
		if r.Code == 0 {
			t.Fatalf("thin_check %s %s accepts it:\n%s%s", g, strings.Join(append(args, path), " "), r.Stdout, r.Stderr)
		}
	}
}
