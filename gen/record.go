package gen

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/thinmeta/thinmeta/thin"
)

// EventKind says what an Event did.
type EventKind uint8

const (
	// Create: thin device Dev was created, empty.
	Create EventKind = iota
	// Map: virtual blocks [VBlock, VBlock+Len) of Dev were mapped to data
	// blocks [Block, Block+Len) at time Time (replacing earlier mappings).
	Map
	// Snap: Dev was created as a snapshot of Origin; the pool time
	// advanced to Time.
	Snap
	// Unmap: virtual blocks [VBlock, VBlock+Len) of Dev were unmapped
	// (discarded); Block counts the mappings actually removed.
	Unmap
	// Delete: Dev was deleted.
	Delete
	// SetTransaction: the userspace transaction id was set to
	// Transaction.
	SetTransaction
	// Commit: the transaction was committed.
	Commit
	// ReserveSnapshot: a metadata snapshot of the committed pool was
	// reserved at metadata block Block.
	ReserveSnapshot
)

var eventNames = []string{"create", "map", "snap", "unmap", "delete", "set-transaction", "commit", "reserve-metadata-snap"}

// String names the kind.
func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}

// Event is one change the generator made through the write path, with
// what the write path returned (the data blocks it allocated). Fields not
// used by a kind are zero.
type Event struct {
	Kind        EventKind
	Time        uint32
	Dev, Origin uint64
	VBlock      uint64
	Block       uint64
	Len         uint64
	Transaction uint64
}

// String formats the event on one line.
func (e Event) String() string {
	switch e.Kind {
	case Create, Delete:
		return fmt.Sprintf("%v %d", e.Kind, e.Dev)
	case Map:
		return fmt.Sprintf("map %d [%d, %d) -> %d time %d", e.Dev, e.VBlock, e.VBlock+e.Len, e.Block, e.Time)
	case Snap:
		return fmt.Sprintf("snap %d of %d time %d", e.Dev, e.Origin, e.Time)
	case Unmap:
		return fmt.Sprintf("unmap %d [%d, %d): %d removed", e.Dev, e.VBlock, e.VBlock+e.Len, e.Block)
	case SetTransaction:
		return fmt.Sprintf("set-transaction %d", e.Transaction)
	case ReserveSnapshot:
		return fmt.Sprintf("reserve-metadata-snap at %d", e.Block)
	}
	return e.Kind.String()
}

// Record is what a generator run built: the completed Spec, the device
// sizes, and every change in order. Final and MetadataSnapshot replay it
// into the pool's expected contents, independently of the metadata
// written, so tests can compare them with what thin_dump reads.
type Record struct {
	Spec Spec
	Seed uint64
	// DataBlockSize, NrDataBlocks and MetadataBlocks are the pool's
	// geometry.
	DataBlockSize  uint32
	NrDataBlocks   uint64
	MetadataBlocks uint64
	// Events are the changes, in order.
	Events []Event
	// HeldRoot is the block of the metadata snapshot (0: none).
	HeldRoot uint64
	// PreviousSuperblock is the superblock block as the commit before the
	// last left it (what a torn superblock write mixes with the last).
	PreviousSuperblock []byte
	// Commits counts the commits.
	Commits int
}

// Device is a thin device of a replayed pool.
type Device struct {
	ID       uint64
	Details  thin.Details
	Mappings []thin.Mapping // in virtual block order
}

// State is the expected contents of a pool (or of its metadata snapshot).
type State struct {
	Time          uint32
	TransactionID uint64
	DataBlockSize uint32
	NrDataBlocks  uint64
	Devices       []Device // by id
}

// Device returns the device with id, or nil.
func (s *State) Device(id uint64) *Device {
	i, ok := slices.BinarySearchFunc(s.Devices, id, func(d Device, id uint64) int { return cmpU64(d.ID, id) })
	if !ok {
		return nil
	}
	return &s.Devices[i]
}

// Mappings returns the number of mappings of all devices.
func (s *State) Mappings() uint64 {
	var n uint64
	for _, d := range s.Devices {
		n += uint64(len(d.Mappings))
	}
	return n
}

// model is a replayed pool: per device, its details and mappings.
type model struct {
	time uint32
	tid  uint64
	devs map[uint64]*modelDev
}

type modelDev struct {
	det thin.Details
	m   map[uint64]uint64 // vblock -> data block << 32 | time
}

func (md *model) state(r *Record, nrData uint64) *State {
	s := &State{Time: md.time, TransactionID: md.tid, DataBlockSize: r.DataBlockSize, NrDataBlocks: nrData}
	for _, id := range slices.Sorted(maps.Keys(md.devs)) {
		d := md.devs[id]
		det := d.det
		det.MappedBlocks = uint64(len(d.m))
		dev := Device{ID: id, Details: det, Mappings: make([]thin.Mapping, 0, len(d.m))}
		for _, v := range slices.Sorted(maps.Keys(d.m)) {
			x := d.m[v]
			dev.Mappings = append(dev.Mappings, thin.Mapping{VBlock: v, Block: x >> 32, Time: uint32(x)})
		}
		s.Devices = append(s.Devices, dev)
	}
	return s
}

// replay applies the events and returns the final state and the state of
// the metadata snapshot (nil if none was reserved). The rules are the
// kernel's (FORMAT.md §7): a new device records the transaction id and
// the pool time; a snapshot advances the time, copies the origin's
// mappings and stamps the origin's snapshotted time.
func (r *Record) replay() (final, snap *State, err error) {
	md := &model{devs: make(map[uint64]*modelDev)}
	for i, e := range r.Events {
		d := md.devs[e.Dev]
		needDev := func() error {
			if d == nil {
				return fmt.Errorf("gen: event %d (%v): no device %d", i, e, e.Dev)
			}
			return nil
		}
		switch e.Kind {
		case Create:
			md.devs[e.Dev] = &modelDev{det: thin.Details{TransactionID: md.tid, CreationTime: md.time, SnapshottedTime: md.time},
				m: make(map[uint64]uint64)}
		case Snap:
			o := md.devs[e.Origin]
			if o == nil {
				return nil, nil, fmt.Errorf("gen: event %d (%v): no origin", i, e)
			}
			md.time++
			if md.time != e.Time {
				return nil, nil, fmt.Errorf("gen: event %d (%v): time %d expected", i, e, md.time)
			}
			o.det.SnapshottedTime = md.time
			md.devs[e.Dev] = &modelDev{det: thin.Details{TransactionID: md.tid, CreationTime: md.time, SnapshottedTime: md.time},
				m: maps.Clone(o.m)}
		case Map:
			if err := needDev(); err != nil {
				return nil, nil, err
			}
			for k := range e.Len {
				d.m[e.VBlock+k] = (e.Block+k)<<32 | uint64(e.Time)
			}
		case Unmap:
			if err := needDev(); err != nil {
				return nil, nil, err
			}
			for k := range e.Len {
				delete(d.m, e.VBlock+k)
			}
		case Delete:
			if err := needDev(); err != nil {
				return nil, nil, err
			}
			delete(md.devs, e.Dev)
		case SetTransaction:
			md.tid = e.Transaction
		case ReserveSnapshot:
			// The snapshot's superblock copy has no space maps, so
			// nr_data_blocks reads as 0 through it.
			snap = md.state(r, 0)
		}
	}
	return md.state(r, r.NrDataBlocks), snap, nil
}

// Final returns the pool's expected contents.
func (r *Record) Final() (*State, error) {
	f, _, err := r.replay()
	return f, err
}

// MetadataSnapshot returns the expected contents of the metadata snapshot,
// or nil if none was reserved.
func (r *Record) MetadataSnapshot() (*State, error) {
	_, s, err := r.replay()
	return s, err
}

// WriteXML writes s as thin_dump 0.9.0 prints a pool: runs of consecutive
// virtual blocks mapped to consecutive data blocks at one time are one
// range_mapping.
func (s *State) WriteXML(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "<superblock uuid=\"\" time=\"%d\" transaction=\"%d\" flags=\"0\" version=\"2\" data_block_size=\"%d\" nr_data_blocks=\"%d\">\n",
		s.Time, s.TransactionID, s.DataBlockSize, s.NrDataBlocks)
	for _, d := range s.Devices {
		fmt.Fprintf(bw, "  <device dev_id=\"%d\" mapped_blocks=\"%d\" transaction=\"%d\" creation_time=\"%d\" snap_time=\"%d\">\n",
			d.ID, d.Details.MappedBlocks, d.Details.TransactionID, d.Details.CreationTime, d.Details.SnapshottedTime)
		ms := d.Mappings
		for i := 0; i < len(ms); {
			j := i + 1
			for j < len(ms) && ms[j].VBlock == ms[j-1].VBlock+1 && ms[j].Block == ms[j-1].Block+1 && ms[j].Time == ms[i].Time {
				j++
			}
			if j-i == 1 {
				fmt.Fprintf(bw, "    <single_mapping origin_block=\"%d\" data_block=\"%d\" time=\"%d\"/>\n", ms[i].VBlock, ms[i].Block, ms[i].Time)
			} else {
				fmt.Fprintf(bw, "    <range_mapping origin_begin=\"%d\" data_begin=\"%d\" length=\"%d\" time=\"%d\"/>\n",
					ms[i].VBlock, ms[i].Block, j-i, ms[i].Time)
			}
			i = j
		}
		bw.WriteString("  </device>\n")
	}
	bw.WriteString("</superblock>\n")
	return bw.Flush()
}
