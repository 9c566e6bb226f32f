package dm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The golden buffers below are written out by hand from dm-ioctl.h for a
// little-endian machine.
func needLittleEndian(t *testing.T) {
	t.Helper()
	var x [2]byte
	binary.NativeEndian.PutUint16(x[:], 1)
	if x[0] != 1 {
		t.Skip("golden buffers are little-endian")
	}
}

// Offsets and sizes agree with the structure x/sys/unix generates from the
// kernel header with cgo -godefs (an independent reading of dm-ioctl.h).
func TestLayoutMatchesUnix(t *testing.T) {
	var d unix.DmIoctl
	var s unix.DmTargetSpec
	for _, c := range []struct {
		name      string
		ours, got uintptr
	}{
		{"sizeof(dm_ioctl)", headerSize, unsafe.Sizeof(d)},
		{"version", offVersion, unsafe.Offsetof(d.Version)},
		{"data_size", offDataSize, unsafe.Offsetof(d.Data_size)},
		{"data_start", offDataStart, unsafe.Offsetof(d.Data_start)},
		{"target_count", offTargetCount, unsafe.Offsetof(d.Target_count)},
		{"open_count", offOpenCount, unsafe.Offsetof(d.Open_count)},
		{"flags", offFlags, unsafe.Offsetof(d.Flags)},
		{"event_nr", offEventNr, unsafe.Offsetof(d.Event_nr)},
		{"dev", offDev, unsafe.Offsetof(d.Dev)},
		{"name", offName, unsafe.Offsetof(d.Name)},
		{"uuid", offUUID, unsafe.Offsetof(d.Uuid)},
		{"data", offData, unsafe.Offsetof(d.Data)},
		{"len(name)", nameLen, unsafe.Sizeof(d.Name)},
		{"len(uuid)", uuidLen, unsafe.Sizeof(d.Uuid)},
		{"sizeof(dm_target_spec)", specSize, unsafe.Sizeof(s)},
		{"sector_start", offSpecStart, unsafe.Offsetof(s.Sector_start)},
		{"length", offSpecLength, unsafe.Offsetof(s.Length)},
		{"status", offSpecStatus, unsafe.Offsetof(s.Status)},
		{"next", offSpecNext, unsafe.Offsetof(s.Next)},
		{"target_type", offSpecType, unsafe.Offsetof(s.Target_type)},
		{"len(target_type)", typeLen, unsafe.Sizeof(s.Target_type)},
		{"sizeof(dm_ioctl) constant", headerSize, unix.SizeofDmIoctl},
		{"sizeof(dm_target_spec) constant", specSize, unix.SizeofDmTargetSpec},
	} {
		if c.ours != c.got {
			t.Errorf("%s: ours %d, x/sys/unix %d", c.name, c.ours, c.got)
		}
	}
	var v unix.DmTargetVersions
	if offVersVersion != unsafe.Offsetof(v.Version) || offVersName != unsafe.Sizeof(v) {
		t.Errorf("dm_target_versions: version at %d, name at %d", unsafe.Offsetof(v.Version), unsafe.Sizeof(v))
	}
	var m unix.DmTargetMsg
	if offMsgText != unsafe.Sizeof(m) {
		t.Errorf("dm_target_msg: message at %d", unsafe.Sizeof(m))
	}
	var dp unix.DmTargetDeps
	if offDepsDevs != unsafe.Sizeof(dp) {
		t.Errorf("dm_target_deps: dev at %d", unsafe.Sizeof(dp))
	}
}

func TestRequestNumbersAndFlags(t *testing.T) {
	for _, c := range []struct {
		cmd  int
		want uintptr
	}{
		{cmdVersion, unix.DM_VERSION}, {cmdRemoveAll, unix.DM_REMOVE_ALL},
		{cmdListDevices, unix.DM_LIST_DEVICES}, {cmdDevCreate, unix.DM_DEV_CREATE},
		{cmdDevRemove, unix.DM_DEV_REMOVE}, {cmdDevRename, unix.DM_DEV_RENAME},
		{cmdDevSuspend, unix.DM_DEV_SUSPEND}, {cmdDevStatus, unix.DM_DEV_STATUS},
		{cmdDevWait, unix.DM_DEV_WAIT}, {cmdTableLoad, unix.DM_TABLE_LOAD},
		{cmdTableClear, unix.DM_TABLE_CLEAR}, {cmdTableDeps, unix.DM_TABLE_DEPS},
		{cmdTableStatus, unix.DM_TABLE_STATUS}, {cmdListVersions, unix.DM_LIST_VERSIONS},
		{cmdTargetMsg, unix.DM_TARGET_MSG}, {cmdDevSetGeometry, unix.DM_DEV_SET_GEOMETRY},
		{cmdDevArmPoll, unix.DM_DEV_ARM_POLL}, {cmdGetTargetVersion, unix.DM_GET_TARGET_VERSION},
	} {
		if got := ioctlNumber(c.cmd); got != c.want {
			t.Errorf("%s: %#x, want %#x", cmdNames[c.cmd], got, c.want)
		}
	}
	// By hand: _IOWR(0xfd, 0, 312 bytes) = 3<<30 | 0x138<<16 | 0xfd<<8.
	if ioctlNumber(cmdVersion) != 0xc138fd00 {
		t.Errorf("DM_VERSION %#x", ioctlNumber(cmdVersion))
	}
	for _, c := range []struct {
		name string
		ours Flags
		want uint32
	}{
		{"READONLY", FlagReadOnly, unix.DM_READONLY_FLAG}, {"SUSPEND", FlagSuspend, unix.DM_SUSPEND_FLAG},
		{"PERSISTENT_DEV", FlagPersistentDev, unix.DM_PERSISTENT_DEV_FLAG},
		{"STATUS_TABLE", FlagStatusTable, unix.DM_STATUS_TABLE_FLAG},
		{"ACTIVE_PRESENT", FlagActivePresent, unix.DM_ACTIVE_PRESENT_FLAG},
		{"INACTIVE_PRESENT", FlagInactivePresent, unix.DM_INACTIVE_PRESENT_FLAG},
		{"BUFFER_FULL", FlagBufferFull, unix.DM_BUFFER_FULL_FLAG},
		{"SKIP_LOCKFS", FlagSkipLockfs, unix.DM_SKIP_LOCKFS_FLAG}, {"NOFLUSH", FlagNoFlush, unix.DM_NOFLUSH_FLAG},
		{"QUERY_INACTIVE_TABLE", FlagQueryInactive, unix.DM_QUERY_INACTIVE_TABLE_FLAG},
		{"UEVENT_GENERATED", FlagUeventGenerated, unix.DM_UEVENT_GENERATED_FLAG},
		{"UUID", FlagUUID, unix.DM_UUID_FLAG}, {"SECURE_DATA", FlagSecureData, unix.DM_SECURE_DATA_FLAG},
		{"DATA_OUT", FlagDataOut, unix.DM_DATA_OUT_FLAG}, {"DEFERRED_REMOVE", FlagDeferredRemove, unix.DM_DEFERRED_REMOVE},
		{"INTERNAL_SUSPEND", FlagInternalSuspend, unix.DM_INTERNAL_SUSPEND_FLAG},
	} {
		if uint32(c.ours) != c.want {
			t.Errorf("DM_%s_FLAG: %#x, want %#x", c.name, c.ours, c.want)
		}
	}
	if listHasUUID != unix.DM_NAME_LIST_FLAG_HAS_UUID || listHasNoUUID != unix.DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID {
		t.Error("DM_NAME_LIST_FLAG values")
	}
}

// golden returns a zeroed buffer of n bytes with the given bytes set.
func golden(n int, set map[int][]byte) []byte {
	b := make([]byte, n)
	for off, v := range set {
		copy(b[off:], v)
	}
	return b
}

func TestHeaderGolden(t *testing.T) {
	needLittleEndian(t)
	r := &request{cmd: cmdDevSuspend, name: "pool", flags: FlagSuspend | FlagSkipLockfs, eventNr: 7}
	got := r.build(headerSize)
	want := golden(312, map[int][]byte{
		0:  {4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // version 4.0.0
		12: {0x38, 0x01, 0, 0},                   // data_size 312
		16: {0x38, 0x01, 0, 0},                   // data_start 312
		28: {0x02, 0x04, 0, 0},                   // flags SUSPEND | SKIP_LOCKFS (bits 1 and 10)
		32: {7, 0, 0, 0},                         // event_nr
		48: []byte("pool"),
	})
	if !bytes.Equal(got, want) {
		t.Fatalf("suspend header:\n got %x\nwant %x", got, want)
	}

	r = &request{cmd: cmdDevStatus, dev: Mkdev(253, 300), uuid: "LVM-x"}
	got = r.build(headerSize)
	// huge_encode_dev(253:300) = (300 & 0xff) | 253<<8 | (300 &^ 0xff)<<12
	// = 0x2c | 0xfd00 | 0x100000 = 0x10fd2c.
	want = golden(312, map[int][]byte{
		0:   {4},
		12:  {0x38, 0x01},
		16:  {0x38, 0x01},
		40:  {0x2c, 0xfd, 0x10, 0, 0, 0, 0, 0},
		176: []byte("LVM-x"),
	})
	if !bytes.Equal(got, want) {
		t.Fatalf("status-by-dev header:\n got %x\nwant %x", got, want)
	}

	h, err := parseHeader(golden(312, map[int][]byte{
		0:   {4, 0, 0, 0, 47, 0, 0, 0, 0, 0, 0, 0},
		12:  {0x31, 0x01},             // data_size 305: nothing filled
		16:  {0x38, 0x01},             // data_start 312
		20:  {1},                      // one target
		24:  {0xff, 0xff, 0xff, 0xff}, // open_count -1
		28:  {0x22},                   // SUSPEND | ACTIVE_PRESENT
		32:  {0x10, 0x27},             // event 10000
		40:  {0x01, 0xfd},             // 253:1
		48:  []byte("thin1"),
		176: []byte("uuid-1"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	i := h.info()
	if h.version != [3]uint32{4, 47, 0} || i.Name != "thin1" || i.UUID != "uuid-1" || i.Major() != 253 || i.Minor() != 1 ||
		i.OpenCount != -1 || i.EventNr != 10000 || i.TargetCount != 1 || !i.Suspended() || !i.HasTable() || i.ReadOnly() {
		t.Fatalf("decoded %+v version %v", i, h.version)
	}
	if p, err := h.payload(make([]byte, 312)); err != nil || len(p) != 0 {
		t.Fatalf("empty payload: %q %v", p, err)
	}
}

func TestTableLoadGolden(t *testing.T) {
	needLittleEndian(t)
	targets := []Target{
		{Start: 0, Length: 2048, Type: "linear", Params: "8:16 0"},
		{Start: 2048, Length: 0x10000, Type: "thin-pool", Params: "253:0 253:1 128 0"},
	}
	in := make([]byte, tableSize(targets))
	putTable(in, targets)
	// First record: 40 + len("8:16 0") + 1 = 47, rounded to 48. Second:
	// 40 + 18 = 58, rounded to 64; next is relative to each record.
	want := golden(48+64, map[int][]byte{
		0:  {0, 0, 0, 0, 0, 0, 0, 0},    // sector_start 0
		8:  {0x00, 0x08, 0, 0, 0, 0, 0}, // length 2048
		20: {48},                        // next
		24: []byte("linear"),
		40: []byte("8:16 0"),
		48: {0x00, 0x08},       // sector_start 2048
		56: {0x00, 0x00, 0x01}, // length 0x10000
		68: {64},
		72: []byte("thin-pool"),
		88: []byte("253:0 253:1 128 0"),
	})
	if !bytes.Equal(in, want) {
		t.Fatalf("table:\n got %x\nwant %x", in, want)
	}
}

func TestParseStatusGolden(t *testing.T) {
	needLittleEndian(t)
	// As DM_TABLE_STATUS returns them: next relative to the first record.
	p := golden(48+56, map[int][]byte{
		8:  {0x00, 0x04}, // length 1024
		20: {48},         // next: offset of the second record
		24: []byte("linear"),
		40: []byte("8:0 2"),
		48: {0x00, 0x04}, // start 1024
		56: {0x00, 0x04}, // length 1024
		68: {104},        // next past the end (last record)
		72: []byte("thin"),
		88: []byte("2048 4095"),
	})
	got, err := parseTable(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{{0, 1024, "linear", "8:0 2"}, {1024, 1024, "thin", "2048 4095"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v", got)
	}
}

func TestParseNameListGolden(t *testing.T) {
	needLittleEndian(t)
	// Record 1: dev 253:0, name "pool" (12+5 = 17 → 24), event 3, flags
	// HAS_UUID, uuid "u1" (3 → 8): 40 bytes. Record 2: dev 253:1, name
	// "t" (13 → 16), event 0, flags DOESNT_HAVE_UUID: 24 bytes.
	p := golden(64, map[int][]byte{
		0:  {0x00, 0xfd}, // 253:0
		8:  {40},         // next
		12: []byte("pool"),
		24: {3, 0, 0, 0, 1, 0, 0, 0},
		32: []byte("u1"),
		40: {0x01, 0xfd},
		52: []byte("t"),
		56: {0, 0, 0, 0, 2, 0, 0, 0},
	})
	got, err := parseNameList(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []DeviceEntry{
		{Name: "pool", UUID: "u1", Dev: Mkdev(253, 0), EventNr: 3, HasEventNr: true},
		{Name: "t", Dev: Mkdev(253, 1), HasEventNr: true},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v", got)
	}
	if l, err := parseNameList(nil); err != nil || len(l) != 0 {
		t.Fatalf("empty list: %v %v", l, err)
	}
}

func TestParseVersionsGolden(t *testing.T) {
	needLittleEndian(t)
	p := golden(24+24, map[int][]byte{
		0:  {24},                                  // next
		4:  {1, 0, 0, 0, 23, 0, 0, 0, 0, 0, 0, 0}, // 1.23.0
		16: []byte("thin"),
		28: {1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0},
		40: []byte("linear"),
	})
	got, err := parseVersions(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (TargetVersion{"thin", [3]uint32{1, 23, 0}}) || got[1] != (TargetVersion{"linear", [3]uint32{1, 4, 0}}) {
		t.Fatalf("got %+v", got)
	}
}

func TestParseMalformed(t *testing.T) {
	needLittleEndian(t)
	loop := golden(48, map[int][]byte{20: {0}, 24: []byte("x"), 40: []byte("y")})
	for _, c := range []struct {
		name string
		err  error
	}{
		{"table count beyond payload", func() error { _, err := parseTable(make([]byte, 40), 2); return err }()},
		{"table next does not advance", func() error { _, err := parseTable(append(loop, loop...), 2); return err }()},
		{"table params unterminated", func() error {
			_, err := parseTable(bytes.Repeat([]byte{'a'}, 48), 1)
			return err
		}()},
		{"name list next loops back", func() error {
			_, err := parseNameList(golden(24, map[int][]byte{0: {1}, 8: {4}, 12: []byte("a")}))
			return err
		}()},
		{"name list unterminated", func() error {
			_, err := parseNameList(append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 'a', 'b'))
			return err
		}()},
		{"versions truncated", func() error { _, err := parseVersions(make([]byte, 10)); return err }()},
		{"deps count beyond payload", func() error { _, err := parseDeps([]byte{9, 0, 0, 0, 0, 0, 0, 0}); return err }()},
		{"header short", func() error { _, err := parseHeader(make([]byte, 100)); return err }()},
		{"payload beyond buffer", func() error {
			h := header{dataStart: 312, dataSize: 4000}
			_, err := h.payload(make([]byte, 312))
			return err
		}()},
	} {
		if !errors.Is(c.err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", c.name, c.err)
		}
	}
}

// Decoders never panic and never loop on arbitrary payloads.
func FuzzParse(f *testing.F) {
	f.Add([]byte{}, uint32(0))
	f.Add(golden(48, map[int][]byte{20: {48}, 24: []byte("linear"), 40: []byte("8:0 0")}), uint32(1))
	f.Add(golden(40, map[int][]byte{0: {1}, 12: []byte("pool"), 24: {3, 0, 0, 0, 1}}), uint32(0))
	f.Fuzz(func(t *testing.T, p []byte, n uint32) {
		parseTable(p, n)
		parseNameList(p)
		parseVersions(p)
		parseDeps(p)
		if h, err := parseHeader(p); err == nil {
			h.payload(p)
		}
	})
}
