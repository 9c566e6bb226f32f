package live_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/oracle"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin/check"
)

// guestTests are the tests that must pass in the guest (not skip).
var guestTests = map[string][]string{
	"dm.test":       {"TestGuestAgainstDmsetup", "TestGuestManyDevices"},
	"thinmeta.test": {"TestGuestPoolCLI"},
	"live.test": {"TestGuestLifecycle", "TestGuestSnapshotUnderWrites", "TestGuestSnapshotErrors",
		"TestGuestSnapshotOutOfMetadataSpace", "TestGuestSnapshotCrash", "TestGuestReads", "TestGuestGrowth",
		"TestGuestBadInput"},
}

// TestKernelGuest proves packages dm and live on the real kernel: it
// builds their tests as static binaries, runs their TestGuest scenarios in
// one boot of the kernel oracle (Debian's Linux with the dm-thin target,
// under qemu), then checks on the host the metadata each scenario left —
// with thin_check 0.9.0 and 1.1.0 and thinmeta's check — and compares the
// dump of a metadata snapshot taken while a writer wrote with thin_dump -m
// of the device after deactivation. It fails (not skips) in CI when qemu or
// the oracle is missing.
func TestKernelGuest(t *testing.T) {
	oracle.Dir(t)
	tptest.Need(t, "thin_dump")
	dir := t.TempDir()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	bins := map[string]string{"dm.test": "../dm", "live.test": ".", "thinmeta.test": "../cmd/thinmeta"}
	for bin, pkg := range bins {
		cmd := exec.Command(goTool, "test", "-c", "-o", filepath.Join(dir, bin), pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", bin, err, out)
		}
	}
	meta, data := filepath.Join(dir, "meta.img"), filepath.Join(dir, "data.img")
	for path, size := range map[string]int64{meta: 80 << 20, data: 1040 << 20} {
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(dir, "guest.sh")
	if err := os.WriteFile(script, []byte(`export THINMETA_GUEST=1
dm.test -test.v -test.run '^TestGuest' -test.timeout 300s
live.test -test.v -test.run '^TestGuest' -test.timeout 900s
thinmeta.test -test.v -test.run '^TestGuest' -test.timeout 300s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "console.log")
	// Error paths make the kernel log device-mapper errors on purpose:
	// the oracle's strict mode is off, and kernel warnings are checked here.
	res := oracle.Run(t, "script", "--meta", meta, "--data", data, "--script", script,
		"--bin", filepath.Join(dir, "dm.test"), "--bin", filepath.Join(dir, "live.test"), "--bin", filepath.Join(dir, "thinmeta.test"),
		"--env", "ORACLE_STRICT_KMSG=0", "--no-xml", "--quiet", "--timeout", "560", "--log", logPath)
	console, _ := os.ReadFile(logPath)
	if len(console) == 0 {
		console = res.Output
	}
	if !res.OK() {
		t.Fatalf("kernel oracle: exit %d\n%s\n--- console ---\n%s", res.Code, res.Output, tail(console, 200))
	}
	for bin, tests := range guestTests {
		for _, name := range tests {
			if !bytes.Contains(console, []byte("--- PASS: "+name+" ")) {
				t.Errorf("%s: %s did not pass in the guest", bin, name)
			}
		}
	}
	if bytes.Contains(console, []byte("--- FAIL")) {
		t.Errorf("a guest test failed")
	}
	bad := regexp.MustCompile(`WARNING:|BUG:|Oops|Call Trace|general protection|blocked for more than`)
	for _, l := range strings.Split(string(console), "\n") {
		if strings.HasPrefix(l, "ORACLE-KMSG") && bad.MatchString(l) {
			t.Errorf("kernel: %s", l)
		}
	}
	if t.Failed() {
		t.Fatalf("--- console ---\n%s", tail(console, 300))
	}
	for _, l := range strings.Split(string(console), "\n") {
		if strings.HasPrefix(l, "    guest_") || strings.HasPrefix(l, "--- ") {
			t.Log(strings.TrimSpace(l))
		}
	}

	// The regions the scenarios announced.
	dumps := map[string][2]int64{}
	var regions []map[string]string
	sc := bufio.NewScanner(bytes.NewReader(console))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if f, ok := strings.CutPrefix(l, "THINMETA-DUMP "); ok {
			kv := fields(f)
			dumps[kv["slot"]] = [2]int64{atoi(t, kv["offset"]), atoi(t, kv["bytes"])}
		}
		if f, ok := strings.CutPrefix(l, "THINMETA-REGION "); ok {
			regions = append(regions, fields(f))
		}
	}
	if len(regions) < 7 {
		t.Fatalf("%d regions announced\n%s", len(regions), tail(console, 100))
	}
	held := 0
	for _, r := range regions {
		name := "region" + r["region"]
		img := filepath.Join(dir, name+".img")
		extract(t, meta, img, atoi(t, r["meta_offset"]), atoi(t, r["meta_bytes"]))
		t.Run(name, func(t *testing.T) {
			tptest.CheckClean(t, img)
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			var fs []string
			if sum, _ := check.Device(context.Background(), f, st.Size(), check.Options{}, func(x check.Finding) { fs = append(fs, x.String()) }); !sum.OK(false) {
				t.Fatalf("thinmeta check: %v", fs)
			}
			if r["held"] != "1" {
				return
			}
			held++
			d, ok := dumps[r["dump_slot"]]
			if !ok {
				t.Fatalf("no dump for slot %s", r["dump_slot"])
			}
			ours := make([]byte, d[1])
			df, err := os.Open(data)
			if err != nil {
				t.Fatal(err)
			}
			defer df.Close()
			if _, err := df.ReadAt(ours, d[0]); err != nil {
				t.Fatal(err)
			}
			want := tptest.MustRun(t, "thin_dump", "-m", img).Stdout
			if !bytes.Equal(ours, want) {
				t.Fatalf("thinmeta dump of the metadata snapshot taken during the writes differs from thin_dump -m after deactivation\n--- ours ---\n%s\n--- thin_dump -m ---\n%s", ours, want)
			}
			if !bytes.Contains(ours, []byte("<device dev_id=\"1\"")) {
				t.Fatalf("the snapshot's dump holds no device 1:\n%s", ours)
			}
		})
	}
	if held == 0 {
		t.Error("no scenario left a metadata snapshot to compare with thin_dump -m")
	}
}

func fields(s string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("marker number %q", s)
	}
	return n
}

func extract(t *testing.T, from, to string, off, n int64) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	b := make([]byte, n)
	if _, err := src.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func tail(b []byte, lines int) string {
	l := strings.Split(string(b), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
