package live

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thinmeta/thinmeta/dm"
)

// The TestGuest tests run inside the kernel oracle's guest, driven by the
// host-side TestKernelGuest (kernel_test.go): root, Debian's real kernel
// with the dm-thin-pool target, no udev, /dev/vda and /dev/vdb as the disks.
// Each scenario builds its pool on its own region of the two disks (dm
// linear devices) and announces the region on the console, so the host can
// check the metadata each one left with thin_check 0.9.0 and 1.1.0 and
// thinmeta's check after the guest powers off. Elsewhere they skip.

// Regions: scenario i has metadata at vda[i*regionMeta, +regionMeta) and
// data at vdb[i*regionData, +regionData). Region 0 is the one run-oracle
// itself checks at the end (the start of vda must hold a valid pool).
const (
	regionMeta = 8 << 20  // bytes of vda per scenario
	regionData = 64 << 20 // bytes of vdb per scenario
	blockSize  = 128      // data block size of the guest pools (64 KiB)
	blockBytes = blockSize * 512
	// The dump area: the last 32 MiB of vdb, where scenarios leave
	// metadata dumps for the host to compare (see dumpArea).
	dumpAreaOffset = 1000 << 20
)

// Scenario numbers (regions).
const (
	regionLifecycle = iota
	regionSnapshotWrites
	regionSnapshotErrors
	regionOutOfMetadata
	regionCrash
	regionReads
	regionGrowth
	regionBadInput
)

var guestCtl struct {
	once sync.Once
	c    *dm.Control
	err  error
}

// guest skips outside the oracle guest and returns the control device.
func guest(t *testing.T) *dm.Control {
	t.Helper()
	if os.Getenv("THINMETA_GUEST") == "" {
		t.Skip("runs in the kernel oracle guest (THINMETA_GUEST=1), from TestKernelGuest")
	}
	guestCtl.once.Do(func() { guestCtl.c, guestCtl.err = dm.Open() })
	if guestCtl.err != nil {
		t.Fatal(guestCtl.err)
	}
	return guestCtl.c
}

// say prints a marker line for the host (at the start of a console line).
func say(format string, args ...any) {
	fmt.Printf("\nTHINMETA-"+format+"\n", args...)
}

// scenario sets up region r: linear devices over its part of vda and vdb
// (metaBytes and dataBytes long, at most the region sizes), removed at the
// end of the test. It returns their node paths and names.
type scenario struct {
	t                  *testing.T
	ctl                *dm.Control
	region             int
	meta, data         string // node paths
	metaName, dataName string
}

func newScenario(t *testing.T, region int, metaBytes, dataBytes int64) *scenario {
	ctl := guest(t)
	s := &scenario{t: t, ctl: ctl, region: region,
		metaName: fmt.Sprintf("r%d-meta", region), dataName: fmt.Sprintf("r%d-data", region)}
	s.meta = s.linear(s.metaName, "/dev/vda", int64(region)*regionMeta, metaBytes)
	s.data = s.linear(s.dataName, "/dev/vdb", int64(region)*regionData, dataBytes)
	return s
}

// linear makes a linear device over bytes [off, off+n) of disk.
func (s *scenario) linear(name, disk string, off, n int64) string {
	t := s.t
	var st unix.Stat_t
	if err := unix.Stat(disk, &st); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ctl.Create(name, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.ctl.Remove(name); err != nil {
			t.Errorf("remove %s: %v", name, err)
		}
	})
	if _, err := s.ctl.Load(name, []dm.Target{{Start: 0, Length: uint64(n / 512), Type: "linear",
		Params: fmt.Sprintf("%s %d", dm.DevString(uint64(st.Rdev)), off/512)}}, false); err != nil {
		t.Fatal(err)
	}
	info, err := s.ctl.Resume(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.ctl.NodeOf(info)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// grow reloads linear device name with n bytes from the same start.
func (s *scenario) grow(name string, n int64) {
	_, table, err := s.ctl.Table(name)
	if err != nil {
		s.t.Fatal(err)
	}
	table[0].Length = uint64(n / 512)
	if _, err := s.ctl.Load(name, table, false); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.ctl.Resume(name, 0); err != nil {
		s.t.Fatal(err)
	}
}

// announce tells the host to check this region's metadata (metaBytes
// long) once the guest is off; held means a metadata snapshot is left held
// for thin_dump -m.
func (s *scenario) announce(metaBytes int64, extra string) {
	say("REGION region=%d meta_offset=%d meta_bytes=%d %s", s.region, int64(s.region)*regionMeta, metaBytes, extra)
}

// pool creates a pool named after the region on freshly formatted
// metadata.
func (s *scenario) pool(opts CreateOptions) *Pool {
	s.t.Helper()
	opts.MetadataDevice, opts.DataDevice, opts.Format = s.meta, s.data, true
	if opts.BlockSize == 0 {
		opts.BlockSize = blockSize
	}
	name := fmt.Sprintf("r%d-pool", s.region)
	p, err := Create(s.ctl, name, opts)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		if _, err := s.ctl.Info(name); err == nil {
			for _, th := range mustThins(s.t, p) {
				th.Deactivate()
			}
			if err := p.Deactivate(); err != nil {
				s.t.Errorf("deactivate %s: %v", name, err)
			}
		}
	})
	return p
}

func mustThins(t *testing.T, p *Pool) []Thin {
	th, err := p.Thins()
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// pattern returns the contents written to a block: its number and a
// generation, repeated.
func pattern(block, gen int) []byte {
	b := alignedBuffer(blockBytes)
	line := fmt.Appendf(nil, "block %06d gen %06d\n", block, gen)
	for i := 0; i < len(b); i += len(line) {
		copy(b[i:], line)
	}
	return b
}

// decode tells which pattern a block holds: gen 0 means zeros, -1 means
// neither zeros nor a whole pattern.
func decode(b []byte) (block, gen int) {
	if bytes.Count(b, []byte{0}) == len(b) {
		return -1, 0
	}
	if _, err := fmt.Sscanf(string(b[:26]), "block %06d gen %06d\n", &block, &gen); err != nil {
		return -1, -1
	}
	if !bytes.Equal(b, pattern(block, gen)) {
		return block, -1
	}
	return block, gen
}

// direct opens a block device with O_DIRECT for whole-block I/O.
type directIO struct{ f *os.File }

func openDirect(t *testing.T, path string) *directIO {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &directIO{f}
}

func (d *directIO) write(block, gen int) error {
	_, err := d.f.WriteAt(pattern(block, gen), int64(block)*blockBytes)
	return err
}

// read returns the generation block holds (0 for zeros, -1 for garbage or
// another block's pattern).
func (d *directIO) read(block int) (int, error) {
	b := alignedBuffer(blockBytes)
	if _, err := d.f.ReadAt(b, int64(block)*blockBytes); err != nil {
		return -1, err
	}
	blk, gen := decode(b)
	if gen > 0 && blk != block {
		return -1, nil
	}
	return gen, nil
}

// dmsetup runs dmsetup and returns its output.
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

// suspended reports whether device name is suspended, by dm and by
// dmsetup.
func suspended(t *testing.T, ctl *dm.Control, name string) bool {
	t.Helper()
	info, err := ctl.Info(name)
	if err != nil {
		t.Fatal(err)
	}
	ds := strings.Contains(dmsetup(t, "info", name), "SUSPENDED")
	if ds != info.Suspended() {
		t.Fatalf("%s: dmsetup says suspended=%v, dm %v", name, ds, info.Suspended())
	}
	return info.Suspended()
}

// within runs f and fails the test if it does not return in time (a
// suspended device would hang it).
func within(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
	}
}

// writeDump leaves data in the dump area slot for the host.
func writeDump(t *testing.T, slot int, data []byte) {
	t.Helper()
	const slotBytes = 4 << 20
	if len(data) > slotBytes-8 {
		t.Fatalf("dump of %d bytes too big", len(data))
	}
	f, err := os.OpenFile("/dev/vdb", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := int64(dumpAreaOffset) + int64(slot)*slotBytes
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	say("DUMP slot=%d offset=%d bytes=%d", slot, off, len(data))
}
