package live

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/thin"
)

// TestGuestChild is the manager process the crash tests start (and kill):
// it opens the pool without recovery and takes a snapshot, stopping in the
// window until the parent says go (fd 4) after saying where it is (fd 3).
func TestGuestChild(t *testing.T) {
	spec := os.Getenv("THINMETA_CHILD")
	if spec == "" {
		t.Skip("started by the crash tests")
	}
	ctl := guest(t)
	f := strings.Fields(spec) // pool id origin
	id, _ := strconv.ParseUint(f[1], 10, 64)
	origin, _ := strconv.ParseUint(f[2], 10, 64)
	p, err := Open(ctl, f[0], &OpenOptions{NoRecover: true})
	if err != nil {
		t.Fatal(err)
	}
	ready, hold := os.NewFile(3, "ready"), os.NewFile(4, "go")
	testHookWindow = func() {
		ready.Write([]byte("in-window\n"))
		var b [1]byte
		hold.Read(b[:])
	}
	if err := p.Snapshot(id, origin, nil); err != nil {
		t.Fatal(err)
	}
	fmt.Println("child: snapshot done")
}

// child starts TestGuestChild for a snapshot and returns once it is inside
// the window, with the pipe that lets it go on.
func startChild(t *testing.T, pool string, id, origin uint64) (*exec.Cmd, *os.File) {
	t.Helper()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGuestChild$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("THINMETA_CHILD=%s %d %d", pool, id, origin))
	cmd.ExtraFiles = []*os.File{readyW, goR}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyW.Close()
	goR.Close()
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := readyR.Read(b)
		line <- string(b[:n])
	}()
	select {
	case l := <-line:
		if l != "in-window\n" {
			cmd.Process.Kill()
			t.Fatalf("child said %q", l)
		}
	case <-time.After(120 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child never reached the window")
	}
	return cmd, goW
}

// exitOf waits for the child, failing the test if it takes too long.
func exitOf(t *testing.T, cmd *exec.Cmd) syscall.WaitStatus {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child did not exit")
	}
	return cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// A manager inside the snapshot window: SIGTERM is held until the origin
// is resumed, then acts (the snapshot exists, the process died of it);
// SIGKILL leaves the origin suspended, with a writer hanging on it, and
// the next Open resumes it with nothing lost.
func TestGuestSnapshotCrash(t *testing.T) {
	const metaBytes, dataBytes = 8 << 20, 32 << 20
	s := newScenario(t, regionCrash, metaBytes, dataBytes)
	p := s.pool(CreateOptions{})
	if err := p.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	origin, err := p.ActivateThin("r4-origin", 1, 16*blockSize)
	if err != nil {
		t.Fatal(err)
	}
	node, _ := origin.Path()
	d := openDirect(t, node)
	for b := range 8 {
		if err := d.write(b, 1); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(id uint64) bool {
		var ok bool
		if err := p.Read(nil, func(snap *thin.Pool) error {
			_, err := snap.Device(id)
			ok = err == nil
			if errors.Is(err, thin.ErrNoDevice) {
				err = nil
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ok
	}

	// SIGTERM inside the window.
	cmd, goW := startChild(t, p.Name(), 2, 1)
	if !suspended(t, s.ctl, origin.Name) {
		t.Fatal("origin not suspended inside the window")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)); err != nil || strings.Contains(string(st), ") Z ") {
		t.Fatal("the child died of SIGTERM inside the window")
	}
	goW.Write([]byte("g"))
	goW.Close()
	ws := exitOf(t, cmd)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("child exit %v, want death by SIGTERM after the window", ws)
	}
	if suspended(t, s.ctl, origin.Name) {
		t.Fatal("origin left suspended after SIGTERM")
	}
	if !exists(2) {
		t.Fatal("the snapshot interrupted by SIGTERM was not taken")
	}

	// SIGKILL inside the window.
	cmd, goW = startChild(t, p.Name(), 3, 1)
	defer goW.Close()
	blocked := make(chan error, 1)
	go func() { blocked <- d.write(3, 2) }()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-blocked:
		t.Fatalf("a write to the suspended origin finished (%v)", err)
	default:
	}
	cmd.Process.Kill()
	if ws := exitOf(t, cmd); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child exit %v", ws)
	}
	if !suspended(t, s.ctl, origin.Name) {
		t.Fatal("origin not suspended after the crash: the test shows nothing")
	}
	p2, err := Open(s.ctl, p.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Recovered) != 1 || p2.Recovered[0] != origin.Name {
		t.Fatalf("recovered %v", p2.Recovered)
	}
	select {
	case err := <-blocked:
		if err != nil {
			t.Fatalf("the write waiting on the suspended origin: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the write waiting on the suspended origin never finished")
	}
	for b := range 8 {
		want := 1
		if b == 3 {
			want = 2
		}
		if got, err := d.read(b); err != nil || got != want {
			t.Fatalf("origin block %d after recovery: %d %v, want %d", b, got, err, want)
		}
	}
	if exists(3) {
		t.Fatal("the snapshot killed before create_snap exists")
	}
	if rec, err := p2.Recover(); err != nil || len(rec) != 0 {
		t.Fatalf("second recovery: %v %v", rec, err)
	}
	d.f.Close()
	if err := origin.Deactivate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Deactivate(); err != nil {
		t.Fatal(err)
	}
	s.announce(metaBytes, "")
}
