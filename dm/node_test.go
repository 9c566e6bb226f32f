//go:build linux

package dm

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Node picks /dev/mapper/NAME when udev runs and has made it, /dev/dm-N
// otherwise (made with mknod if missing), and refuses a node of another
// device. Run as root (mknod) in a directory of its own.
func TestNodeChoice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root")
	}
	dir := t.TempDir()
	dev := Mkdev(253, 7)
	if err := unix.Mknod(filepath.Join(dir, "probe"), unix.S_IFBLK|0o600, int(dev)); err != nil {
		t.Skipf("no device nodes here: %v", err)
	}
	c := newControl(-1, nil)
	c.DevDir = dir
	info := Info{Name: "pool", Dev: dev}

	udev := false
	c.udevRunning = func() bool { return udev }
	p, err := c.NodeOf(info)
	if err != nil || p != filepath.Join(dir, "dm-7") {
		t.Fatalf("no udev: %q %v", p, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || uint64(st.Rdev) != dev {
		t.Fatalf("made node %+v %v", st, err)
	}

	udev = true
	os.Mkdir(filepath.Join(dir, "mapper"), 0o755)
	if err := unix.Mknod(filepath.Join(dir, "mapper", "pool"), unix.S_IFBLK|0o600, int(dev)); err != nil {
		t.Fatal(err)
	}
	if p, err := c.NodeOf(info); err != nil || p != filepath.Join(dir, "mapper", "pool") {
		t.Fatalf("udev: %q %v", p, err)
	}
	// udev never makes the link: after the wait, /dev/dm-N.
	defer func(w time.Duration) { nodeWait = w }(nodeWait)
	nodeWait = 50 * time.Millisecond
	if p, err := c.NodeOf(Info{Name: "other", Dev: dev}); err != nil || p != filepath.Join(dir, "dm-7") {
		t.Fatalf("udev without the link: %q %v", p, err)
	}
	// A dm-N node of another device is refused.
	udev = false
	if _, err := c.NodeOf(Info{Name: "x", Dev: Mkdev(253, 8)}); err != nil {
		t.Fatal(err) // made
	}
	os.Remove(filepath.Join(dir, "dm-9"))
	unix.Mknod(filepath.Join(dir, "dm-9"), unix.S_IFBLK|0o600, int(Mkdev(8, 0)))
	if _, err := c.NodeOf(Info{Name: "y", Dev: Mkdev(253, 9)}); err == nil {
		t.Fatal("a node of another device accepted")
	}
}
