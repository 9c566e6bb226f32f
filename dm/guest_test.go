//go:build linux

package dm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The TestGuest tests run inside the kernel oracle's guest (root, the real
// device-mapper, /dev/vdb as scratch space, dmsetup as the independent
// implementation to compare with). The host-side test in package live
// builds this package's test binary and runs it there with
// THINMETA_GUEST=1; elsewhere they skip.
func guest(t *testing.T) *Control {
	t.Helper()
	if os.Getenv("THINMETA_GUEST") == "" {
		t.Skip("runs in the kernel oracle guest (THINMETA_GUEST=1)")
	}
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dmsetup runs dmsetup (libdevmapper, without udev) and returns its output.
func dmsetup(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("dmsetup", args...)
	cmd.Env = append(os.Environ(), "DM_DISABLE_UDEV=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dmsetup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func blockSectors(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		t.Fatal(err)
	}
	return n / 512
}

func devOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Rdev)
}

// Everything the client reports equals what dmsetup reports for the same
// devices; every command round-trips on the real kernel.
func TestGuestAgainstDmsetup(t *testing.T) {
	c := guest(t)
	v, err := c.Version()
	if err != nil {
		t.Fatal(err)
	}
	// "Driver version:   4.47.0"
	if want := fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]); !strings.Contains(dmsetup(t, "version"), want) {
		t.Fatalf("version %s not in dmsetup version", want)
	}

	vdb := DevString(devOf(t, "/dev/vdb"))
	const name = "dmtest-linear"
	if _, err := c.Create(name, "dmtest-uuid-1"); err != nil {
		t.Fatal(err)
	}
	defer c.Remove(name)
	if _, err := c.Create(name, ""); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second create of %s: %v, want EBUSY", name, err)
	}
	table := []Target{
		{Start: 0, Length: 2048, Type: "linear", Params: vdb + " 0"},
		{Start: 2048, Length: 4096, Type: "linear", Params: vdb + " 8192"},
	}
	info, err := c.Load(name, table, false)
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasInactiveTable() || info.HasTable() {
		t.Fatalf("after load: %+v", info)
	}
	if _, it, err := c.InactiveTable(name); err != nil || len(it) != 2 || it[1] != table[1] {
		t.Fatalf("inactive table %+v %v", it, err)
	}
	if info, err = c.Resume(name, 0); err != nil {
		t.Fatal(err)
	}
	if info.Suspended() || !info.HasTable() || info.HasInactiveTable() || info.TargetCount != 2 {
		t.Fatalf("after resume: %+v", info)
	}

	// info against dmsetup info
	got := strings.TrimSpace(dmsetup(t, "info", "-c", "--noheadings", "--separator", " ",
		"-o", "name,uuid,major,minor,open,segments,events", name))
	want := fmt.Sprintf("%s %s %d %d %d %d %d", info.Name, info.UUID, info.Major(), info.Minor(), info.OpenCount, info.TargetCount, info.EventNr)
	if got != want {
		t.Fatalf("dmsetup info %q, ours %q", got, want)
	}
	// table and status against dmsetup's
	_, tab, err := c.Table(name)
	if err != nil {
		t.Fatal(err)
	}
	var ours bytes.Buffer
	for _, x := range tab {
		fmt.Fprintf(&ours, "%d %d %s %s\n", x.Start, x.Length, x.Type, x.Params)
	}
	if d := dmsetup(t, "table", name); d != ours.String() {
		t.Fatalf("dmsetup table %q, ours %q", d, ours.String())
	}
	_, st, err := c.Status(name, false)
	if err != nil {
		t.Fatal(err)
	}
	ours.Reset()
	for _, x := range st {
		fmt.Fprintf(&ours, "%d %d %s", x.Start, x.Length, x.Type)
		if x.Params != "" {
			fmt.Fprintf(&ours, " %s", x.Params)
		}
		ours.WriteString("\n")
	}
	if d := trimLines(dmsetup(t, "status", name)); d != trimLines(ours.String()) {
		t.Fatalf("dmsetup status %q, ours %q", d, ours.String())
	}
	// deps
	_, deps, err := c.Deps(name)
	if err != nil || len(deps) != 1 || DevString(deps[0]) != vdb {
		t.Fatalf("deps %v %v", deps, err)
	}
	// the device list against dmsetup ls ("name\t(253:0)" lines)
	list, err := c.Devices()
	if err != nil {
		t.Fatal(err)
	}
	var ls []string
	for _, d := range list {
		ls = append(ls, fmt.Sprintf("%s\t(%d:%d)", d.Name, Major(d.Dev), Minor(d.Dev)))
		if d.Name == name && (d.UUID != "dmtest-uuid-1" || !d.HasEventNr || d.EventNr != info.EventNr) {
			t.Errorf("list entry %+v", d)
		}
	}
	if d := strings.TrimSpace(dmsetup(t, "ls")); d != strings.Join(ls, "\n") {
		t.Fatalf("dmsetup ls %q, ours %q", d, ls)
	}
	// targets against dmsetup targets ("linear           v1.4.0")
	tv, err := c.Targets()
	if err != nil {
		t.Fatal(err)
	}
	dt := dmsetup(t, "targets")
	for _, x := range tv {
		if !strings.Contains(dt, fmt.Sprintf("v%d.%d.%d", x.Version[0], x.Version[1], x.Version[2])) || !strings.Contains(dt, x.Name) {
			t.Errorf("target %+v not in dmsetup targets:\n%s", x, dt)
		}
	}
	if len(tv) < 3 {
		t.Errorf("targets %+v", tv)
	}

	// The node: /dev/dm-N (no udev here), reading what /dev/vdb holds.
	node, err := c.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	if node != fmt.Sprintf("/dev/dm-%d", info.Minor()) || blockSectors(t, node) != 6144 {
		t.Fatalf("node %s of %d sectors", node, blockSectors(t, node))
	}
	// mknod when the node is missing, in a directory of our own
	c2 := newControl(c.fd, c.sys)
	c2.DevDir = t.TempDir()
	if n2, err := c2.NodeOf(info); err != nil || blockSectors(t, n2) != 6144 {
		t.Fatalf("made node %s: %v", n2, err)
	}

	// Suspend and resume, with each flag; dmsetup sees the state.
	for _, f := range []SuspendFlags{0, SkipLockfs, NoFlush, SkipLockfs | NoFlush} {
		if info, err = c.Suspend(name, f); err != nil || !info.Suspended() {
			t.Fatalf("suspend %v: %+v %v", f, info, err)
		}
		if !strings.Contains(dmsetup(t, "info", name), "SUSPENDED") {
			t.Fatal("dmsetup does not see the suspend")
		}
		if _, err = c.Suspend(name, f); err != nil {
			t.Fatalf("second suspend: %v", err)
		}
		if info, err = c.Resume(name, 0); err != nil || info.Suspended() {
			t.Fatalf("resume: %+v %v", info, err)
		}
		if _, err = c.Resume(name, 0); err != nil {
			t.Fatalf("resume of an active device: %v", err)
		}
	}

	// Events: loading and resuming a linear device raise none; a rename
	// does (it wakes the waiters). WaitEvent and Wait see it.
	before := info.EventNr
	if _, err := c.Load(name, table[:1], false); err != nil {
		t.Fatal(err)
	}
	if info, err = c.Resume(name, 0); err != nil || info.EventNr != before {
		t.Fatalf("resume: %+v %v (event number was %d)", info, err, before)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.WaitEvent(context.Background(), name, before)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if info, err = c.Rename(name, name+"-2"); err != nil || info.Name != name+"-2" {
		t.Fatalf("rename: %+v %v", info, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitEvent missed the rename's event")
	}
	if _, err := c.Rename(name+"-2", name); err != nil {
		t.Fatal(err)
	}
	winfo, wst, err := c.Wait(name, before)
	if err != nil || winfo.EventNr == before || len(wst) != 1 {
		t.Fatalf("Wait: %+v %+v %v", winfo, wst, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.WaitEvent(ctx, name, winfo.EventNr); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitEvent without an event: %v", err)
	}

	// A message to a target that takes none; a clear of the staged table.
	if _, err := c.Message(name, 0, "hello"); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("message to linear: %v", err)
	}
	if _, err := c.Load(name, table, false); err != nil {
		t.Fatal(err)
	}
	if info, err = c.ClearInactive(name); err != nil || info.HasInactiveTable() {
		t.Fatalf("clear: %+v %v", info, err)
	}

	// Removal: busy while open, then gone; errors name the device.
	f, err := os.Open(node)
	if err != nil {
		t.Fatal(err)
	}
	c.RemoveTimeout = 200 * time.Millisecond
	if err := c.Remove(name); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("remove of an open device: %v", err)
	}
	f.Close()
	if err := c.Remove(name); err != nil {
		t.Fatal(err)
	}
	_, err = c.Info(name)
	var de *Error
	if !errors.Is(err, unix.ENXIO) || !errors.As(err, &de) || de.Op != "DM_DEV_STATUS" || de.Device != name {
		t.Fatalf("info of a removed device: %v", err)
	}
	if !strings.Contains(dmsetup(t, "ls"), "No devices found") && strings.Contains(dmsetup(t, "ls"), name) {
		t.Fatal("dmsetup still lists the device")
	}
}

// trimLines drops trailing blanks of each line (dmsetup prints a blank after
// an empty status).
func trimLines(s string) string {
	l := strings.Split(s, "\n")
	for i := range l {
		l[i] = strings.TrimRight(l[i], " ")
	}
	return strings.Join(l, "\n")
}

// Many devices: the list needs several buffer sizes.
func TestGuestManyDevices(t *testing.T) {
	c := guest(t)
	const n = 300
	vdb := DevString(devOf(t, "/dev/vdb"))
	for i := range n {
		name := "dmtest-many-with-a-long-name-" + strconv.Itoa(i)
		if _, err := c.Create(name, "dmtest-many-uuid-with-some-length-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		defer c.Remove(name)
	}
	if _, err := c.Load("dmtest-many-with-a-long-name-0", []Target{{0, 8, "linear", vdb + " 0"}}, true); err != nil {
		t.Fatal(err)
	}
	list, err := c.Devices()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, d := range list {
		if strings.HasPrefix(d.Name, "dmtest-many-") {
			seen++
			if !strings.HasPrefix(d.UUID, "dmtest-many-uuid-") {
				t.Fatalf("entry %+v", d)
			}
		}
	}
	if seen != n {
		t.Fatalf("listed %d of %d devices", seen, n)
	}
	if got := strings.Count(dmsetup(t, "ls"), "dmtest-many-"); got != n {
		t.Fatalf("dmsetup lists %d", got)
	}
}
