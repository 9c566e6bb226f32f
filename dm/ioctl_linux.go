package dm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The control device is a misc device (major 10; minor 236,
// MAPPER_CTRL_MINOR, as /proc/misc says).
const controlMajor = 10

var errClosed = errors.New("control device closed")

// Open opens /dev/mapper/control, making the node first if it is missing
// (a /dev without devtmpfs or udev). The kernel answers commands only
// to processes with CAP_SYS_ADMIN (EACCES otherwise).
func Open() (*Control, error) {
	fd, err := unix.Open(ControlPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		if err = makeControlNode(); err != nil {
			return nil, fmt.Errorf("open %s: %w", ControlPath, err)
		}
		fd, err = unix.Open(ControlPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
			return nil, fmt.Errorf("open %s: %w (is the dm_mod module loaded?)", ControlPath, err)
		}
		return nil, &os.PathError{Op: "open", Path: ControlPath, Err: err}
	}
	return newControl(fd, sysIoctl), nil
}

func newControl(fd int, sys func(int, uintptr, []byte) error) *Control {
	return &Control{fd: fd, sys: sys, DevDir: "/dev", udevRunning: udevRunning}
}

// makeControlNode makes /dev/mapper/control for the minor the kernel
// registered (/proc/misc), and nothing if device-mapper is not loaded.
func makeControlNode() error {
	b, err := os.ReadFile("/proc/misc")
	if err != nil {
		return err
	}
	minor := -1
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[1] == "device-mapper" {
			minor, _ = strconv.Atoi(f[0])
		}
	}
	if minor < 0 {
		return fmt.Errorf("device-mapper is not in /proc/misc (is the dm_mod module loaded?): %w", unix.ENODEV)
	}
	if err := os.MkdirAll(filepath.Dir(ControlPath), 0o755); err != nil {
		return err
	}
	err = unix.Mknod(ControlPath, unix.S_IFCHR|0o600, int(unix.Mkdev(controlMajor, uint32(minor))))
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return &os.PathError{Op: "mknod", Path: ControlPath, Err: err}
	}
	return nil
}

// sysIoctl issues one device-mapper ioctl with buf as its argument,
// restarting it if a signal interrupted it. It allocates nothing.
func sysIoctl(fd int, req uintptr, buf []byte) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(&buf[0])))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

func closeFD(fd int) error { return unix.Close(fd) }

func isBusy(err error) bool { return errors.Is(err, unix.EBUSY) }
