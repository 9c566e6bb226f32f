//go:build !linux

package dm

import (
	"context"
	"errors"
)

var errClosed = errors.New("control device closed")

// Open fails: device-mapper exists only on Linux.
func Open() (*Control, error) { return nil, errors.ErrUnsupported }

func newControl(fd int, sys func(int, uintptr, []byte) error) *Control {
	return &Control{fd: fd, sys: sys, DevDir: "/dev"}
}

func closeFD(int) error { return nil }

func isBusy(error) bool { return false }

// Node fails: device-mapper exists only on Linux.
func (c *Control) Node(name string) (string, error) { return "", errors.ErrUnsupported }

// NodeOf fails: device-mapper exists only on Linux.
func (c *Control) NodeOf(info Info) (string, error) { return "", errors.ErrUnsupported }

// WaitEvent fails: device-mapper exists only on Linux.
func (c *Control) WaitEvent(ctx context.Context, name string, eventNr uint32) (Info, error) {
	return Info{}, errors.ErrUnsupported
}
