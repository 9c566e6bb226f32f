package dm

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeKernel answers ioctls the way dm-ioctl.c does for the few commands
// the tests need: it reads the request header, and writes a reply payload
// after data_start, or sets DM_BUFFER_FULL_FLAG when it does not fit.
type fakeKernel struct {
	devices []DeviceEntry
	errno   error
	sizes   []uint32 // data_size of each request seen
	cmds    []int
}

func (k *fakeKernel) ioctl(fd int, req uintptr, buf []byte) error {
	cmd := int(req & 0xff)
	k.cmds = append(k.cmds, cmd)
	h, err := parseHeader(buf)
	if err != nil {
		return unix.EINVAL
	}
	k.sizes = append(k.sizes, h.dataSize)
	if k.errno != nil {
		return k.errno
	}
	order.PutUint32(buf[offVersion+4:], 47)
	order.PutUint32(buf[offDataSize:], offData)
	switch cmd {
	case cmdListDevices:
		var p []byte
		for i, d := range k.devices {
			rec := make([]byte, align8(offListName+len(d.Name)+1)+8)
			order.PutUint64(rec[offListDev:], d.Dev)
			copy(rec[offListName:], d.Name)
			order.PutUint32(rec[len(rec)-8:], d.EventNr)
			if i+1 < len(k.devices) {
				order.PutUint32(rec[offListNext:], uint32(len(rec)))
			}
			p = append(p, rec...)
		}
		if len(p) > int(h.dataSize)-headerSize {
			order.PutUint32(buf[offFlags:], uint32(h.flags|FlagBufferFull))
			return nil
		}
		copy(buf[headerSize:], p)
		order.PutUint32(buf[offDataSize:], uint32(headerSize+len(p)))
	}
	return nil
}

func TestBufferFullRetries(t *testing.T) {
	k := &fakeKernel{}
	for i := range 2000 {
		k.devices = append(k.devices, DeviceEntry{Name: fmt.Sprintf("device-with-a-long-name-%04d", i), Dev: Mkdev(253, uint32(i)), EventNr: uint32(i), HasEventNr: true})
	}
	c := newControl(-1, k.ioctl)
	got, err := c.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(k.devices) {
		t.Fatalf("%d devices, want %d", len(got), len(k.devices))
	}
	for i := range got {
		if got[i] != k.devices[i] {
			t.Fatalf("device %d: %+v, want %+v", i, got[i], k.devices[i])
		}
	}
	// 2000 records of 48 bytes need 96,000 bytes: 16 KiB, 32, 64 and 128.
	want := []uint32{16 << 10, 32 << 10, 64 << 10, 128 << 10}
	if fmt.Sprint(k.sizes) != fmt.Sprint(want) {
		t.Fatalf("buffer sizes %v, want %v", k.sizes, want)
	}
}

func TestErrorsNameIoctlDeviceAndErrno(t *testing.T) {
	k := &fakeKernel{errno: unix.ENXIO}
	c := newControl(-1, k.ioctl)
	_, err := c.Info("pool0")
	var de *Error
	if !errors.As(err, &de) || de.Op != "DM_DEV_STATUS" || de.Device != "pool0" || !errors.Is(err, unix.ENXIO) {
		t.Fatalf("Info: %#v", err)
	}
	if err.Error() != "DM_DEV_STATUS pool0: no such device or address" {
		t.Fatalf("message %q", err)
	}
	k.errno = unix.EBUSY
	c.RemoveTimeout = 1 // one try
	if err := c.Remove("t1"); !errors.Is(err, unix.EBUSY) || !strings.HasPrefix(err.Error(), "DM_DEV_REMOVE t1: ") {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := c.Targets(); err == nil || err.Error() != "DM_LIST_VERSIONS: device or resource busy" {
		t.Fatalf("Targets: %v", err)
	}
}

func TestRefusedArguments(t *testing.T) {
	k := &fakeKernel{}
	c := newControl(-1, k.ioctl)
	for _, err := range []error{
		func() error { _, err := c.Create("a/b", ""); return err }(),
		func() error { _, err := c.Create("control", ""); return err }(),
		func() error { _, err := c.Create(strings.Repeat("n", 128), ""); return err }(),
		func() error { _, err := c.Create("ok", strings.Repeat("u", 129)); return err }(),
		func() error { _, err := c.Load("ok", nil, false); return err }(),
		func() error {
			_, err := c.Load("ok", []Target{{Length: 8, Type: "a-very-long-target-name", Params: ""}}, false)
			return err
		}(),
		func() error { _, err := c.Message("ok", 0, ""); return err }(),
		func() error { _, err := c.Info(""); return err }(),
	} {
		if !errors.Is(err, ErrBadArgument) {
			t.Errorf("%v: want ErrBadArgument", err)
		}
	}
	if len(k.cmds) != 0 {
		t.Fatalf("refused requests reached the kernel: %v", k.cmds)
	}
}

// A prepared call runs without allocating: nothing in the critical section
// of a snapshot can wait for memory reclaim or the garbage collector's
// assistance beyond the syscall itself.
func TestPreparedRunDoesNotAllocate(t *testing.T) {
	k := &fakeKernel{}
	c := newControl(-1, func(fd int, req uintptr, buf []byte) error { return nil })
	_ = k
	for _, mk := range []func() (*Prepared, error){
		func() (*Prepared, error) { return c.PrepareSuspend("thin1", 0) },
		func() (*Prepared, error) { return c.PrepareResume("thin1", NoFlush|SkipLockfs) },
		func() (*Prepared, error) { return c.PrepareMessage("pool", 0, "create_snap 2 1") },
	} {
		p, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() {
			if err := p.Run(); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Fatalf("%s: %v allocations per run", cmdNames[p.cmd], n)
		}
	}
	p, _ := c.PrepareMessage("pool", 0, "create_snap 2 1")
	h, err := parseHeader(p.tmpl)
	if err != nil || h.name != "pool" || order.Uint64(p.tmpl[headerSize:]) != 0 || cString(p.tmpl[headerSize+offMsgText:]) != "create_snap 2 1" {
		t.Fatalf("message request %+v %v", h, err)
	}
}

func TestDevNumbers(t *testing.T) {
	for _, c := range []struct{ major, minor uint32 }{{253, 0}, {253, 255}, {253, 256}, {259, 1 << 19}, {4095, 7}, {8000, 3}} {
		d := Mkdev(c.major, c.minor)
		if Major(d) != c.major || Minor(d) != c.minor {
			t.Errorf("%d:%d round trip: %d:%d", c.major, c.minor, Major(d), Minor(d))
		}
		if d != unix.Mkdev(c.major, c.minor) || Major(d) != unix.Major(d) || Minor(d) != unix.Minor(d) {
			t.Errorf("%d:%d: %#x, x/sys/unix %#x", c.major, c.minor, d, unix.Mkdev(c.major, c.minor))
		}
	}
}
