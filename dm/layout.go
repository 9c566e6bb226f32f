package dm

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The structures of include/uapi/linux/dm-ioctl.h, as offsets into byte
// buffers. They are in the machine's byte order: the kernel reads them as
// C structs of the calling process's ABI (the 64-bit layout; a 32-bit
// process gets the same layout through the compat ioctl, there being no
// implicit padding).
var order = binary.NativeEndian

// struct dm_ioctl.
const (
	offVersion     = 0   // __u32 version[3]
	offDataSize    = 12  // __u32 data_size: whole buffer in, filled bytes out
	offDataStart   = 16  // __u32 data_start: payload offset
	offTargetCount = 20  // __u32 target_count
	offOpenCount   = 24  // __s32 open_count
	offFlags       = 28  // __u32 flags
	offEventNr     = 32  // __u32 event_nr
	offPadding     = 36  // __u32 padding
	offDev         = 40  // __u64 dev (huge_encode_dev)
	offName        = 48  // char name[DM_NAME_LEN]
	offUUID        = 176 // char uuid[DM_UUID_LEN]
	offData        = 305 // char data[7]
	headerSize     = 312 // sizeof(struct dm_ioctl); also where results start

	nameLen = 128 // DM_NAME_LEN, with the terminating NUL
	uuidLen = 129 // DM_UUID_LEN, with the terminating NUL
)

// struct dm_target_spec, followed by the NUL-terminated parameters.
const (
	offSpecStart  = 0  // __u64 sector_start
	offSpecLength = 8  // __u64 length
	offSpecStatus = 16 // __s32 status
	offSpecNext   = 20 // __u32 next
	offSpecType   = 24 // char target_type[DM_MAX_TYPE_NAME]
	specSize      = 40
	typeLen       = 16 // DM_MAX_TYPE_NAME, with the terminating NUL
)

// struct dm_name_list: dev, next, name; then, 8-byte aligned after the
// name's NUL, __u32 event_nr, __u32 flags and (flag HAS_UUID) the uuid.
const (
	offListDev  = 0
	offListNext = 8
	offListName = 12

	listHasUUID   = 1 // DM_NAME_LIST_FLAG_HAS_UUID
	listHasNoUUID = 2 // DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID
)

// struct dm_target_versions: next, version[3], name.
const (
	offVersNext    = 0
	offVersVersion = 4
	offVersName    = 16
)

// struct dm_target_msg: sector, then the message.
const (
	offMsgSector = 0
	offMsgText   = 8
)

// struct dm_target_deps: count, padding, dev[count].
const (
	offDepsCount = 0
	offDepsDevs  = 8
)

// Command numbers (the enum of dm-ioctl.h).
const (
	cmdVersion          = 0
	cmdRemoveAll        = 1
	cmdListDevices      = 2
	cmdDevCreate        = 3
	cmdDevRemove        = 4
	cmdDevRename        = 5
	cmdDevSuspend       = 6
	cmdDevStatus        = 7
	cmdDevWait          = 8
	cmdTableLoad        = 9
	cmdTableClear       = 10
	cmdTableDeps        = 11
	cmdTableStatus      = 12
	cmdListVersions     = 13
	cmdTargetMsg        = 14
	cmdDevSetGeometry   = 15
	cmdDevArmPoll       = 16
	cmdGetTargetVersion = 17
)

// cmdNames are the names errors use for the commands.
var cmdNames = [...]string{
	cmdVersion:          "DM_VERSION",
	cmdRemoveAll:        "DM_REMOVE_ALL",
	cmdListDevices:      "DM_LIST_DEVICES",
	cmdDevCreate:        "DM_DEV_CREATE",
	cmdDevRemove:        "DM_DEV_REMOVE",
	cmdDevRename:        "DM_DEV_RENAME",
	cmdDevSuspend:       "DM_DEV_SUSPEND",
	cmdDevStatus:        "DM_DEV_STATUS",
	cmdDevWait:          "DM_DEV_WAIT",
	cmdTableLoad:        "DM_TABLE_LOAD",
	cmdTableClear:       "DM_TABLE_CLEAR",
	cmdTableDeps:        "DM_TABLE_DEPS",
	cmdTableStatus:      "DM_TABLE_STATUS",
	cmdListVersions:     "DM_LIST_VERSIONS",
	cmdTargetMsg:        "DM_TARGET_MSG",
	cmdDevSetGeometry:   "DM_DEV_SET_GEOMETRY",
	cmdDevArmPoll:       "DM_DEV_ARM_POLL",
	cmdGetTargetVersion: "DM_GET_TARGET_VERSION",
}

// ioctlNumber returns the ioctl request number of a command:
// _IOWR(DM_IOCTL, nr, struct dm_ioctl), that is direction read|write (3)
// in bits 30-31, the structure size in bits 16-29, the type 0xfd in bits
// 8-15 and the command in bits 0-7.
func ioctlNumber(cmd int) uintptr {
	const dirReadWrite = 3
	return dirReadWrite<<30 | headerSize<<16 | 0xfd<<8 | uintptr(cmd)
}

// The interface version this client speaks: the kernel accepts any 4.x
// request whose minor is not above its own, so asking for 4.0.0 works on
// every kernel of the 4 series and the reply carries the kernel's version.
const (
	versionMajor = 4
	versionMinor = 0
	versionPatch = 0
)

// header is the decoded struct dm_ioctl.
type header struct {
	version     [3]uint32
	dataSize    uint32
	dataStart   uint32
	targetCount uint32
	openCount   int32
	flags       Flags
	eventNr     uint32
	dev         uint64
	name        string
	uuid        string
}

// put writes h into b[:headerSize], which must be at least that long.
// Names longer than the kernel's limits are refused before this point.
func (h *header) put(b []byte) {
	clear(b[:headerSize])
	order.PutUint32(b[offVersion:], h.version[0])
	order.PutUint32(b[offVersion+4:], h.version[1])
	order.PutUint32(b[offVersion+8:], h.version[2])
	order.PutUint32(b[offDataSize:], h.dataSize)
	order.PutUint32(b[offDataStart:], h.dataStart)
	order.PutUint32(b[offTargetCount:], h.targetCount)
	order.PutUint32(b[offOpenCount:], uint32(h.openCount))
	order.PutUint32(b[offFlags:], uint32(h.flags))
	order.PutUint32(b[offEventNr:], h.eventNr)
	order.PutUint64(b[offDev:], h.dev)
	copy(b[offName:offName+nameLen-1], h.name)
	copy(b[offUUID:offUUID+uuidLen-1], h.uuid)
}

// parseHeader decodes b[:headerSize].
func parseHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("reply of %d bytes: %w", len(b), ErrMalformed)
	}
	h := header{
		version:     [3]uint32{order.Uint32(b[offVersion:]), order.Uint32(b[offVersion+4:]), order.Uint32(b[offVersion+8:])},
		dataSize:    order.Uint32(b[offDataSize:]),
		dataStart:   order.Uint32(b[offDataStart:]),
		targetCount: order.Uint32(b[offTargetCount:]),
		openCount:   int32(order.Uint32(b[offOpenCount:])),
		flags:       Flags(order.Uint32(b[offFlags:])),
		eventNr:     order.Uint32(b[offEventNr:]),
		dev:         order.Uint64(b[offDev:]),
		name:        cString(b[offName : offName+nameLen]),
		uuid:        cString(b[offUUID : offUUID+uuidLen]),
	}
	return h, nil
}

// payload returns the bytes the kernel filled after data_start, checked
// against the buffer.
// A command that filled nothing leaves data_size at offData (305), below
// data_start: an empty payload.
func (h *header) payload(b []byte) ([]byte, error) {
	if h.dataStart < headerSize || h.dataSize < offData || int64(h.dataSize) > int64(len(b)) || int64(h.dataStart) > int64(len(b)) {
		return nil, fmt.Errorf("data_start %d, data_size %d in a %d-byte buffer: %w", h.dataStart, h.dataSize, len(b), ErrMalformed)
	}
	if h.dataSize <= h.dataStart {
		return nil, nil
	}
	return b[h.dataStart:h.dataSize], nil
}

// cString returns b up to its first NUL (all of b if there is none).
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// align8 rounds n up to a multiple of 8.
func align8(n int) int { return (n + 7) &^ 7 }

// tableSize returns the bytes that targets take as dm_target_spec records
// with their parameters, each record 8-byte aligned.
func tableSize(targets []Target) int {
	n := 0
	for _, t := range targets {
		n += align8(specSize + len(t.Params) + 1)
	}
	return n
}

// putTable writes targets as dm_target_spec records into b (at least
// tableSize bytes, zeroed), with next relative to each record as
// DM_TABLE_LOAD wants it.
func putTable(b []byte, targets []Target) {
	off := 0
	for _, t := range targets {
		rec := align8(specSize + len(t.Params) + 1)
		s := b[off:]
		order.PutUint64(s[offSpecStart:], t.Start)
		order.PutUint64(s[offSpecLength:], t.Length)
		order.PutUint32(s[offSpecNext:], uint32(rec))
		copy(s[offSpecType:offSpecType+typeLen-1], t.Type)
		copy(s[specSize:], t.Params)
		off += rec
	}
}

// parseTable decodes count dm_target_spec records from a DM_TABLE_STATUS
// (or DM_DEV_WAIT) payload, where next is relative to the first record.
func parseTable(p []byte, count uint32) ([]Target, error) {
	if uint64(count) > uint64(len(p)/specSize) {
		return nil, fmt.Errorf("%d targets in %d bytes: %w", count, len(p), ErrMalformed)
	}
	out := make([]Target, 0, count)
	off := 0
	for i := uint32(0); i < count; i++ {
		if off < 0 || off+specSize > len(p) {
			return nil, fmt.Errorf("target %d at offset %d beyond %d bytes: %w", i, off, len(p), ErrMalformed)
		}
		s := p[off:]
		params := s[specSize:]
		end := bytes.IndexByte(params, 0)
		if end < 0 {
			return nil, fmt.Errorf("target %d: parameters not terminated: %w", i, ErrMalformed)
		}
		out = append(out, Target{
			Start:  order.Uint64(s[offSpecStart:]),
			Length: order.Uint64(s[offSpecLength:]),
			Type:   cString(s[offSpecType : offSpecType+typeLen]),
			Params: string(params[:end]),
		})
		next := int(order.Uint32(s[offSpecNext:]))
		if i+1 < count && next <= off {
			return nil, fmt.Errorf("target %d: next offset %d does not advance: %w", i, next, ErrMalformed)
		}
		off = next
	}
	return out, nil
}

// parseNameList decodes a DM_LIST_DEVICES payload.
func parseNameList(p []byte) ([]DeviceEntry, error) {
	var out []DeviceEntry
	if len(p) < offListName || order.Uint64(p[offListDev:]) == 0 {
		return out, nil // no devices
	}
	off := 0
	for {
		if off+offListName > len(p) {
			return nil, fmt.Errorf("device record at %d beyond %d bytes: %w", off, len(p), ErrMalformed)
		}
		r := p[off:]
		next := int(order.Uint32(r[offListNext:]))
		end := bytes.IndexByte(r[offListName:], 0)
		if end < 0 {
			return nil, fmt.Errorf("device name at %d not terminated: %w", off, ErrMalformed)
		}
		e := DeviceEntry{Dev: order.Uint64(r[offListDev:]), Name: string(r[offListName : offListName+end])}
		// Kernels since 4.37 put the event number and a flags word after
		// the name; older ones end the record there.
		x := align8(offListName + end + 1)
		limit := len(r)
		if next != 0 && next < limit {
			limit = next
		}
		if x+8 <= limit {
			e.EventNr = order.Uint32(r[x:])
			e.HasEventNr = true
			if order.Uint32(r[x+4:])&listHasUUID != 0 {
				u := r[x+8 : limit]
				if i := bytes.IndexByte(u, 0); i >= 0 {
					e.UUID = string(u[:i])
				}
			}
		}
		out = append(out, e)
		if next == 0 {
			return out, nil
		}
		if next < offListName {
			return nil, fmt.Errorf("device record at %d: next %d: %w", off, next, ErrMalformed)
		}
		off += next
	}
}

// parseVersions decodes a DM_LIST_VERSIONS payload.
func parseVersions(p []byte) ([]TargetVersion, error) {
	var out []TargetVersion
	off := 0
	for len(p) > 0 {
		if off+offVersName > len(p) {
			return nil, fmt.Errorf("target version record at %d beyond %d bytes: %w", off, len(p), ErrMalformed)
		}
		r := p[off:]
		end := bytes.IndexByte(r[offVersName:], 0)
		if end < 0 {
			return nil, fmt.Errorf("target name at %d not terminated: %w", off, ErrMalformed)
		}
		out = append(out, TargetVersion{
			Name: string(r[offVersName : offVersName+end]),
			Version: [3]uint32{order.Uint32(r[offVersVersion:]), order.Uint32(r[offVersVersion+4:]),
				order.Uint32(r[offVersVersion+8:])},
		})
		next := int(order.Uint32(r[offVersNext:]))
		if next == 0 {
			break
		}
		if next < offVersName {
			return nil, fmt.Errorf("target version record at %d: next %d: %w", off, next, ErrMalformed)
		}
		off += next
	}
	return out, nil
}

// parseDeps decodes a DM_TABLE_DEPS payload.
func parseDeps(p []byte) ([]uint64, error) {
	if len(p) < offDepsDevs {
		return nil, fmt.Errorf("dependency list of %d bytes: %w", len(p), ErrMalformed)
	}
	n := order.Uint32(p[offDepsCount:])
	if uint64(n) > uint64((len(p)-offDepsDevs)/8) {
		return nil, fmt.Errorf("%d dependencies in %d bytes: %w", n, len(p), ErrMalformed)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = order.Uint64(p[offDepsDevs+8*i:])
	}
	return out, nil
}
