package dm

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by errors about replies that do not follow the
// layout of dm-ioctl.h (a kernel bug, or not a device-mapper control
// device).
var ErrMalformed = errors.New("malformed device-mapper reply")

// ErrBadArgument is wrapped by errors about requests the client refuses to
// send: a name or uuid too long or containing a byte the kernel refuses, a
// target type too long, an empty table.
var ErrBadArgument = errors.New("bad device-mapper request")

// Error is the error of a device-mapper ioctl: which command, on which
// device, and why. Err is usually a unix.Errno, so errors.Is(err,
// unix.ENXIO) tells a missing device and errors.Is(err, unix.EBUSY) a
// device in use.
type Error struct {
	Op     string // the ioctl, such as "DM_DEV_SUSPEND"
	Device string // the device name, or "" for commands on no device
	Err    error
}

// Error returns the ioctl, the device (if any) and the cause.
func (e *Error) Error() string {
	if e.Device == "" {
		return fmt.Sprintf("%s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Op, e.Device, e.Err)
}

// Unwrap returns the cause, usually a unix.Errno.
func (e *Error) Unwrap() error { return e.Err }

func opError(cmd int, dev string, err error) error {
	return &Error{Op: cmdNames[cmd], Device: dev, Err: err}
}
