// Package oracle runs the kernel oracle (../shared/tools/kernel-oracle
// beside the project: Debian's real Linux kernel under qemu driving the
// dm-thin target) from tests.
package oracle

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// Dir returns the oracle's directory. If the oracle or qemu is missing the
// test is skipped, or failed when CI is set.
func Dir(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "tools", "kernel-oracle")
	missing := ""
	if _, err := os.Stat(filepath.Join(dir, "run-oracle")); err != nil {
		missing = "kernel oracle not found at " + dir
	} else if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		missing = "qemu-system-x86_64 not installed (apt-get install qemu-system-x86 busybox-static)"
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatal(missing)
		}
		t.Skip(missing)
	}
	return dir
}

// Result is the outcome of an oracle run.
type Result struct {
	Code   int
	Output []byte
}

// OK reports whether the oracle passed.
func (r Result) OK() bool { return r.Code == 0 && bytes.Contains(r.Output, []byte("ORACLE-HOST-OK")) }

// Run runs run-oracle with args and returns its exit code and output.
func Run(t testing.TB, args ...string) Result {
	t.Helper()
	dir := Dir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "run-oracle"), args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) } // stops qemu too
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run-oracle: %v", err)
		}
		code = ee.ExitCode()
	}
	return Result{Code: code, Output: out}
}
