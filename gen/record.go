package gen

import (
	"bufio"
	"encoding/hex"
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
	// SetBlob: the blob of Dev was set to Blob (extended pools).
	SetBlob
)

var eventNames = []string{"create", "map", "snap", "unmap", "delete", "set-transaction", "commit", "reserve-metadata-snap", "set-blob"}

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
	// Blob is the blob a Create or Snap gave the new device in an
	// extended pool ("": a zero blob; stock pools have none), or the blob
	// of a SetBlob.
	Blob string
}

// blobText returns " blob HEX" for a blob, without its trailing zero
// bytes, or "" for none.
func blobText(b string) string {
	if b == "" {
		return ""
	}
	return " blob " + hex.EncodeToString(trimZeros([]byte(b)))
}

func trimZeros(b []byte) []byte {
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return b[:n]
}

// String formats the event on one line.
func (e Event) String() string {
	switch e.Kind {
	case Create:
		return fmt.Sprintf("create %d%s", e.Dev, blobText(e.Blob))
	case Delete:
		return fmt.Sprintf("%v %d", e.Kind, e.Dev)
	case SetBlob:
		return fmt.Sprintf("set-blob %d%s", e.Dev, blobText(e.Blob))
	case Map:
		return fmt.Sprintf("map %d [%d, %d) -> %d time %d", e.Dev, e.VBlock, e.VBlock+e.Len, e.Block, e.Time)
	case Snap:
		return fmt.Sprintf("snap %d of %d time %d%s", e.Dev, e.Origin, e.Time, blobText(e.Blob))
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
	// Blob is the device's blob in an extended pool (nil in a stock one).
	Blob []byte
}

// State is the expected contents of a pool (or of its metadata snapshot).
type State struct {
	Time          uint32
	TransactionID uint64
	DataBlockSize uint32
	NrDataBlocks  uint64
	Devices       []Device // by id
	// Extended says the pool is of the extended format, with blobs of
	// BlobSize bytes, an index of their first IndexBytes bytes (0: none)
	// and NextThinID the next id the pool hands out.
	Extended   bool
	BlobSize   int
	IndexBytes int
	NextThinID uint64
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
	next uint64 // extended pools: the next thin id
	devs map[uint64]*modelDev
}

type modelDev struct {
	det  thin.Details
	m    map[uint64]uint64 // vblock -> data block << 32 | time
	blob []byte
}

func (md *model) state(r *Record, nrData uint64) *State {
	s := &State{Time: md.time, TransactionID: md.tid, DataBlockSize: r.DataBlockSize, NrDataBlocks: nrData}
	if r.Spec.Variant == thin.Extended {
		s.Extended, s.BlobSize, s.IndexBytes, s.NextThinID = true, r.Spec.BlobSize, r.Spec.IndexBytes, md.next
	}
	for _, id := range slices.Sorted(maps.Keys(md.devs)) {
		d := md.devs[id]
		det := d.det
		det.MappedBlocks = uint64(len(d.m))
		dev := Device{ID: id, Details: det, Mappings: make([]thin.Mapping, 0, len(d.m)), Blob: slices.Clone(d.blob)}
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
// mappings and stamps the origin's snapshotted time. In an extended pool
// (docs/EXTENSION.md) a new device has the blob it was created with (or
// zeros), the next id is one above the largest id ever created (a new
// pool starts at 0), and the metadata snapshot keeps the next id of its
// commit.
func (r *Record) replay() (final, snap *State, err error) {
	md := &model{devs: make(map[uint64]*modelDev)}
	ext := r.Spec.Variant == thin.Extended
	newBlob := func(e Event) ([]byte, error) {
		if !ext {
			if e.Blob != "" {
				return nil, fmt.Errorf("gen: %v: a blob in a stock pool", e)
			}
			return nil, nil
		}
		if e.Blob != "" && len(e.Blob) != r.Spec.BlobSize {
			return nil, fmt.Errorf("gen: %v: blob of %d bytes, the pool's are %d", e, len(e.Blob), r.Spec.BlobSize)
		}
		b := make([]byte, r.Spec.BlobSize)
		copy(b, e.Blob)
		return b, nil
	}
	created := func(id uint64) {
		if ext {
			md.next = max(md.next, id+1)
		}
	}
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
			if d != nil {
				return nil, nil, fmt.Errorf("gen: event %d (%v): device %d exists", i, e, e.Dev)
			}
			b, err := newBlob(e)
			if err != nil {
				return nil, nil, err
			}
			md.devs[e.Dev] = &modelDev{det: thin.Details{TransactionID: md.tid, CreationTime: md.time, SnapshottedTime: md.time},
				m: make(map[uint64]uint64), blob: b}
			created(e.Dev)
		case Snap:
			o := md.devs[e.Origin]
			if o == nil {
				return nil, nil, fmt.Errorf("gen: event %d (%v): no origin", i, e)
			}
			if d != nil {
				return nil, nil, fmt.Errorf("gen: event %d (%v): device %d exists", i, e, e.Dev)
			}
			b, err := newBlob(e)
			if err != nil {
				return nil, nil, err
			}
			md.time++
			if md.time != e.Time {
				return nil, nil, fmt.Errorf("gen: event %d (%v): time %d expected", i, e, md.time)
			}
			o.det.SnapshottedTime = md.time
			md.devs[e.Dev] = &modelDev{det: thin.Details{TransactionID: md.tid, CreationTime: md.time, SnapshottedTime: md.time},
				m: maps.Clone(o.m), blob: b}
			created(e.Dev)
		case SetBlob:
			if err := needDev(); err != nil {
				return nil, nil, err
			}
			if !ext || len(e.Blob) != r.Spec.BlobSize {
				return nil, nil, fmt.Errorf("gen: event %d (%v): not a blob of the pool's %d bytes", i, e, r.Spec.BlobSize)
			}
			d.blob = []byte(e.Blob)
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
// range_mapping. An extended pool is written in the extended form of
// "thinmeta dump" (docs/EXTENSION.md): the superblock adds blob_size,
// index_bytes and next_thin_id, a device's dev_id is in full and its blob
// attribute is its blob in lowercase hex without trailing zero bytes.
func (s *State) WriteXML(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "<superblock uuid=\"\" time=\"%d\" transaction=\"%d\" flags=\"0\" version=\"2\" data_block_size=\"%d\" nr_data_blocks=\"%d\"",
		s.Time, s.TransactionID, s.DataBlockSize, s.NrDataBlocks)
	if s.Extended {
		fmt.Fprintf(bw, " blob_size=\"%d\" index_bytes=\"%d\" next_thin_id=\"%d\"", s.BlobSize, s.IndexBytes, s.NextThinID)
	}
	bw.WriteString(">\n")
	for _, d := range s.Devices {
		id := d.ID
		if !s.Extended {
			id = uint64(uint32(id)) // thin_dump 0.9.0 prints 32 bits
		}
		fmt.Fprintf(bw, "  <device dev_id=\"%d\" mapped_blocks=\"%d\" transaction=\"%d\" creation_time=\"%d\" snap_time=\"%d\"",
			id, d.Details.MappedBlocks, d.Details.TransactionID, d.Details.CreationTime, d.Details.SnapshottedTime)
		if s.Extended {
			fmt.Fprintf(bw, " blob=\"%s\"", hex.EncodeToString(trimZeros(d.Blob)))
		}
		bw.WriteString(">\n")
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
