package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// stopAfterOpen, set in the environment of thinmeta run as this test
// binary, makes the process stop itself (SIGSTOP) once its input is open
// and locked.
const stopAfterOpen = "THINMETA_TEST_STOP_AFTER_OPEN"

func init() {
	if os.Getenv(asCLI) == "1" && os.Getenv(stopAfterOpen) == "1" {
		afterOpen = func() {
			// A SIGSTOP a process sends itself stops its threads a moment
			// later, not at once: wait for the SIGCONT, so nothing is read
			// before the test has changed the pool.
			cont := make(chan os.Signal, 1)
			signal.Notify(cont, syscall.SIGCONT)
			defer signal.Stop(cont)
			syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			<-cont
		}
	}
}

// cliCommand is thinmeta (this test binary as the CLI) with args, not yet
// started.
func cliCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asCLI+"=1")
	return cmd
}

// startStopped starts thinmeta with args and returns once it has opened
// (and locked) its input and stopped itself; continue it with SIGCONT.
func startStopped(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Env = append(cmd.Env, stopAfterOpen+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	stat := fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(stat)
		if err != nil {
			t.Skipf("no %s: %v", stat, err)
		}
		// pid (comm) state ...: the state follows the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'T' {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("thinmeta %v did not stop after opening its input", cmd.Args[1:])
}

// lockPool makes a pool whose dump is larger than a pipe and the dump's
// output buffer together, so a dump blocks on its output part way.
func lockPool(t *testing.T, dir string) string {
	t.Helper()
	img := filepath.Join(dir, "meta.img")
	if code, _, errs := queryRun(generateCommand, "-q", "--thins", "4", "--mappings", "5000", img); code != exitOK {
		t.Fatalf("generate: %s", errs)
	}
	return img
}

// exitCode returns how cmd ended (after Wait returned err).
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

// The race: a dump paused (SIGSTOP) while message commits, then
// continued. The dump holds a shared lock, so message is refused (naming
// the file) and the dump's output is the pool as it was, as thin_dump
// 0.9.0 prints it; "thinmeta --wait message" waits for the dump instead
// and commits after it. Before readers took the lock, both messages
// committed under the paused dump.
func TestDumpLockRefusesWriter(t *testing.T) {
	dir := t.TempDir()
	img := lockPool(t, dir)
	want := string(tptest.MustRun(t, "thin_dump", img).Stdout)

	dump := cliCommand("dump", img)
	out, err := dump.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	startStopped(t, dump)
	xml := filepath.Join(dir, "other.xml")
	if err := os.WriteFile(xml, []byte(strings.Replace(want, `transaction="4"`, `transaction="9"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"message", img, "create_thin", "10"},
		{"message", img, "create_thin", "11"},
		{"restore", "-q", "-i", xml, "-o", img},
		{"format", "--force", "--nr-data-blocks", "100", img},
	} {
		r := runProcess(t, nil, args...)
		if r.code != exitFail || !strings.Contains(r.stderr, img) {
			t.Fatalf("%s under a paused dump: exit %d, %q; want refused (exit 1) naming %s", args[0], r.code, r.stderr, img)
		}
	}
	waiter := cliCommand("--wait", "message", img, "create_thin", "12")
	var werr bytes.Buffer
	waiter.Stderr = &werr
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- waiter.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("--wait message did not wait for the dump: %v %s", err, werr.String())
	case <-time.After(200 * time.Millisecond):
	}
	dump.Process.Signal(syscall.SIGCONT)
	rest, err := io.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, dump.Wait()); code != 0 {
		t.Fatalf("dump exited %d", code)
	}
	if got := rest; string(got) != want {
		t.Fatalf("the paused dump printed a state that is not the pool's:\n%.2000s\nwant:\n%.2000s", got, want)
	}
	if code := exitCode(t, <-done); code != 0 {
		t.Fatalf("--wait message exited %d: %s", code, werr.String())
	}
	after := string(tptest.MustRun(t, "thin_dump", img).Stdout)
	if !strings.Contains(after, `dev_id="12"`) || strings.Contains(after, `dev_id="10"`) || strings.Contains(after, `dev_id="11"`) {
		t.Fatalf("after the dump: want thin 12 (waited) only:\n%.600s", after)
	}
}

// check in the same race: a paused check holds the lock, so the writer is
// refused and check reports the pool clean rather than false corruption.
func TestCheckLockRefusesWriter(t *testing.T) {
	dir := t.TempDir()
	img := lockPool(t, dir)
	chk := cliCommand("check", img)
	var stdout, stderr bytes.Buffer
	chk.Stdout, chk.Stderr = &stdout, &stderr
	startStopped(t, chk)
	if r := runProcess(t, nil, "message", img, "delete", "1"); r.code != exitFail {
		t.Fatalf("message under a paused check: exit %d %s", r.code, r.stderr)
	}
	chk.Process.Signal(syscall.SIGCONT)
	if code := exitCode(t, chk.Wait()); code != 0 {
		t.Fatalf("check: exit %d: %s", code, stderr.String())
	}
	tptest.CheckClean(t, img)
}

// A writer that ignores the locks (here, this test through
// thin.NewMetadata on a file it did not lock) commits three times while
// dump and check are paused after opening the pool: neither may print a
// torn state or false corruption. dump stops with thin.ErrStale (exit 1)
// having printed at most a prefix of the old pool's dump; check stops with
// ErrStale and no finding.
func TestStaleProcess(t *testing.T) {
	for _, name := range []string{"dump", "check", "ls"} {
		img := lockPool(t, t.TempDir())
		old := string(tptest.MustRun(t, "thin_dump", img).Stdout)
		args := []string{name, img}
		cmd := cliCommand(args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		startStopped(t, cmd)
		rogueCommits(t, img)
		cmd.Process.Signal(syscall.SIGCONT)
		code := exitCode(t, cmd.Wait())
		if code != exitFail || !strings.Contains(stderr.String(), thin.ErrStale.Error()) {
			t.Fatalf("%v on a pool changed underneath it: exit %d, %q; want ErrStale", args[0], code, stderr.String())
		}
		switch args[0] {
		case "dump":
			if !strings.HasPrefix(old, stdout.String()) {
				t.Fatalf("the stale dump printed what is not of the old pool:\n%.1000s", stdout.String())
			}
		case "check":
			if strings.Count(stderr.String(), "\n") != 1 {
				t.Fatalf("the stale check reported findings:\n%s", stderr.String())
			}
		case "ls":
			if stdout.Len() != 0 {
				t.Fatalf("the stale ls printed:\n%s", stdout.String())
			}
		}
	}
}

// rogueCommits changes the pool in img without taking its lock: thins
// deleted and created in three commits, so blocks the old state used are
// reused.
func rogueCommits(t *testing.T, img string) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	md, err := thin.NewMetadata(transaction.FileDevice{File: f}, st.Size(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(3) {
		if err := md.Delete(i + 1); err != nil {
			t.Fatal(err)
		}
		if err := md.CreateThin(100 + i); err != nil {
			t.Fatal(err)
		}
		if err := md.MapRange(100+i, 0, 4000); err != nil {
			t.Fatal(err)
		}
		if err := md.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// The unpack-vs-message race: unpack -f (and generate -f) replace
// OUTPUT by rename, which ignored the lock of the pool's writer and lost
// its commit. Now the rename is done under the old file's exclusive lock:
// refused while a writer holds it, and with --wait done after it.
func TestReplaceWaitsForPoolLock(t *testing.T) {
	dir := t.TempDir()
	img := lockPool(t, dir)
	other := filepath.Join(dir, "other.pack")
	if code, _, errs := queryRun(generateCommand, "-q", "--mappings", "10", other); code != exitOK {
		t.Fatal(errs)
	}
	md, err := thin.OpenMetadata(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(img)
	for _, args := range [][]string{
		{"unpack", "-q", "-f", "-i", other, "-o", img},
		{"generate", "-q", "-f", "--mappings", "10", img},
	} {
		r := runProcess(t, nil, args...)
		if r.code != exitFail || !strings.Contains(r.stderr, img) {
			t.Fatalf("%v while a writer holds the pool: exit %d, %q; want refused", args, r.code, r.stderr)
		}
		if st, _ := os.Stat(img); !os.SameFile(st, before) {
			t.Fatalf("%v replaced the pool under its writer", args)
		}
	}
	// The writer's commit survives.
	if err := md.CreateThin(77); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	waiter := cliCommand("--wait", "unpack", "-q", "-f", "-i", other, "-o", img)
	var werr bytes.Buffer
	waiter.Stderr = &werr
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- waiter.Wait() }()
	time.Sleep(100 * time.Millisecond)
	if st, _ := os.Stat(img); !os.SameFile(st, before) {
		t.Fatal("--wait unpack replaced the pool while its writer held it")
	}
	if !strings.Contains(string(tptest.MustRun(t, "thin_dump", img).Stdout), `dev_id="77"`) {
		t.Fatal("the writer's commit is lost")
	}
	md.Close()
	if code := exitCode(t, <-done); code != 0 {
		t.Fatalf("--wait unpack: exit %d: %s", code, werr.String())
	}
	if st, _ := os.Stat(img); os.SameFile(st, before) {
		t.Fatal("--wait unpack did not replace the pool after the writer closed")
	}
}

// Self-overwrite: an output that is the same file (device and inode) as an
// input is refused before anything is written, under any name.
func TestOutputIsInput(t *testing.T) {
	dir := t.TempDir()
	img := lockPool(t, dir)
	link := filepath.Join(dir, "link.img")
	if err := os.Link(img, link); err != nil {
		t.Fatal(err)
	}
	xml := filepath.Join(dir, "pool.xml")
	if code, out, errs := queryRun(dumpCommand, img); code != exitOK {
		t.Fatal(errs)
	} else if err := os.WriteFile(xml, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	pk := filepath.Join(dir, "pool.pack")
	if code, _, errs := queryRun(packCommand, "-q", "-i", img, "-o", pk); code != exitOK {
		t.Fatal(errs)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	imgBytes, xmlBytes, pkBytes := read(img), read(xml), read(pk)
	for _, args := range [][]string{
		{"dump", "-o", img, img},
		{"dump", "-o", link, img},
		{"dump", "--repair", "-o", img, img},
		{"restore", "-q", "-i", xml, "-o", xml},
		{"pack", "-q", "-f", "-i", img, "-o", link},
		{"unpack", "-q", "-f", "-i", pk, "-o", pk},
	} {
		code, _, errs := queryRun(lookup(args[0]), args[1:]...)
		if code != exitFail || !strings.Contains(errs, thin.ErrSameFile.Error()) {
			t.Errorf("%v: exit %d, %q; want refused with ErrSameFile", args, code, errs)
		}
	}
	// repair has its own sentinel (repair.ErrSameDevice).
	if code, _, errs := queryRun(lookup("repair"), "-q", "-i", img, "-o", link); code == exitOK {
		t.Errorf("repair -i X -o X: exit 0 %s", errs)
	}
	if !bytes.Equal(read(img), imgBytes) || !bytes.Equal(read(xml), xmlBytes) || !bytes.Equal(read(pk), pkBytes) {
		t.Fatal("a refused self-overwrite changed its input")
	}
}

// loopDevice attaches img to a loop device (root only) and returns its
// path; it is detached when the test ends.
func loopDevice(t *testing.T, img string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Skipf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// A metadata-snapshot read of a block device that another opener holds
// exclusively and writes (the kernel under an active pool; here this test,
// through the O_EXCL descriptor it holds): dump -m opens it shared. Live
// commits that leave the snapshot alone do not disturb it (its output is
// thin_dump 0.9.0's -m of the pool as it was); once the snapshot is
// released and its blocks reused, the read stops with ErrStale and prints
// nothing of the new state.
func TestSharedDeviceSnapshotRead(t *testing.T) {
	for _, release := range []bool{false, true} {
		img := lockPool(t, t.TempDir())
		if r := runProcess(t, nil, "message", img, "reserve_metadata_snap"); r.code != 0 {
			t.Fatal(r.stderr)
		}
		want := string(tptest.MustRun(t, "thin_dump", "-m", img).Stdout)
		dev := loopDevice(t, img)
		held, err := os.OpenFile(dev, os.O_RDWR|syscall.O_EXCL, 0)
		if err != nil {
			t.Fatal(err)
		}
		if r := runProcess(t, nil, "dump", dev); r.code != exitFail {
			t.Fatalf("dump of a device held exclusively: exit %d, want refused", r.code)
		}
		cmd := cliCommand("dump", "-m", dev)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		startStopped(t, cmd)
		size, err := held.Seek(0, io.SeekEnd)
		if err != nil {
			t.Fatal(err)
		}
		md, err := thin.NewMetadata(transaction.FileDevice{File: held}, size, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range uint64(3) {
			if release && i == 0 {
				if err := md.ReleaseMetadataSnapshot(); err != nil {
					t.Fatal(err)
				}
			}
			if release {
				if err := md.Delete(i + 1); err != nil {
					t.Fatal(err)
				}
			}
			if err := md.CreateThin(100 + i); err != nil {
				t.Fatal(err)
			}
			if err := md.MapRange(100+i, 0, 1000); err != nil {
				t.Fatal(err)
			}
			if err := md.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		held.Sync()
		cmd.Process.Signal(syscall.SIGCONT)
		code := exitCode(t, cmd.Wait())
		held.Close()
		switch {
		case !release && (code != 0 || stdout.String() != want):
			t.Fatalf("dump -m under live commits: exit %d %s; output equal to thin_dump -m: %v", code, stderr.String(), stdout.String() == want)
		case release && (code != exitFail || !strings.Contains(stderr.String(), thin.ErrStale.Error()) || !strings.HasPrefix(want, stdout.String())):
			t.Fatalf("dump -m of a released snapshot: exit %d, %q, %d bytes of output", code, stderr.String(), stdout.Len())
		}
	}
}
