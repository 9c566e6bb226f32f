package dm

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Flags is the flags word of struct dm_ioctl. Some flags are requests the
// methods of Control set themselves; the ones a caller reads back are in
// Info.Flags.
type Flags uint32

// The flags of dm-ioctl.h.
const (
	FlagReadOnly        Flags = 1 << 0  // in: read-only table; out: device read-only
	FlagSuspend         Flags = 1 << 1  // in: suspend (not resume); out: suspended
	FlagPersistentDev   Flags = 1 << 3  // in: create with the minor in dev
	FlagStatusTable     Flags = 1 << 4  // in: table lines, not status
	FlagActivePresent   Flags = 1 << 5  // out: a live table is loaded
	FlagInactivePresent Flags = 1 << 6  // out: a table is staged
	FlagBufferFull      Flags = 1 << 8  // out: the reply did not fit
	FlagSkipLockfs      Flags = 1 << 10 // in: suspend without freezing the file system
	FlagNoFlush         Flags = 1 << 11 // in: suspend without flushing queued I/O
	FlagQueryInactive   Flags = 1 << 12 // in: ask about the staged table
	FlagUeventGenerated Flags = 1 << 13 // out: a uevent was sent
	FlagUUID            Flags = 1 << 14 // in: list devices with their uuids
	FlagSecureData      Flags = 1 << 15 // in: wipe the kernel's copy of the buffer
	FlagDataOut         Flags = 1 << 16 // out: a target message returned text
	FlagDeferredRemove  Flags = 1 << 17 // in/out: remove on last close
	FlagInternalSuspend Flags = 1 << 18 // out: suspended by the kernel itself
)

// SuspendFlags tune a suspend (and the suspend a resume does to swap in a
// staged table).
type SuspendFlags Flags

const (
	// SkipLockfs does not freeze a file system mounted on the device.
	SkipLockfs = SuspendFlags(FlagSkipLockfs)
	// NoFlush does not wait for queued I/O: it stays queued until resume.
	NoFlush = SuspendFlags(FlagNoFlush)
)

// Info describes a device, as every device command returns it.
type Info struct {
	Name, UUID  string
	Dev         uint64 // device number (unix.Mkdev encoding)
	OpenCount   int32
	EventNr     uint32 // the device's event counter
	TargetCount uint32
	Flags       Flags
}

// Major returns the major number of the device.
func (i Info) Major() uint32 { return Major(i.Dev) }

// Minor returns the minor number of the device.
func (i Info) Minor() uint32 { return Minor(i.Dev) }

// Suspended reports whether the device is suspended.
func (i Info) Suspended() bool { return i.Flags&FlagSuspend != 0 }

// ReadOnly reports whether the device is read-only.
func (i Info) ReadOnly() bool { return i.Flags&FlagReadOnly != 0 }

// HasTable reports whether a live table is loaded.
func (i Info) HasTable() bool { return i.Flags&FlagActivePresent != 0 }

// HasInactiveTable reports whether a table is staged for the next resume.
func (i Info) HasInactiveTable() bool { return i.Flags&FlagInactivePresent != 0 }

// DevString returns "major:minor", the form tables use for devices.
func (i Info) DevString() string { return DevString(i.Dev) }

// Major, Minor, Mkdev and DevString convert device numbers in the encoding
// of the kernel's huge_encode_dev (which is glibc's and x/sys/unix's for
// majors below 4096).

// Major returns the major number of dev.
func Major(dev uint64) uint32 { return uint32((dev>>8)&0xfff | (dev>>32)&^0xfff) }

// Minor returns the minor number of dev.
func Minor(dev uint64) uint32 { return uint32(dev&0xff | (dev>>12)&^0xff) }

// Mkdev makes a device number.
func Mkdev(major, minor uint32) uint64 {
	ma, mi := uint64(major), uint64(minor)
	return (ma&0xfff)<<8 | (ma&^0xfff)<<32 | mi&0xff | (mi&^0xff)<<12
}

// DevString returns "major:minor".
func DevString(dev uint64) string { return fmt.Sprintf("%d:%d", Major(dev), Minor(dev)) }

// Target is one line of a table: sectors [Start, Start+Length) handled by
// target Type with Params. In status replies Params holds the target's
// status text.
type Target struct {
	Start, Length uint64
	Type          string
	Params        string
}

// DeviceEntry is one device in the list of all devices.
type DeviceEntry struct {
	Name       string
	UUID       string // empty if the device has none or the kernel does not say
	Dev        uint64
	EventNr    uint32
	HasEventNr bool // false on kernels older than 4.37, which do not report it
}

// TargetVersion is a loaded target type.
type TargetVersion struct {
	Name    string
	Version [3]uint32
}

// Buffer sizes for replies of variable size: the first try, and the most
// the client asks the kernel to fill.
const (
	initialBuffer = 16 << 10
	maxBuffer     = 64 << 20
)

// Control is an open device-mapper control device. Its methods are safe
// for concurrent use.
type Control struct {
	fd   int
	sys  func(fd int, req uintptr, buf []byte) error // the ioctl; faked in tests
	mu   sync.Mutex
	done bool

	// DevDir is where device nodes are looked up and made ("/dev").
	DevDir string
	// RemoveTimeout bounds how long Remove retries a device that is busy
	// (udev's scanners open new devices for a moment). Zero means 2 s.
	RemoveTimeout time.Duration
	// udevRunning reports whether udev manages /dev/mapper; replaced in
	// tests.
	udevRunning func() bool
}

// ControlPath is the path of the control device.
const ControlPath = "/dev/mapper/control"

// Close closes the control device.
func (c *Control) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return nil
	}
	c.done = true
	return closeFD(c.fd)
}

// request is one ioctl to issue.
type request struct {
	cmd         int
	name, uuid  string
	dev         uint64
	flags       Flags
	eventNr     uint32
	targetCount uint32
	in          []byte // payload after the header
	out         bool   // the reply has a payload of unknown size
	extra       int    // room to leave after the payload for the reply
}

func (r *request) device() string {
	switch {
	case r.name != "":
		return r.name
	case r.uuid != "":
		return "uuid " + r.uuid
	case r.dev != 0:
		return DevString(r.dev)
	}
	return ""
}

// build returns the ioctl buffer for r of size bytes.
func (r *request) build(size int) []byte {
	buf := make([]byte, size)
	h := header{
		version:     [3]uint32{versionMajor, versionMinor, versionPatch},
		dataSize:    uint32(size),
		dataStart:   headerSize,
		targetCount: r.targetCount,
		flags:       r.flags,
		eventNr:     r.eventNr,
		dev:         r.dev,
		name:        r.name,
		uuid:        r.uuid,
	}
	h.put(buf)
	copy(buf[headerSize:], r.in)
	return buf
}

// do issues r, growing the buffer while the kernel says it is full, and
// returns the reply's header and payload (nil unless r.out).
func (c *Control) do(r *request) (header, []byte, error) {
	size := headerSize + align8(len(r.in)) + r.extra
	if r.out {
		size = max(size, initialBuffer)
	}
	for {
		buf := r.build(size)
		if err := c.ioctl(r.cmd, buf); err != nil {
			return header{}, nil, opError(r.cmd, r.device(), err)
		}
		h, err := parseHeader(buf)
		if err != nil {
			return header{}, nil, opError(r.cmd, r.device(), err)
		}
		if h.flags&FlagBufferFull != 0 && (r.out || r.extra > 0) {
			if size >= maxBuffer {
				return header{}, nil, opError(r.cmd, r.device(), fmt.Errorf("reply larger than %d bytes: %w", maxBuffer, ErrMalformed))
			}
			size *= 2
			continue
		}
		if !r.out && r.extra == 0 {
			return h, nil, nil
		}
		p, err := h.payload(buf)
		if err != nil {
			return header{}, nil, opError(r.cmd, r.device(), err)
		}
		return h, p, nil
	}
}

func (c *Control) ioctl(cmd int, buf []byte) error {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done {
		return errClosed
	}
	return c.sys(c.fd, ioctlNumber(cmd), buf)
}

func (h *header) info() Info {
	return Info{Name: h.name, UUID: h.uuid, Dev: h.dev, OpenCount: h.openCount, EventNr: h.eventNr,
		TargetCount: h.targetCount, Flags: h.flags}
}

// checkName refuses names the kernel would refuse or that do not fit.
func checkName(cmd int, name string) error {
	bad := ""
	switch {
	case name == "":
		bad = "empty device name"
	case len(name) >= nameLen:
		bad = fmt.Sprintf("device name of %d bytes (at most %d)", len(name), nameLen-1)
	case strings.ContainsAny(name, "/\x00"):
		bad = "device name with '/' or NUL"
	case name == "control" || name == "." || name == "..":
		bad = fmt.Sprintf("device name %q is reserved", name)
	}
	if bad != "" {
		return opError(cmd, name, fmt.Errorf("%s: %w", bad, ErrBadArgument))
	}
	return nil
}

// Version returns the kernel's ioctl interface version (major, minor,
// patch).
func (c *Control) Version() ([3]uint32, error) {
	h, _, err := c.do(&request{cmd: cmdVersion})
	if err != nil {
		return [3]uint32{}, err
	}
	return h.version, nil
}

// Devices lists all device-mapper devices, in name order.
func (c *Control) Devices() ([]DeviceEntry, error) {
	_, p, err := c.do(&request{cmd: cmdListDevices, flags: FlagUUID, out: true})
	if err != nil {
		return nil, err
	}
	list, err := parseNameList(p)
	if err != nil {
		return nil, opError(cmdListDevices, "", err)
	}
	return list, nil
}

// Create makes a device with no table (it is suspended until a table is
// loaded and it is resumed). uuid may be empty.
func (c *Control) Create(name, uuid string) (Info, error) {
	if err := checkName(cmdDevCreate, name); err != nil {
		return Info{}, err
	}
	if len(uuid) >= uuidLen || strings.IndexByte(uuid, 0) >= 0 {
		return Info{}, opError(cmdDevCreate, name, fmt.Errorf("uuid of %d bytes (at most %d, no NUL): %w", len(uuid), uuidLen-1, ErrBadArgument))
	}
	h, _, err := c.do(&request{cmd: cmdDevCreate, name: name, uuid: uuid})
	return h.info(), err
}

// Remove removes a device and its tables. A device that is open fails
// with EBUSY once RemoveTimeout has passed.
func (c *Control) Remove(name string) error {
	if err := checkName(cmdDevRemove, name); err != nil {
		return err
	}
	wait := c.RemoveTimeout
	if wait == 0 {
		wait = 2 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		_, _, err := c.do(&request{cmd: cmdDevRemove, name: name})
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Rename gives the device a new name. Renaming wakes the device's event
// waiters (its event counter goes up).
func (c *Control) Rename(name, newName string) (Info, error) {
	if err := checkName(cmdDevRename, name); err != nil {
		return Info{}, err
	}
	if err := checkName(cmdDevRename, newName); err != nil {
		return Info{}, err
	}
	in := append([]byte(newName), 0)
	if _, _, err := c.do(&request{cmd: cmdDevRename, name: name, in: in}); err != nil {
		return Info{}, err
	}
	// The reply still carries the old name and no uuid: ask again.
	return c.Info(newName)
}

// Load stages a table for the device: the next Resume makes it live. A
// read-only table opens its devices read-only.
func (c *Control) Load(name string, targets []Target, readOnly bool) (Info, error) {
	if err := checkName(cmdTableLoad, name); err != nil {
		return Info{}, err
	}
	if err := checkTargets(name, targets); err != nil {
		return Info{}, err
	}
	in := make([]byte, tableSize(targets))
	putTable(in, targets)
	var f Flags
	if readOnly {
		f = FlagReadOnly
	}
	h, _, err := c.do(&request{cmd: cmdTableLoad, name: name, flags: f, targetCount: uint32(len(targets)), in: in})
	return h.info(), err
}

func checkTargets(name string, targets []Target) error {
	if len(targets) == 0 {
		return opError(cmdTableLoad, name, fmt.Errorf("empty table: %w", ErrBadArgument))
	}
	for _, t := range targets {
		if t.Type == "" || len(t.Type) >= typeLen || strings.IndexByte(t.Type, 0) >= 0 {
			return opError(cmdTableLoad, name, fmt.Errorf("target type %q (1 to %d bytes): %w", t.Type, typeLen-1, ErrBadArgument))
		}
		if strings.IndexByte(t.Params, 0) >= 0 {
			return opError(cmdTableLoad, name, fmt.Errorf("target parameters with a NUL byte: %w", ErrBadArgument))
		}
	}
	return nil
}

// ClearInactive drops the table staged for the device, if any.
func (c *Control) ClearInactive(name string) (Info, error) {
	if err := checkName(cmdTableClear, name); err != nil {
		return Info{}, err
	}
	h, _, err := c.do(&request{cmd: cmdTableClear, name: name})
	return h.info(), err
}

// Suspend suspends the device: it returns when I/O in flight has completed
// (unless NoFlush), and later I/O waits for Resume. By default a file
// system on the device is frozen first (unless SkipLockfs). Suspending a
// suspended device does nothing.
func (c *Control) Suspend(name string, f SuspendFlags) (Info, error) {
	if err := checkName(cmdDevSuspend, name); err != nil {
		return Info{}, err
	}
	h, _, err := c.do(&request{cmd: cmdDevSuspend, name: name, flags: FlagSuspend | Flags(f)})
	return h.info(), err
}

// Resume makes a staged table live, if there is one (suspending the device
// for the swap with flags f), and resumes the device. Resuming a device
// that is not suspended is not an error.
func (c *Control) Resume(name string, f SuspendFlags) (Info, error) {
	if err := checkName(cmdDevSuspend, name); err != nil {
		return Info{}, err
	}
	h, _, err := c.do(&request{cmd: cmdDevSuspend, name: name, flags: Flags(f)})
	return h.info(), err
}

// Info returns the device's info.
func (c *Control) Info(name string) (Info, error) {
	if err := checkName(cmdDevStatus, name); err != nil {
		return Info{}, err
	}
	h, _, err := c.do(&request{cmd: cmdDevStatus, name: name})
	return h.info(), err
}

// InfoByDev returns the info of the device with device number dev.
func (c *Control) InfoByDev(dev uint64) (Info, error) {
	if dev == 0 {
		return Info{}, opError(cmdDevStatus, "", fmt.Errorf("device number 0: %w", ErrBadArgument))
	}
	h, _, err := c.do(&request{cmd: cmdDevStatus, dev: dev})
	return h.info(), err
}

// Status returns the status text of each target of the live table. With
// noFlush the thin-pool target reports without committing first.
func (c *Control) Status(name string, noFlush bool) (Info, []Target, error) {
	var f Flags
	if noFlush {
		f = FlagNoFlush
	}
	return c.tableStatus(name, f)
}

// Table returns the live table.
func (c *Control) Table(name string) (Info, []Target, error) {
	return c.tableStatus(name, FlagStatusTable)
}

// InactiveTable returns the staged table (none if Info says there is
// none).
func (c *Control) InactiveTable(name string) (Info, []Target, error) {
	return c.tableStatus(name, FlagStatusTable|FlagQueryInactive)
}

func (c *Control) tableStatus(name string, f Flags) (Info, []Target, error) {
	if err := checkName(cmdTableStatus, name); err != nil {
		return Info{}, nil, err
	}
	h, p, err := c.do(&request{cmd: cmdTableStatus, name: name, flags: f, out: true})
	if err != nil {
		return Info{}, nil, err
	}
	t, err := parseTable(p, h.targetCount)
	if err != nil {
		return Info{}, nil, opError(cmdTableStatus, name, err)
	}
	return h.info(), t, nil
}

// Deps returns the device numbers the live table uses.
func (c *Control) Deps(name string) (Info, []uint64, error) {
	if err := checkName(cmdTableDeps, name); err != nil {
		return Info{}, nil, err
	}
	h, p, err := c.do(&request{cmd: cmdTableDeps, name: name, out: true})
	if err != nil {
		return Info{}, nil, err
	}
	if !h.info().HasTable() {
		return h.info(), nil, nil
	}
	d, err := parseDeps(p)
	if err != nil {
		return Info{}, nil, opError(cmdTableDeps, name, err)
	}
	return h.info(), d, nil
}

// Message sends msg to the target that covers sector of the device and
// returns the text the target answers (most messages answer nothing).
func (c *Control) Message(name string, sector uint64, msg string) (string, error) {
	r, err := messageRequest(name, sector, msg)
	if err != nil {
		return "", err
	}
	h, p, err := c.do(r)
	if err != nil {
		return "", err
	}
	if h.flags&FlagDataOut == 0 {
		return "", nil
	}
	return cString(p), nil
}

func messageRequest(name string, sector uint64, msg string) (*request, error) {
	if err := checkName(cmdTargetMsg, name); err != nil {
		return nil, err
	}
	if msg == "" || strings.IndexByte(msg, 0) >= 0 {
		return nil, opError(cmdTargetMsg, name, fmt.Errorf("message %q: %w", msg, ErrBadArgument))
	}
	in := make([]byte, offMsgText+len(msg)+1)
	order.PutUint64(in[offMsgSector:], sector)
	copy(in[offMsgText:], msg)
	return &request{cmd: cmdTargetMsg, name: name, in: in, extra: 1024}, nil
}

// Wait blocks until the device's event counter differs from eventNr, then
// returns its info and status. It cannot be cancelled; WaitEvent can.
func (c *Control) Wait(name string, eventNr uint32) (Info, []Target, error) {
	if err := checkName(cmdDevWait, name); err != nil {
		return Info{}, nil, err
	}
	h, p, err := c.do(&request{cmd: cmdDevWait, name: name, eventNr: eventNr, out: true})
	if err != nil {
		return Info{}, nil, err
	}
	t, err := parseTable(p, h.targetCount)
	if err != nil {
		return Info{}, nil, opError(cmdDevWait, name, err)
	}
	return h.info(), t, nil
}

// Targets lists the target types the kernel has loaded.
func (c *Control) Targets() ([]TargetVersion, error) {
	_, p, err := c.do(&request{cmd: cmdListVersions, out: true})
	if err != nil {
		return nil, err
	}
	v, err := parseVersions(p)
	if err != nil {
		return nil, opError(cmdListVersions, "", err)
	}
	return v, nil
}
