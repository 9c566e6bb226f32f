package restore

import (
	"errors"
	"fmt"
	"math"

	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// Header is what a pool built by a Writer records in its superblock.
type Header struct {
	Time          uint32 // pool time
	TransactionID uint64 // userspace transaction id
	Flags         uint32 // superblock flags
	// Version is the superblock version; 0 means 2.
	Version       uint32
	DataBlockSize uint32 // in 512-byte sectors
	NrDataBlocks  uint64 // size of the data device in data blocks
	// MetadataBlocks, if not 0, limits the metadata to the first
	// MetadataBlocks blocks of the device.
	MetadataBlocks uint64
	// Extended, if not nil, makes the pool of the extended format.
	Extended *ExtendedHeader
}

// ExtendedHeader holds the format fields of an extended pool.
type ExtendedHeader struct {
	BlobSize   int // bytes of blob per thin
	IndexBytes int // leading blob bytes indexed (0: no index)
	// NextThinID is the next id the pool hands out; 0 means one above the
	// largest id written.
	NextThinID uint64
}

// A Writer builds a pool from a stream of calls instead of XML: the same
// builder as Restore, the same checks, the same result as restoring the
// equivalent dump. Defs (shared runs of mappings) come first, then devices
// in any order; within a def or a device, mappings are given in strictly
// increasing virtual block order, and a device may refer to a def in the
// middle of its own mappings.
//
// Nothing is written until NewWriter succeeds; then block 0 is zeroed
// first and the superblock is written only by Commit, so a Writer that
// fails or is abandoned leaves no pool on the device. A Writer is not safe
// for concurrent use.
type Writer struct {
	bd *builder

	state    int // wsTop, wsDevice, wsDef
	haveLast bool
	lastKey  uint64
	first    uint64
	count    uint64
	defs     []defInfo
	devices  map[uint64]bool
	devStart bool // a device has started: no more defs
	err      error
}

const (
	wsTop = iota
	wsDevice
	wsDef
	wsDone
)

// ErrWriter means a Writer was used out of order (a mapping outside a
// device or def, a def after the first device, Commit inside a device).
var ErrWriter = errors.New("writer call out of order")

// NewWriter starts building a pool on dev, a metadata device of size
// bytes, with the superblock fields of h.
func NewWriter(dev transaction.Device, size int64, h Header) (*Writer, error) {
	if !thin.ValidDataBlockSize(h.DataBlockSize) {
		return nil, fmt.Errorf("invalid data block size %d: %w", h.DataBlockSize, thin.ErrDataBlockSize)
	}
	hdr := header{time: h.Time, transaction: h.TransactionID, flags: h.Flags,
		version: h.Version, dataBlockSize: h.DataBlockSize, nrDataBlocks: h.NrDataBlocks}
	if hdr.version == 0 {
		hdr.version = 2
	}
	if x := h.Extended; x != nil {
		if x.BlobSize < 1 || x.BlobSize > thin.MaxBlobSize {
			return nil, fmt.Errorf("blob size %d: blobs have 1 to %d bytes", x.BlobSize, thin.MaxBlobSize)
		}
		if x.IndexBytes < 0 || x.IndexBytes > x.BlobSize {
			return nil, fmt.Errorf("index bytes %d: 0 to the blob size %d", x.IndexBytes, x.BlobSize)
		}
		hdr.ext = &extHeader{blobSize: x.BlobSize, indexBytes: x.IndexBytes, nextID: x.NextThinID, haveNextID: x.NextThinID != 0}
	}
	nr := uint64(max(size, 0)) / transaction.BlockSize
	if h.MetadataBlocks != 0 {
		nr = min(nr, h.MetadataBlocks)
	}
	nr = min(nr, spacemap.MaxMetadataBlocks)
	if need := spacemap.NrBitmaps(h.NrDataBlocks); need >= nr {
		return nil, fmt.Errorf("a data device of %d blocks needs %d metadata blocks for its space map; the metadata device has %d: %w",
			h.NrDataBlocks, need, nr, spacemap.ErrNoMetadataSpace)
	}
	b, err := thin.NewBuild(dev, size, h.MetadataBlocks)
	if err != nil {
		return nil, err
	}
	return &Writer{bd: newBuilder(b, dev, hdr), devices: make(map[uint64]bool)}, nil
}

// fail records the first error; every later call returns it.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// step carries out o; d holds the details of an opDevice.
func (w *Writer) step(o op, d *devOp) error {
	if w.err != nil {
		return w.err
	}
	var devs []devOp
	if d != nil {
		devs = []devOp{*d}
	}
	if err := w.bd.step(&o, devs); err != nil {
		if errors.Is(err, spacemap.ErrNoMetadataSpace) {
			err = fmt.Errorf("the metadata device is too small (%d blocks): %w", w.bd.msm.NrBlocks(), err)
		}
		return w.fail(err)
	}
	return nil
}

func (w *Writer) beginTree() { w.haveLast, w.lastKey, w.first, w.count = false, 0, 0, 0 }

// BeginDef starts a def: a run of mappings whose leaves are written once
// and shared by every device that refers to it. It returns the def's
// number for Ref. Defs must all come before the first device.
func (w *Writer) BeginDef() (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.state != wsTop || w.devStart {
		return 0, w.fail(fmt.Errorf("%w: a def inside a tree or after a device", ErrWriter))
	}
	w.defs = append(w.defs, defInfo{})
	w.beginTree()
	w.state = wsDef
	return len(w.defs) - 1, w.step(op{a: uint64(len(w.defs) - 1), kt: uint32(opDef) << 24}, nil)
}

// EndDef ends the def begun last.
func (w *Writer) EndDef() error {
	if w.err == nil && w.state != wsDef {
		return w.fail(fmt.Errorf("%w: EndDef outside a def", ErrWriter))
	}
	d := &w.defs[len(w.defs)-1]
	d.first, d.last, d.count = w.first, w.lastKey, w.count
	w.state = wsTop
	return w.step(op{kt: uint32(opEndDef) << 24}, nil)
}

// BeginDevice starts thin device id with the given details (its
// mapped_blocks is ignored: it is counted from the mappings) and, in an
// extended pool, its blob (shorter blobs are padded with zeros).
func (w *Writer) BeginDevice(id uint64, d thin.Details, blob []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.state != wsTop {
		return w.fail(fmt.Errorf("%w: a device inside a tree", ErrWriter))
	}
	if w.devices[id] {
		return w.fail(fmt.Errorf("device %d given twice", id))
	}
	var b []byte
	if x := w.bd.hdr.ext; x != nil {
		if id == math.MaxUint64 {
			return w.fail(fmt.Errorf("%w: device %d", thin.ErrIDRange, id))
		}
		if len(blob) > x.blobSize {
			return w.fail(fmt.Errorf("%w: a blob of %d bytes is longer than the pool's blobs (%d bytes)", thin.ErrBlobSize, len(blob), x.blobSize))
		}
		b = make([]byte, x.blobSize)
		copy(b, blob)
	} else if id > math.MaxUint32 {
		return w.fail(fmt.Errorf("%w: device %d of a stock pool", thin.ErrIDRange, id))
	}
	w.devices[id] = true
	w.devStart = true
	w.beginTree()
	w.state = wsDevice
	return w.step(op{kt: uint32(opDevice) << 24}, &devOp{id: id, transaction: d.TransactionID, ctime: d.CreationTime, stime: d.SnapshottedTime, blob: b})
}

// EndDevice ends the device begun last.
func (w *Writer) EndDevice() error {
	if w.err == nil && w.state != wsDevice {
		return w.fail(fmt.Errorf("%w: EndDevice outside a device", ErrWriter))
	}
	w.state = wsTop
	return w.step(op{kt: uint32(opEndDevice) << 24}, nil)
}

// Map maps virtual blocks vblock..vblock+n-1 of the current device or def
// to data blocks block..block+n-1 at time t. Virtual blocks must be above
// every one given before in the same tree.
func (w *Writer) Map(vblock, block, n uint64, t uint32) error {
	if w.err != nil {
		return w.err
	}
	if w.state != wsDevice && w.state != wsDef {
		return w.fail(fmt.Errorf("%w: a mapping outside a device or def", ErrWriter))
	}
	if n == 0 {
		return nil
	}
	switch nr := w.bd.hdr.nrDataBlocks; {
	case t > thin.MaxTime:
		return w.fail(fmt.Errorf("time %d does not fit the 24 bits of a mapping", t))
	case vblock > math.MaxUint64-(n-1):
		return w.fail(fmt.Errorf("virtual blocks %d+%d run past 2^64", vblock, n))
	case w.haveLast && vblock <= w.lastKey:
		return w.fail(fmt.Errorf("virtual block %d is not above the previous mapping's %d", vblock, w.lastKey))
	case block >= nr || n > nr-block:
		return w.fail(fmt.Errorf("mapping beyond the end of the data device (%d blocks from data block %d, nr_data_blocks %d)", n, block, nr))
	case block+(n-1) > thin.MaxDataBlock:
		return w.fail(fmt.Errorf("data block %d beyond the format's limit of %d", block+(n-1), uint64(thin.MaxDataBlock)))
	}
	w.note(vblock, vblock+(n-1), n)
	for n > 0 {
		k := min(n, maxOpLen)
		if err := w.step(op{a: vblock, b: block, n: uint32(k), kt: t}, nil); err != nil {
			return err
		}
		vblock += k
		block += k
		n -= k
	}
	return nil
}

func (w *Writer) note(first, last, count uint64) {
	if !w.haveLast {
		w.first = first
	}
	w.haveLast, w.lastKey = true, last
	w.count += count
}

// Ref adds the mappings of def number def (from BeginDef) to the current
// device, sharing its leaves where they are full enough to stand alone.
func (w *Writer) Ref(def int) error {
	if w.err != nil {
		return w.err
	}
	if w.state != wsDevice {
		return w.fail(fmt.Errorf("%w: a ref outside a device", ErrWriter))
	}
	if def < 0 || def >= len(w.defs) {
		return w.fail(fmt.Errorf("%w: no def %d", ErrWriter, def))
	}
	d := &w.defs[def]
	if d.count == 0 {
		return nil
	}
	if w.haveLast && d.first <= w.lastKey {
		return w.fail(fmt.Errorf("def %d starts at virtual block %d, not above the previous mapping's %d", def, d.first, w.lastKey))
	}
	w.note(d.first, d.last, d.count)
	return w.step(op{a: uint64(def), kt: uint32(opRef) << 24}, nil)
}

// Commit builds the device-details and top-level trees and the space
// maps, and commits the pool: every block is written and flushed, then
// the superblock. The Writer is done afterwards.
func (w *Writer) Commit() (Stats, error) {
	if w.err != nil {
		return Stats{}, w.err
	}
	if w.state != wsTop {
		return Stats{}, w.fail(fmt.Errorf("%w: Commit inside a tree", ErrWriter))
	}
	w.state = wsDone
	defer w.bd.release()
	if err := w.bd.finish(nil); err != nil {
		if errors.Is(err, spacemap.ErrNoMetadataSpace) {
			err = fmt.Errorf("the metadata device is too small (%d blocks): %w", w.bd.msm.NrBlocks(), err)
		}
		return Stats{}, w.fail(err)
	}
	return w.bd.stats, nil
}
