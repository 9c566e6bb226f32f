package dm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// udevRunning reports whether udev is running (its control socket
// exists): then udev, not this package, makes /dev/mapper/NAME.
func udevRunning() bool {
	_, err := os.Stat("/run/udev/control")
	return err == nil
}

// nodeWait bounds how long Node waits for udev to make /dev/mapper/NAME
// (shortened by tests).
var nodeWait = 5 * time.Second

// Node returns the path of a block-device node for the device: with udev
// running, /dev/mapper/NAME once udev has made it (waiting a few seconds);
// otherwise, or if udev does not make it in time, /dev/dm-N, which the
// kernel's devtmpfs provides. If that node is missing too (no devtmpfs),
// Node makes it with mknod. A node that exists but is not this device's is
// an error.
func (c *Control) Node(name string) (string, error) {
	info, err := c.Info(name)
	if err != nil {
		return "", err
	}
	return c.NodeOf(info)
}

// NodeOf is Node for a device whose info is known.
func (c *Control) NodeOf(info Info) (string, error) {
	dir := c.DevDir
	if dir == "" {
		dir = "/dev"
	}
	if c.udevRunning != nil && c.udevRunning() {
		p := filepath.Join(dir, "mapper", info.Name)
		deadline := time.Now().Add(nodeWait)
		for {
			if isNodeOf(p, info.Dev) {
				return p, nil
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	p := filepath.Join(dir, fmt.Sprintf("dm-%d", info.Minor()))
	var st unix.Stat_t
	err := unix.Stat(p, &st)
	if errors.Is(err, unix.ENOENT) {
		err = unix.Mknod(p, unix.S_IFBLK|0o600, int(info.Dev))
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return "", &os.PathError{Op: "mknod", Path: p, Err: err}
		}
		err = unix.Stat(p, &st)
	}
	if err != nil {
		return "", &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || uint64(st.Rdev) != info.Dev {
		return "", fmt.Errorf("%s exists but is not block device %s (%s)", p, info.DevString(), info.Name)
	}
	return p, nil
}

func isNodeOf(p string, dev uint64) bool {
	var st unix.Stat_t
	return unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && uint64(st.Rdev) == dev
}

// WaitEvent waits until the device's event counter differs from eventNr,
// or ctx is done, and returns the device's info (its name may have changed:
// a rename is an event). Unlike Wait it can be
// cancelled: it arms poll(2) on a control descriptor of its own
// (DM_DEV_ARM_POLL), which becomes readable at any device's next event,
// and checks the device's counter each time.
func (c *Control) WaitEvent(ctx context.Context, name string, eventNr uint32) (Info, error) {
	if err := checkName(cmdDevStatus, name); err != nil {
		return Info{}, err
	}
	fd, err := unix.Open(ControlPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return Info{}, &os.PathError{Op: "open", Path: ControlPath, Err: err}
	}
	defer unix.Close(fd)
	own := newControl(fd, c.sys)
	// Follow the device by number, so that a rename (which is an event)
	// does not lose it.
	first, err := c.Info(name)
	if err != nil || first.EventNr != eventNr {
		return first, err
	}
	canPoll := true
	for {
		if canPoll {
			if _, _, err := own.do(&request{cmd: cmdDevArmPoll}); err != nil {
				if !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EINVAL) {
					return Info{}, err
				}
				canPoll = false // before 4.37: fall back to checking
			}
		}
		info, err := c.InfoByDev(first.Dev)
		if err != nil || info.EventNr != eventNr {
			return info, err
		}
		if err := ctx.Err(); err != nil {
			return info, err
		}
		wait := 200 * time.Millisecond
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, max(time.Until(dl), time.Millisecond))
		}
		if !canPoll {
			time.Sleep(wait)
			continue
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(wait/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return info, &os.SyscallError{Syscall: "poll", Err: err}
		}
	}
}
