package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/crashtest"
	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// faultBinary builds thinmeta with the tag thinmeta_faults, whose device
// kills the process at the write or flush THINMETA_FAULT_AT names.
func faultBinary(t *testing.T) string {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("the go tool is needed to build the fault-injecting binary")
			}
			t.Skip("no go tool")
		}
	}
	bin := filepath.Join(t.TempDir(), "thinmeta-faults")
	cmd := exec.Command(goTool, "build", "-tags", "thinmeta_faults", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags thinmeta_faults: %v\n%s", err, out)
	}
	return bin
}

// poolDump is what a metadata file holds: the dump of a pool that checks
// clean (with thinmeta's check), or "" if it holds no pool. A pool that
// does not check clean fails the test.
func poolDump(t *testing.T, path string) string {
	t.Helper()
	p, err := thin.Open(path, nil)
	if errors.Is(err, superblock.ErrUnformatted) {
		return "" // no pool: block 0 is zeros
	}
	if err != nil {
		t.Fatalf("a crash left a superblock that does not open: %v", err)
	}
	defer p.Close()
	var fs []string
	if sum, _ := check.Pool(context.Background(), p, check.Options{}, func(f check.Finding) { fs = append(fs, f.String()) }); !sum.OK(false) {
		t.Fatalf("%s: a killed process left a pool that does not check clean:\n%s", path, strings.Join(fs, "\n"))
	}
	var b bytes.Buffer
	if err := dump.Dump(context.Background(), &b, p, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A crash of the process itself: thinmeta, built with a fault hook, is
// killed (SIGKILL) at each write and fdatasync of a workload in turn —
// message batches, restore over a pool, conversion both ways, blob create,
// format over a pool — and what it leaves on the file must be the old
// state or the new one (for restore and format, which zero the superblock
// first, also no pool), checked by thinmeta check, and each distinct
// stock survivor by both thin_check generations.
func TestKilledAtEveryWrite(t *testing.T) {
	bin := faultBinary(t)
	dir := t.TempDir()
	run := func(env []string, args ...string) (code int, killed bool, stderr string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		var eb bytes.Buffer
		cmd.Stderr = &eb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), ee.ExitCode() == -1, eb.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, false, eb.String()
	}
	must := func(args ...string) {
		t.Helper()
		if code, _, stderr := run(nil, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
	}
	// Templates.
	stock := filepath.Join(dir, "stock.img")
	must("format", "--size", "16M", "--nr-data-blocks", "40000", stock)
	must("message", "-q", stock, "create_thin", "1", "map", "1", "0", "3000", "create_snap", "2", "1", "map", "2", "0", "500",
		"create_thin", "3", "map", "3", "10000", "2000")
	ext := filepath.Join(dir, "ext.img")
	must("format", "--size", "16M", "--nr-data-blocks", "40000", "--extended", "--blob-size", "32", "--index-bytes", "8", ext)
	must("blob", "create", ext, "first")
	must("blob", "create", ext, "second")
	rng := rand.New(rand.NewPCG(5, 5))
	var xb bytes.Buffer
	genpool.Generate(rng, genpool.Spec{Devices: 5, MinMappings: 2000, MaxMappings: 8000, MeanRun: 3, Sparsity: 2,
		SnapshotFraction: 0.5, RewriteFraction: 0.3}).WriteXML(&xb)
	xml := filepath.Join(dir, "pool.xml")
	if err := os.WriteFile(xml, xb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	workloads := []struct {
		name     string
		template string
		args     func(meta string) []string
		noPool   bool // the command may leave no pool (it zeroes the superblock first)
	}{
		{"message batch", stock, func(m string) []string {
			return []string{"message", "-q", m, "create_thin", "5", "map", "5", "0", "4000", "create_snap", "6", "5", "map", "6", "100", "700",
				"delete", "1", "unmap", "2", "0", "200", "reserve_metadata_snap", "map", "3", "0", "300", "set_transaction_id", "0", "9", "resize_data", "200000"}
		}, false},
		{"message release", stock, func(m string) []string {
			return []string{"message", "-q", m, "reserve_metadata_snap", "delete", "2", "release_metadata_snap", "map", "1", "5000", "50"}
		}, false},
		{"restore", stock, func(m string) []string { return []string{"restore", "-q", "-i", xml, "-o", m} }, true},
		{"convert to extended", stock, func(m string) []string {
			return []string{"convert", "-q", "--to", "extended", "--blob-size", "64", "--index-bytes", "16", m}
		}, false},
		{"convert to stock", ext, func(m string) []string { return []string{"convert", "-q", "--to", "stock", m} }, false},
		{"blob create", ext, func(m string) []string { return []string{"blob", "create", m, "third"} }, false},
		{"format", stock, func(m string) []string { return []string{"format", "-f", "--nr-data-blocks", "30000", m} }, true},
	}
	oracle := crashtest.NewOracle(t)
	kills := 0
	for _, w := range workloads {
		meta := filepath.Join(dir, "meta.img")
		copyFile(t, w.template, meta)
		oldDump := poolDump(t, meta)
		if code, _, stderr := run(nil, w.args(meta)...); code != 0 {
			t.Fatalf("%s: exit %d\n%s", w.name, code, stderr)
		}
		newDump := poolDump(t, meta)
		judged := map[string]bool{}
		for n := 1; ; n++ {
			copyFile(t, w.template, meta)
			_, killed, stderr := run([]string{"THINMETA_FAULT_AT=" + fmt.Sprint(n)}, w.args(meta)...)
			if !killed {
				if got := poolDump(t, meta); got != newDump {
					t.Fatalf("%s: not killed at I/O %d, and the result differs from the uncrashed run's (%s)", w.name, n, stderr)
				}
				t.Logf("%s: killed at each of %d writes and flushes", w.name, n-1)
				break
			}
			kills++
			got := poolDump(t, meta)
			switch {
			case got == oldDump, got == newDump, got == "" && w.noPool:
			default:
				t.Fatalf("%s: killed at I/O %d, the file holds neither the old nor the new state:\n%s", w.name, n, got)
			}
			if got != "" && !judged[got] && !strings.Contains(got, "blob_size=") {
				judged[got] = true
				b, err := os.ReadFile(meta)
				if err != nil {
					t.Fatal(err)
				}
				oracle.Check(b, fmt.Sprintf("%s, killed at I/O %d", w.name, n))
			}
		}
	}
	oracle.Wait()
	t.Logf("%d kills", kills)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
