// Package tptest runs thin-provisioning-tools (the oracle thinmeta is
// compared with) from tests, and unpacks the shared kernel-written fixtures.
//
// When the environment variable CI is set, a missing tool fails the test
// instead of skipping it, so CI cannot pass without the comparison.
package tptest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/pack"
)

// Need returns the path of a thin-provisioning-tools command (thin_check,
// thin_dump, ...). If it is not installed the test is skipped, or failed
// when CI is set.
func Need(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if c := filepath.Join(dir, name); isExec(c) {
			return c
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found and CI is set: install thin-provisioning-tools", name)
	}
	t.Skipf("%s not found (install thin-provisioning-tools)", name)
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Result is what a command printed and how it exited.
type Result struct {
	Stdout, Stderr []byte
	Code           int
}

// Run runs a thin-provisioning-tools command and returns its output and exit
// code. A failure to start it fails the test.
func Run(t testing.TB, name string, args ...string) Result {
	t.Helper()
	return runPath(t, Need(t, name), args...)
}

func runPath(t testing.TB, path string, args ...string) Result {
	t.Helper()
	name := filepath.Base(path)
	cmd := exec.Command(path, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running %s: %v", name, err)
		}
		code = ee.ExitCode()
	}
	return Result{out.Bytes(), errb.Bytes(), code}
}

// MustRun is Run that fails the test on a non-zero exit.
func MustRun(t testing.TB, name string, args ...string) Result {
	t.Helper()
	r := Run(t, name, args...)
	if r.Code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r
}

// FixturesDir returns the directory of the shared kernel-written fixtures
// (../shared/fixtures beside the project).
func FixturesDir(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "fixtures")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("shared fixtures not found at %s", dir)
		}
		t.Skipf("shared fixtures not found at %s", dir)
	}
	return dir
}

// Fixtures returns the paths of every .pack fixture.
func Fixtures(t testing.TB) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(FixturesDir(t), "*.pack"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	return m
}

// Unpack unpacks a pack file into a new image in the test's temporary
// directory and returns its path.
func Unpack(t testing.TB, packPath string) string {
	t.Helper()
	in, err := os.Open(packPath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	name := strings.TrimSuffix(filepath.Base(packPath), ".pack") + ".img"
	out, err := os.Create(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := pack.Unpack(in, out); err != nil {
		t.Fatalf("unpacking %s: %v", packPath, err)
	}
	return out.Name()
}

// DamagedFixtures names the fixtures that thin_check 0.9.0 rejects.
var DamagedFixtures = map[string]bool{
	"tmeta_device_id_reuse_with_corrupted_thins": true,
	"tmeta_with_corrupted_metadata_snap":         true,
	"corrupted_tmeta_with_metadata_snap":         true,
}

// Name returns a fixture's name without directory and extension.
func Name(path string) string {
	return strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
}
