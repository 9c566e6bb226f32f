package repair

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/transaction"
)

// Options tune Salvage. The three overrides are thin_repair's: each
// replaces what the input says (or what would be inferred).
type Options struct {
	// TransactionID, if not nil, is the salvaged pool's transaction id.
	TransactionID *uint64
	// DataBlockSize, if not nil, is the data block size in sectors. It is
	// needed only when the input has no superblock (or copy) that records
	// it.
	DataBlockSize *uint32
	// NrDataBlocks, if not nil, is the size of the data device in data
	// blocks.
	NrDataBlocks *uint64
	// Progress, if not nil, is called as the salvage goes (see
	// thin.Progress) with Done counting the metadata blocks read (the
	// newest trees' nodes, then every block if the device is scanned) and
	// Total 0: how much is read depends on the damage found.
	Progress func(thin.Progress)
}

// Errors of Salvage.
var (
	// ErrNoMetadata means the input holds nothing recognisable as dm-thin
	// metadata: no superblock and no readable mapping tree.
	ErrNoMetadata = errors.New("no dm-thin metadata found")
	// ErrNeedDataBlockSize means the data block size is recorded nowhere
	// readable; it must be given (Options.DataBlockSize).
	ErrNeedDataBlockSize = errors.New("the data block size is not recorded anywhere readable: give it (--data-block-size)")
)

// Salvaged is the result of Salvage: the report, and the salvaged content,
// which Write and WriteXML produce. It reads the input again when written;
// it is not safe for concurrent use.
type Salvaged struct {
	Report *Report
	s      *salvager
}

// Salvage reads the metadata in the first size bytes of ra, which may be
// damaged anywhere, and returns what can be recovered (docs/REPAIR.md).
// It never writes to ra. It fails only if nothing recognisable is found,
// or if a value that must be given is missing.
//
// Salvage stops with ctx's error once ctx is done.
func Salvage(ctx context.Context, ra io.ReaderAt, size int64, opts Options) (*Salvaged, error) {
	s := &salvager{ra: ra, opts: opts, rep: &Report{}}
	s.m = meter.New(ctx, opts.Progress, "walk", 0, 4096)
	defer s.m.Finish()
	s.n = uint64(max(size, 0)) / transaction.BlockSize
	s.r = transaction.NewReader(ra, size)
	s.r.SetCacheBlocks(64)
	s.rep.MetadataBlocks = s.n
	if err := s.run(); err != nil {
		return nil, err
	}
	if err := s.m.Err(); err != nil {
		return nil, err
	}
	return &Salvaged{Report: s.rep, s: s}, nil
}

// salvager holds the state of one salvage.
type salvager struct {
	m    *meter.Meter
	err  error // the context's, once done: the walks stop
	ra   io.ReaderAt
	r    *transaction.Reader
	n    uint64
	opts Options
	rep  *Report

	sb superblock.Superblock // the superblock the roots came from

	// The salvaged pool's fields.
	time      uint32
	tid       uint64
	dbs       uint32
	nrData    uint64
	version   uint32
	ext       bool
	blobSize  int
	indexB    int
	nextID    uint64
	detailsVS int

	details     map[uint64][]byte // details values of the newest details tree
	roots       map[uint64]uint64 // the newest top-level tree
	detailsHole []spanOf
	topHole     []spanOf

	devs       []*device
	live       *liveState
	holes      []*hole
	dataRefs   *refCounts
	dsm        *spacemap.Map
	sc         *scan
	snapLeaves map[uint64]uint64 // top-level leaves of the metadata snapshot -> its transaction
	versions   int
	rootEval   map[uint64]rootEval
	highest    uint64 // largest data block a usable leaf maps
	// orphans are trees under top-level keys taken for corrupted ones:
	// candidates for the devices whose details have no top-level entry.
	orphans []orphan
	// newestTop and newestDetails are the leaves of the newest top-level
	// and details trees.
	newestTop, newestDetails map[uint64]bool
	slotNr                   uint64 // nr_blocks of the data space map root
	// freeBufs are node buffers items is done with, for its next reads:
	// it reads every live node, and a buffer each was most of the
	// garbage a repair made.
	freeBufs [][]byte
}

func (s *salvager) note(format string, args ...any) {
	s.rep.Notes = append(s.rep.Notes, fmt.Sprintf(format, args...))
}

func (s *salvager) infer(field string, v uint64, from string) {
	s.rep.Inferred = append(s.rep.Inferred, Inference{Field: field, Value: v, From: from})
}

func (s *salvager) device(id uint64) *device {
	i, ok := slices.BinarySearchFunc(s.devs, id, func(d *device, id uint64) int {
		switch {
		case d.id < id:
			return -1
		case d.id > id:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return s.devs[i]
}

func (s *salvager) run() error {
	if s.n == 0 {
		return fmt.Errorf("%w: the input is empty", ErrNoMetadata)
	}
	if err := s.superblock(); err != nil {
		return err
	}
	s.readTopTrees()
	s.dataRefs = newRefCounts()
	if err := s.gatherDevices(); err != nil {
		return err
	}
	s.live = newLiveState(s.n)
	s.walkDevices()
	if s.err != nil {
		return s.err
	}
	s.settleGeometry()
	if !thin.ValidDataBlockSize(s.dbs) {
		return fmt.Errorf("%w (the superblock says %d)", ErrNeedDataBlockSize, s.dbs)
	}
	s.fixLiveLeaves()
	s.liveConflicts()
	if err := s.fillHoles(); err != nil {
		return err
	}
	s.finish()
	return nil
}

// superblock reads block 0 and sets the pool's fields from it.
func (s *salvager) superblock() error {
	sb, err := superblock.Read(s.r, superblock.Location, math.MaxUint32)
	if err != nil {
		return s.lostSuperblock(err)
	}
	s.sb = *sb
	s.rep.Superblock = SuperblockReport{State: "valid", MappingRoot: sb.DataMappingRoot, DetailsRoot: sb.DeviceDetailsRoot, From: "superblock"}
	if unknown := sb.IncompatFlags &^ superblock.IncompatBlobs; unknown != 0 {
		s.note("unknown incompatible feature bits %#x in the superblock ignored (the salvaged pool has none)", unknown)
	}
	s.fieldsFrom(sb)
	return nil
}

// fieldsFrom sets the pool's fields from superblock sb and the options.
func (s *salvager) fieldsFrom(sb *superblock.Superblock) {
	s.time, s.tid, s.dbs = sb.Time, sb.TransactionID, sb.DataBlockSize
	s.version = sb.Version
	if s.version != 1 && s.version != 2 {
		s.version = 2
	}
	if sb.Extended() {
		s.ext, s.blobSize, s.indexB, s.nextID = true, int(sb.BlobSize), int(sb.IndexBytes), sb.NextThinID
		if s.blobSize < 1 || s.blobSize > thin.MaxBlobSize {
			s.note("blob size %d in the superblock is impossible: the pool is read as stock", s.blobSize)
			s.ext, s.blobSize, s.indexB = false, 0, 0
		}
		s.indexB = min(s.indexB, s.blobSize)
	}
	s.detailsVS = thin.DetailsSize + s.blobSize
	s.slotNr = spacemap.DecodeRoot(sb.DataSpaceMapRoot[:]).NrBlocks
	s.nrData = s.slotNr
	if sb.HeldRoot != 0 {
		s.note("the metadata snapshot (block %d) is not carried over: the salvaged pool has none", sb.HeldRoot)
		s.snapshotLeaves(sb.HeldRoot)
	}
}

// snapshotLeaves records the top-level leaves of the metadata snapshot
// held at block b, so that mappings taken from it name its transaction.
func (s *salvager) snapshotLeaves(b uint64) {
	s.snapLeaves = make(map[uint64]uint64)
	snap, err := superblock.Read(s.r, b, math.MaxUint32)
	if err != nil {
		return
	}
	s.walkTree(snap.DataMappingRoot, thin.MappingValueSize, 0, math.MaxUint64, visitor{
		leaf: func(lb uint64, _ btree.Node, _ bool, _, _ uint64) { s.snapLeaves[lb] = snap.TransactionID },
	})
}

// readTopTrees reads the newest details tree and the top level of the
// mapping tree, tolerantly.
func (s *salvager) readTopTrees() {
	s.details = make(map[uint64][]byte)
	s.roots = make(map[uint64]uint64)
	s.newestTop, s.newestDetails = make(map[uint64]bool), make(map[uint64]bool)
	s.walkTree(s.sb.DeviceDetailsRoot, s.detailsVS, 0, math.MaxUint64, visitor{
		leaf: func(b uint64, n btree.Node, unsorted bool, _, _ uint64) {
			s.newestDetails[b] = true
			for i := range n.NrEntries() {
				s.details[n.Key(i)] = slices.Clone(n.Value(i))
			}
		},
		hole: func(lo, hi, b uint64, reason error) {
			s.detailsHole = append(s.detailsHole, spanOf{lo, hi})
			s.note("device details: node %d unusable (%s): details of devices %d..%d taken from older copies", b, reasonText(reason), lo, hi)
		},
	})
	s.walkTree(s.sb.DataMappingRoot, thin.MappingValueSize, 0, math.MaxUint64, visitor{
		leaf: func(b uint64, n btree.Node, unsorted bool, _, _ uint64) {
			s.newestTop[b] = true
			for i := range n.NrEntries() {
				s.roots[n.Key(i)] = n.Uint64Value(i)
			}
		},
		hole: func(lo, hi, b uint64, reason error) {
			s.topHole = append(s.topHole, spanOf{lo, hi})
			s.note("top-level mapping tree: node %d unusable (%s): trees of devices %d..%d taken from older copies", b, reasonText(reason), lo, hi)
		},
	})
}

func inSpans(ss []spanOf, k uint64) bool {
	for _, s := range ss {
		if s.lo <= k && k <= s.hi {
			return true
		}
	}
	return false
}

// gatherDevices decides the devices to salvage: every device of the
// newest details tree or top-level tree, with what is missing of it
// looked for in older copies; and devices in a damaged part of both trees
// that older copies know.
func (s *salvager) gatherDevices() error {
	ids := make(map[uint64]bool)
	for id := range s.roots {
		ids[id] = true
	}
	for id := range s.details {
		ids[id] = true
	}
	if len(s.topHole) > 0 || len(s.detailsHole) > 0 {
		sc, err := s.doScan()
		if err != nil {
			return err
		}
		for id := range sc.top {
			if inSpans(s.topHole, id) && (inSpans(s.detailsHole, id) || len(s.details) == 0) {
				ids[id] = true
			}
		}
	}
	if err := s.orphanKeys(ids); err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		d := &device{id: id, detailsFrom: "newest"}
		d.rep = &DeviceReport{ID: id}
		if v, ok := s.details[id]; ok {
			d.details = thin.DecodeDetails(v)
			if s.ext {
				d.blob = slices.Clone(v[thin.DetailsSize:])
			}
		} else if err := s.olderDetails(d); err != nil {
			return err
		}
		if root, ok := s.roots[id]; ok {
			d.root = root
		} else {
			// No newest tree: its whole tree is a hole that older copies
			// may fill.
			d.older = true
			reason := "no entry in the newest top-level mapping tree"
			if inSpans(s.topHole, id) {
				reason = "its entry in the top-level mapping tree is in a damaged node"
			}
			h := &hole{lo: 0, hi: math.MaxUint64, reason: errors.New(reason), devs: []*device{d}}
			s.holes = append(s.holes, h)
			d.items = []item{{kind: itemHole, hole: h}}
		}
		s.devs = append(s.devs, d)
	}
	return nil
}

// olderDetails takes a device's details from the newest older copy that
// holds them, or reconstructs them.
func (s *salvager) olderDetails(d *device) error {
	if _, err := s.doScan(); err != nil {
		return err
	}
	var best *detailsEntry
	var bd thin.Details
	es := s.detailsOf(s.detailsVS)[d.id]
	for i := range es {
		e := &es[i]
		if len(e.value) != s.detailsVS {
			continue
		}
		det := thin.DecodeDetails(e.value)
		if best == nil || det.TransactionID > bd.TransactionID ||
			det.TransactionID == bd.TransactionID && (det.CreationTime > bd.CreationTime ||
				det.CreationTime == bd.CreationTime && det.SnapshottedTime > bd.SnapshottedTime) {
			best, bd = e, det
		}
	}
	if best != nil {
		d.details = bd
		d.detailsFrom = fmt.Sprintf("from an older copy (details leaf %d)", best.leaf)
		if s.ext {
			d.blob = slices.Clone(best.value[thin.DetailsSize:])
		}
		return nil
	}
	// Nothing to go by: every mapping is treated as shared (snapshotted at
	// the pool's time), so the kernel copies rather than overwrites.
	d.details = thin.Details{TransactionID: s.tid, SnapshottedTime: s.time}
	d.detailsFrom = "reconstructed (no copy found)"
	if s.ext {
		d.blob = make([]byte, s.blobSize)
	}
	return nil
}

// settleGeometry fixes nr_data_blocks now that the trees have been read:
// the data space map's if it can be read, else what the mappings need.
func (s *salvager) settleGeometry() {
	s.openDataSM(s.sb.DataSpaceMapRoot[:])
	switch {
	case s.opts.NrDataBlocks != nil:
		s.nrData = *s.opts.NrDataBlocks
	case s.dsm != nil:
		s.nrData = s.dsm.NrBlocks()
	case s.highest >= s.slotNr:
		s.nrData = s.highest + 1
		s.infer("nr_data_blocks", s.nrData, "the largest data block mapped, plus one (the data space map is unreadable)")
	}
	if s.opts.TransactionID != nil {
		s.tid = *s.opts.TransactionID
	}
	if s.opts.DataBlockSize != nil {
		s.dbs = *s.opts.DataBlockSize
	}
}

// orphan is a tree under a top-level key that names no device.
type orphan struct{ key, root uint64 }

// orphanKeys resolves keys that one of the two newest trees has and the
// other lacks, when a flipped key is the likelier cause than a missing
// entry. A key is corrupted if it is beyond the kernel's id range (stock
// pools), or if it pairs with a key missing from the other tree and no
// older copy of either tree knows it while they know its partner. A
// corrupted top-level key's tree becomes a candidate for the devices
// with details but no tree (held to the ownership rule like any older
// copy); a corrupted details key is dropped, so the device with a tree
// but no details takes them from older copies or has them reconstructed.
// When nothing decides, both are kept as they are: no tree is given to a
// second device.
func (s *salvager) orphanKeys(ids map[uint64]bool) error {
	if len(s.detailsHole) > 0 || len(s.details) == 0 || len(s.topHole) > 0 {
		return nil
	}
	var topOnly, detOnly []uint64
	for id := range s.roots {
		if _, ok := s.details[id]; !ok {
			topOnly = append(topOnly, id)
		}
	}
	for id := range s.details {
		if _, ok := s.roots[id]; !ok {
			detOnly = append(detOnly, id)
		}
	}
	if len(topOnly) == 0 && len(detOnly) == 0 {
		return nil
	}
	slices.Sort(topOnly)
	slices.Sort(detOnly)
	sc, err := s.doScan()
	if err != nil {
		return err
	}
	known := func(id uint64) bool {
		for _, e := range sc.top[id] {
			if !s.newestTop[e.leaf] {
				return true
			}
		}
		for _, e := range s.detailsOf(s.detailsVS)[id] {
			if !s.newestDetails[e.leaf] {
				return true
			}
		}
		return false
	}
	outOfRange := func(id uint64) bool { return !s.ext && id > thin.MaxStockDeviceID }
	anyKnown := func(keys []uint64) bool { return slices.ContainsFunc(keys, known) }
	corrupt := func(id uint64, partners []uint64) bool {
		return outOfRange(id) || len(partners) > 0 && !known(id) && anyKnown(partners)
	}
	for _, id := range topOnly {
		if !corrupt(id, detOnly) {
			continue
		}
		delete(ids, id)
		s.orphans = append(s.orphans, orphan{id, s.roots[id]})
		delete(s.roots, id)
		s.note("top-level key %d names no device (no details, and no older copy knows it; devices %v have details but no tree): taken for a corrupted key, its tree a candidate for those devices", id, detOnly)
	}
	for _, id := range detOnly {
		if !corrupt(id, topOnly) {
			continue
		}
		delete(ids, id)
		delete(s.details, id)
		s.note("device details key %d names no device (no tree, and no older copy knows it; devices %v have trees but no details): taken for a corrupted key and dropped", id, topOnly)
	}
	return nil
}
