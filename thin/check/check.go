// Package check verifies the consistency of a dm-thin pool's metadata, as
// thin_check does: every B-tree node, the device details against the mapping
// tree, each device's mapped_blocks, and the reference counts recorded by the
// data and metadata space maps against the references that actually exist.
//
// Findings are streamed to a callback, in batches, each once the
// superblock shows the metadata unchanged (a check of a pool that another
// writer changes underneath it ends with thin.ErrStale, reporting nothing
// of what it read after the change); the check never stops at the first
// one. Damaged nodes are reported with their block number and the subtree
// below them is skipped. Every block is read at most once (but the metadata
// space map's index and bitmaps, also read first to learn which nodes are
// shared, and on a damaged pool a leaf reached again). The check is
// read-only.
//
// Its verdicts equal thin_check 0.9.0's, except that it is stricter (never
// more lenient) where 0.9.0 does not look: it compares each device's
// mapped_blocks with its tree (ErrMappedBlocks), looks for mappings beyond
// the data device (ErrDataBlockRange), compares the details tree with the
// mapping tree (thin.ErrDetailsMismatch), compares the data space map's
// counts and checks its index, checks the superblock's magic, location and
// incompat_flags, checks a child's keys against its parent's next key
// (ErrNextKey), checks a shared node against every parent and detects
// cycles (ErrReachedAgain, ErrCycle), refuses a node whose flags word has
// bits besides the internal or leaf bit (btree.ErrNodeFlags; 0.9.0 ignores
// them, 1.1.0 refuses such leaves only), and treats malformed nodes of the
// space maps' trees and of the metadata snapshot as fatal where 0.9.0's
// counting pass only reports the blocks they hold as leaked. With
// IgnoreNonFatal it still rejects a node with more entries than room,
// which 0.9.0 then stops checking. TestCorruptVersusThinCheck names each
// of these classes and holds the check to them.
package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/blobindex"
	"github.com/thinmeta/thinmeta/internal/offheap"
	"github.com/thinmeta/thinmeta/internal/refcount"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/transaction"
)

// Options select how much to check; they mirror thin_check's options.
type Options struct {
	// MetadataSnap checks the metadata snapshot (held root) instead of the
	// live metadata. Space maps are not checked then: the snapshot has none.
	MetadataSnap bool
	// SuperblockOnly checks only the superblock.
	SuperblockOnly bool
	// SkipMappings checks the superblock, the device-details tree and the
	// top level of the mapping tree only.
	SkipMappings bool
	// IgnoreNonFatal makes non-fatal findings (leaks, under-populated
	// nodes) not fail the check. Under-populated nodes are then not
	// reported at all, as with thin_check.
	IgnoreNonFatal bool
	// MappingRoot and DetailsRoot, when not zero, replace the live
	// superblock's roots of the mapping tree and of the device-details
	// tree (thin_check's --override-mapping-root and
	// --override-details-root): to see whether a tree found elsewhere (an
	// older root a repair scan turned up) is sound. The space maps are
	// compared with the references of the trees actually walked. Block 0
	// is the superblock, never a root, so zero means no override. They do
	// not apply to a metadata-snapshot check.
	MappingRoot, DetailsRoot uint64
	// Progress, if not nil, is called as the check goes (see
	// thin.Progress) with Done counting the metadata blocks read and Total
	// the blocks the metadata space map has allocated (a damaged pool can
	// make the last report jump).
	Progress func(thin.Progress)

	// keepAllKeys keeps every node's keys, whatever the metadata space
	// map says is shared (tests compare the two; shared.go).
	keepAllKeys bool
}

// Summary is the outcome of a check.
type Summary struct {
	// TransactionID is the superblock's transaction id.
	TransactionID uint64
	// MetadataFreeBlocks is nr_blocks − nr_allocated of the metadata space
	// map root (0 if the superblock could not be read).
	MetadataFreeBlocks uint64
	// Fatal and NonFatal count the findings of each severity.
	Fatal, NonFatal int
	// Devices and Mappings count what was examined.
	Devices  int
	Mappings uint64
	// SpaceMapsChecked is false when the reference counts were not
	// compared (options, a metadata-snapshot check, or earlier fatal
	// damage that makes the expected counts unknowable).
	SpaceMapsChecked bool
	// LeakedMetadata and LeakedData count blocks whose recorded count
	// exceeds their references.
	LeakedMetadata, LeakedData uint64
}

// OK reports whether the check passed: no fatal findings, and no non-fatal
// ones unless they are ignored.
func (s Summary) OK(ignoreNonFatal bool) bool {
	return s.Fatal == 0 && (ignoreNonFatal || s.NonFatal == 0)
}

// Device checks the metadata in the first size bytes of ra. Unlike Pool it
// reports a damaged superblock as a finding rather than failing to open.
// The error is as Pool's.
func Device(ctx context.Context, ra io.ReaderAt, size int64, opts Options, report func(Finding)) (Summary, error) {
	if err := ctx.Err(); err != nil {
		return Summary{}, err
	}
	c := &checker{opts: opts, report: report}
	p, err := thin.NewPool(ra, size)
	if err != nil {
		c.fatalf("superblock", nil, err)
		c.flush()
		return c.sum, nil
	}
	return c.run(ctx, p)
}

// Pool checks an opened pool. If p is a metadata-snapshot view, or
// opts.MetadataSnap is set, the metadata snapshot is checked.
//
// What the check finds is reported through report and counted in the
// Summary, not returned as an error: the error is non-nil only when ctx
// is done before the check is (ctx.Err(), within a few milliseconds of
// the cancellation), or when the metadata changed while it was checked
// (a writer that ignored the locks; see thin.Pool.Stale): then it wraps
// thin.ErrStale, and no finding made after the change is reported (what
// was read may be of two states). Either way the Summary counts the
// findings reported, and nothing is reported after. Findings are reported
// in batches, each once the superblock has been read again and found
// unchanged.
func Pool(ctx context.Context, p *thin.Pool, opts Options, report func(Finding)) (Summary, error) {
	c := &checker{opts: opts, report: report}
	return c.run(ctx, p)
}

// readAheadBlocks bounds the read-ahead window of the tree walks (256
// KiB). The walks plan their reads (btree.Walker.Plan): each internal
// node's children are read in runs of planned blocks, so the window holds
// the tree's nodes and hardly anything else, and at 256 KiB it stays in the
// core's cache until its leaves have been checksummed and checked.
const readAheadBlocks = 64

type checker struct {
	opts   Options
	report func(Finding)
	sum    Summary
	meter  *meter.Meter
	err    error // the context's error, once the check is abandoned

	p *thin.Pool
	r *transaction.Reader
	// pool is the view whose staleness flush checks: the pool asked
	// about, then the view walked (p: it, or its metadata snapshot, which
	// is stale only once no longer held); staleErr is set once it is.
	pool     *thin.Pool
	staleErr error
	pending  []Finding              // not yet reported (emit)
	ra       *transaction.ReadAhead // for the tree walks: trees are mostly laid out in order
	// planner is c.ra as the walks read through it (walk.go).
	planner planner
	// devBlocks is the size of the device; nrMeta, the blocks a structure
	// may use: those the metadata space map tracks (and the device holds).
	devBlocks, nrMeta uint64

	blocks blockTable // per metadata block reached: kind, keys, walk state
	// shared marks the blocks the metadata space map counts twice or
	// more (nil: unknown), and rereadBuf is rereadKeys' buffer
	// (shared.go).
	shared    []uint64
	rereadBuf []byte
	meta      *refcount.Counts // references found to each metadata block
	data      *refcount.Counts // references found to each data block
	nrData    uint64
	bufs      [][]byte    // block buffers of the space-map checks
	walks     []*treeWalk // idle tree walks, for reuse
	bitmapBuf []byte

	details  map[uint64]thin.Details
	roots    []thin.DeviceRoot
	blobKeys []idHash // extended pools: thins with an indexed key, in id order

	// batches holds the idle value batches of the data counter, of
	// which nrBatches were made.
	batches   chan *valueBatch
	nrBatches int

	// countsFatal counts the fatal findings that leave every reference
	// known (a wrong mapped_blocks): the space maps are still compared.
	countsFatal int

	// dataRange counts, per device, mappings to data blocks beyond the
	// data device, and the first such block.
	dataRange map[uint64][2]uint64
}

// tick counts one metadata block read; false means the check is
// abandoned (c.err is set).
func (c *checker) tick() bool {
	if c.err != nil {
		return false
	}
	if err := c.meter.Add(1); err != nil {
		c.err = err
		return false
	}
	return true
}

// emit counts a finding and queues it for the report. It is reported once
// the pool is known not to have changed since it was found: findings are
// handed to the callback in batches of maxPending, each after a check of
// the superblock (thin.Pool.Stale).
func (c *checker) emit(f Finding) {
	if c.err != nil {
		return // a walk cut short finds what is not there
	}
	if f.Severity == Fatal {
		c.sum.Fatal++
	} else {
		c.sum.NonFatal++
	}
	c.pending = append(c.pending, f)
	if len(c.pending) >= maxPending {
		c.flush()
	}
}

// maxPending is how many findings wait for a check of the superblock
// before they are reported.
const maxPending = 256

// flush reports the pending findings, unless the metadata has changed
// since the check began: then it drops them, uncounts them, and abandons
// the check with the error (wrapping thin.ErrStale).
func (c *checker) flush() {
	if len(c.pending) == 0 {
		return
	}
	if c.stale() {
		for _, f := range c.pending {
			if f.Severity == Fatal {
				c.sum.Fatal--
			} else {
				c.sum.NonFatal--
			}
		}
		c.pending = c.pending[:0]
		return
	}
	for _, f := range c.pending {
		if c.report != nil {
			c.report(f)
		}
	}
	c.pending = c.pending[:0]
}

// stale reports whether the metadata the check reads has changed since it
// began (a writer that ignored the locks); it sets c.err then, so that the
// check stops.
func (c *checker) stale() bool {
	if c.pool == nil {
		return false
	}
	err := c.pool.Stale()
	if !errors.Is(err, thin.ErrStale) {
		return false
	}
	c.staleErr = err
	if c.err == nil {
		c.err = err
	}
	return true
}

func (c *checker) fatalf(area string, dev *uint64, err error) {
	f := Finding{Severity: Fatal, Area: area, Err: err}
	if dev != nil {
		f.Device, f.HasDevice = *dev, true
	}
	c.emit(f)
}

func (c *checker) nonFatalf(area string, dev *uint64, err error) {
	f := Finding{Severity: NonFatal, Area: area, Err: err}
	if dev != nil {
		f.Device, f.HasDevice = *dev, true
	}
	c.emit(f)
}

func (c *checker) run(ctx context.Context, p *thin.Pool) (Summary, error) {
	live := p.LiveSuperblock()
	c.sum.TransactionID = live.TransactionID
	mroot := spacemap.DecodeRoot(live.MetadataSpaceMapRoot[:])
	if mroot.NrBlocks >= mroot.NrAllocated {
		c.sum.MetadataFreeBlocks = mroot.NrBlocks - mroot.NrAllocated
	}
	c.meter = meter.New(ctx, c.opts.Progress, "walk", mroot.NrAllocated, 0)
	if err := c.meter.Err(); err != nil {
		return c.sum, err
	}
	c.pool = p
	sum := c.check(p, live, mroot)
	c.releaseCounts()
	c.blocks.release()
	offheap.Free(c.shared)
	c.shared = nil
	// The last findings, or, if the pool has changed, none: a final check
	// even without any, since what was read may be of two states.
	if len(c.pending) == 0 {
		c.stale()
	}
	c.flush()
	sum = c.sum
	if c.staleErr != nil {
		return sum, c.staleErr
	}
	if c.err != nil {
		return sum, c.err
	}
	c.meter.Finish()
	return sum, nil
}

func (c *checker) check(p *thin.Pool, live *superblock.Superblock, mroot spacemap.Root) Summary {
	view := p
	if c.opts.MetadataSnap && !p.IsSnapshot() {
		s, err := p.MetadataSnapshot()
		if err != nil {
			c.fatalf("metadata snapshot", nil, err)
			return c.sum
		}
		view = s
	}
	// A metadata snapshot is stale only if it is no longer held: the
	// live superblock moves on at every commit.
	c.pool = view
	if c.opts.SuperblockOnly {
		return c.sum
	}
	c.p, c.r = view, view.Reader()
	c.ra = transaction.NewReadAhead(c.r, readAheadBlocks)
	c.planner = planner{ReadAhead: c.ra, c: c}
	// The kernel allocates metadata blocks only within the metadata space
	// map, which is what sizes the check's memory: a device larger than
	// the pool (a sparse file, a grown device) costs nothing more, and a
	// structure that uses a block beyond the space map is reported, not
	// walked. What is allocated per block follows the blocks reached.
	c.devBlocks = c.r.NrBlocks()
	c.nrMeta = min(c.devBlocks, mroot.NrBlocks, spacemap.MaxMetadataBlocks)
	c.blocks = newBlockTable(c.nrMeta)
	if !c.opts.keepAllKeys {
		c.readShared(live)
	}
	c.meta = refcount.New(c.nrMeta)
	c.dataRange = make(map[uint64][2]uint64)
	// A snapshot's space-map slots are zero: the data device size is the
	// live one's.
	c.nrData = spacemap.DecodeRoot(live.DataSpaceMapRoot[:]).NrBlocks

	sb := view.Superblock()
	if !view.IsSnapshot() && (c.opts.MappingRoot != 0 || c.opts.DetailsRoot != 0) {
		o := *sb
		if c.opts.MappingRoot != 0 {
			o.DataMappingRoot = c.opts.MappingRoot
		}
		if c.opts.DetailsRoot != 0 {
			o.DeviceDetailsRoot = c.opts.DetailsRoot
		}
		sb = &o
	}
	c.details, c.roots = c.topLevel(sb, false)
	c.sum.Devices = len(c.details)
	if sb.Extended() && !view.IsSnapshot() {
		c.checkExtended(sb)
	}
	if c.opts.SkipMappings || c.err != nil {
		return c.sum
	}
	if !view.IsSnapshot() {
		// Data references are counted only to be compared with the data
		// space map. Every bitmap is a metadata block, which bounds the
		// data device size before anything is allocated for it.
		if nb := spacemap.NrBitmaps(c.nrData); nb > c.nrMeta {
			c.fatalf("data space map", nil, fmt.Errorf("%w: %d data blocks need %d bitmaps, more than the %d blocks of the metadata space map",
				spacemap.ErrIndex, c.nrData, nb, c.nrMeta))
		} else {
			c.data = refcount.New(c.nrData)
		}
	}
	c.bottomLevel(c.details, c.roots, false)
	c.compareDetails(c.details, c.roots)

	if view.IsSnapshot() || c.err != nil {
		return c.sum
	}
	// Everything the metadata snapshot references is in use too.
	if live.HeldRoot != 0 {
		c.countSnapshot(live.HeldRoot)
	}
	if c.sum.Fatal > c.countsFatal || c.err != nil {
		return c.sum
	}
	c.meter.Phase("space maps")
	c.checkSpaceMaps(live)
	return c.sum
}

// topLevel walks the details tree and the top level of the mapping tree of
// the superblock sb. Block 0 (or the snapshot copy) itself is counted by the
// caller for snapshots.
func (c *checker) topLevel(sb *superblock.Superblock, snapshot bool) (map[uint64]thin.Details, []thin.DeviceRoot) {
	if !snapshot {
		c.countMeta(sb.Blocknr, kindSuperblock, "superblock")
	}
	details := make(map[uint64]thin.Details)
	area := "device details"
	if snapshot {
		area = "metadata snapshot device details"
	}
	indexed := !snapshot && sb.Extended() && sb.IndexBytes > 0 && sb.IndexBytes <= sb.BlobSize
	c.walk(sb.DeviceDetailsRoot, &walkCtx{
		kind: kindDetails, area: area, valueSize: thin.DetailsSize + int(sb.BlobSize),
		leaf: func(_ uint64, n btree.Node) {
			for i := range n.NrEntries() {
				v := n.Value(i)
				details[n.Key(i)] = thin.DecodeDetails(v)
				if indexed {
					if h, ok := blobindex.Hash(v[thin.DetailsSize : thin.DetailsSize+int(sb.IndexBytes)]); ok {
						c.blobKeys = append(c.blobKeys, idHash{n.Key(i), h})
					}
				}
			}
		},
	})
	var roots []thin.DeviceRoot
	area = "mapping tree"
	if snapshot {
		area = "metadata snapshot mapping tree"
	}
	c.walk(sb.DataMappingRoot, &walkCtx{
		kind: kindTop, area: area, valueSize: thin.MappingValueSize,
		leaf: func(_ uint64, n btree.Node) {
			for i := range n.NrEntries() {
				roots = append(roots, thin.DeviceRoot{ID: n.Key(i), Root: n.Uint64Value(i)})
			}
		},
	})
	return details, roots
}

// bottomLevel walks every device's mapping tree, counting mappings and data
// block references, and compares each count with the device's details.
func (c *checker) bottomLevel(details map[uint64]thin.Details, roots []thin.DeviceRoot, snapshot bool) {
	area := "mapping tree"
	if snapshot {
		area = "metadata snapshot mapping tree"
	}
	dc := c.startDataCount()
	for _, dr := range roots {
		dev := dr.ID
		ctx := &walkCtx{
			kind: kindBottom, area: area, dev: &dev, valueSize: thin.MappingValueSize,
			leaf: func(_ uint64, n btree.Node) { dc.add(dev, n.ValueBytes()) },
		}
		n, ok := c.walk(dr.Root, ctx)
		if !ok {
			continue
		}
		c.sum.Mappings += n
		if d, found := details[dev]; found && d.MappedBlocks != n {
			c.fatalf(area, &dev, &MappedBlocksError{Recorded: d.MappedBlocks, Found: n})
			if !snapshot {
				c.countsFatal++
			}
		}
	}
	dc.finish()
	for dev, r := range c.dataRange {
		c.fatalf(area, &dev, fmt.Errorf("%w: %d mappings beyond the %d-block data device, first to data block %d",
			ErrDataBlockRange, r[0], c.nrData, r[1]))
	}
	clear(c.dataRange)
}

// outOfRange records a mapping of device dev to data block b, beyond the
// data device.
func (c *checker) outOfRange(dev, b uint64) {
	r := c.dataRange[dev]
	if r[0] == 0 {
		r[1] = b
	}
	r[0]++
	c.dataRange[dev] = r
}

// compareDetails reports devices present in only one of the details tree
// and the top level of the mapping tree.
func (c *checker) compareDetails(details map[uint64]thin.Details, roots []thin.DeviceRoot) {
	inTree := make(map[uint64]bool, len(roots))
	for _, dr := range roots {
		inTree[dr.ID] = true
		if _, ok := details[dr.ID]; !ok {
			dev := dr.ID
			c.fatalf("device details", &dev, fmt.Errorf("%w: device has mappings but no details", thin.ErrDetailsMismatch))
		}
	}
	for id := range details {
		if !inTree[id] {
			dev := id
			c.fatalf("mapping tree", &dev, fmt.Errorf("%w: device has details but no mapping tree", thin.ErrDetailsMismatch))
		}
	}
}

// countSnapshot walks the structures of the metadata snapshot held at b:
// they hold references to metadata and data blocks like the live trees.
func (c *checker) countSnapshot(b uint64) {
	c.countMeta(b, kindSuperblock, "metadata snapshot")
	s, err := c.p.SnapshotAt(b)
	if err != nil {
		c.fatalf("metadata snapshot", nil, err)
		return
	}
	details, roots := c.topLevel(s.Superblock(), true)
	c.bottomLevel(details, roots, true)
}

// countMeta records one reference to a metadata block used as kind.
func (c *checker) countMeta(b uint64, k treeKind, area string) bool {
	if b >= c.nrMeta {
		if b >= c.devBlocks {
			c.fatalf(area, nil, transaction.Corruptf(b, k.String(), transaction.ErrOutOfRange, "device has %d blocks", c.devBlocks))
		} else {
			// Untracked: the kernel could hand it out again.
			c.fatalf(area, nil, transaction.Corruptf(b, k.String(), ErrSpaceMapRange,
				"in use, but the metadata space map tracks %d blocks", c.nrMeta))
		}
		return false
	}
	c.meta.Inc(b)
	info := c.blocks.at(b)
	if ik := info.kind(); ik != kindNone && ik != k {
		c.fatalf(area, nil, transaction.Corruptf(b, k.String(), ErrCrossLinked, "also used as %s", ik))
		return false
	}
	info.setKind(k)
	return true
}

// maxKey is the top of the key space.
const maxKey = math.MaxUint64
