package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memtest"
)

// asCLI, set in the environment, makes the test binary run as the CLI: a
// test can then run thinmeta as a real process (to measure it, or to kill
// it) without building it.
const asCLI = "THINMETA_TEST_AS_CLI"

// hwmFile, set in the environment of such a process, names a file to
// which it writes its peak resident set (VmHWM) when it exits. (The
// rusage of a child started by a large process is no measure: Linux
// carries the parent's peak over into the child's.)
const hwmFile = "THINMETA_TEST_HWM_FILE"

func TestMain(m *testing.M) {
	if os.Getenv(asCLI) == "1" {
		code := runAsCLI(os.Args[1:])
		if f := os.Getenv(hwmFile); f != "" {
			if hwm, err := memtest.SelfPeakRSS(); err == nil {
				os.WriteFile(f, []byte(strconv.FormatUint(hwm, 10)), 0o644)
			}
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// runAsCLI is run, with the test-only hooks of the process (see
// crashhook_test.go) installed first.
var runAsCLI = run

// procResult is how a thinmeta process ended.
type procResult struct {
	code           int
	stdout, stderr string
	rss            uint64 // peak resident set, bytes (0 if it did not exit normally)
	signaled       bool   // killed by a signal
}

// runProcess runs thinmeta (this test binary as the CLI) with args and
// extra environment variables.
func runProcess(t testing.TB, env []string, args ...string) procResult {
	t.Helper()
	hwm := filepath.Join(t.TempDir(), "hwm")
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), asCLI+"=1", hwmFile+"="+hwm), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := procResult{stdout: out.String(), stderr: errb.String()}
	if b, err := os.ReadFile(hwm); err == nil {
		r.rss, _ = strconv.ParseUint(string(b), 10, 64)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		r.signaled = ee.ExitCode() == -1
	default:
		t.Fatalf("thinmeta %v: %v", args, err)
	}
	return r
}
