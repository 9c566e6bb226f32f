package restore

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/refcount"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/transaction"
)

// The builder turns the parser's ops into the pool's trees: the leaves of
// each def once, each device's mapping tree (its leaves, then the levels
// above with btree.Builder), then the device-details and top-level mapping
// trees, the data space map, and the commit.

var mappingVT = &btree.ValueType{Size: thin.MappingValueSize}

// device is a finished device.
type device struct {
	id      uint64
	details thin.Details
	root    uint64
	blob    []byte // extended pools only
}

type builder struct {
	b     *thin.Build
	tm    *transaction.Manager
	msm   *spacemap.Writable
	hdr   header
	data  *refcount.Counts
	stats Stats

	defs    [][]leafRef // leaves of each def, by number
	devices []device

	asm  leaves
	tree *btree.Builder // the levels above the current device's leaves
	dev  device
	lw   *leafWriter // writes the leaves (leafwriter.go)
}

// newBuilder builds on b, whose device is dev.
func newBuilder(b *thin.Build, dev transaction.Device, h header) *builder {
	bd := &builder{b: b, tm: b.Manager(), msm: b.MetadataSpaceMap(), hdr: h, data: refcount.New(h.nrDataBlocks)}
	bd.lw = newLeafWriter(dev, bd.data)
	bd.asm.bd = bd
	// Blocks are written out by checkpoint, in order and coalesced, not
	// by the manager's own early write-back.
	bd.tm.SetDirtyLimit(math.MaxInt)
	// Nothing written is read again but a few shared leaves: keep no cache.
	bd.tm.Reader().SetCacheBlocks(0)
	return bd
}

// release frees the data counts, once the leaf writer is done with them:
// the builder is done.
func (bd *builder) release() {
	bd.lw.drain()
	bd.data.Free()
}

// writeBackBlocks is how many new blocks are kept in memory before they
// are written out (1 MiB). Few: each checkpoint writes them while they
// are in the cache, the heap stays small (fewer fresh pages to fault in),
// and the commit has little left to write after the data space map.
const writeBackBlocks = 256

// checkpoint writes the manager's blocks made so far out if there are
// enough of them. Buffers from New are invalid afterwards: New reuses
// them.
func (bd *builder) checkpoint() error {
	if bd.tm.DirtyBlocks() < writeBackBlocks {
		return nil
	}
	if err := bd.lw.sync(); err != nil {
		return err
	}
	return bd.tm.WriteBackReuse()
}

// apply carries out a batch of ops. Errors name the op's input line.
func (bd *builder) apply(b *batch) error {
	for i := range b.ops {
		o := &b.ops[i]
		bd.lw.line = o.line
		if err := bd.step(o, b.devs); err != nil {
			var be *BuildError
			if errors.As(err, &be) {
				return err // a write error deemed from an earlier op (leafwriter.go)
			}
			if errors.Is(err, spacemap.ErrNoMetadataSpace) {
				err = fmt.Errorf("the metadata device is too small (%d blocks): %w", bd.msm.NrBlocks(), err)
			}
			return &BuildError{Line: o.line, Err: err}
		}
	}
	return nil
}

// step carries out op o; devs are the details of its batch's devices.
func (bd *builder) step(o *op, devs []devOp) error {
	switch o.kind() {
	case opMap:
		return bd.asm.pushRange(o.a, o.b, uint64(o.n), o.time())
	case opRef:
		return bd.asm.pushLeaves(bd.defs[o.a])
	case opDevice:
		d := &devs[o.a]
		bd.dev = device{id: d.id, details: thin.Details{TransactionID: d.transaction,
			CreationTime: d.ctime, SnapshottedTime: d.stime}, blob: d.blob}
		bd.tree = btree.NewBuilder(bd.tm, mappingVT)
		bd.asm.reset(bd.addToDevice)
		bd.stats.Devices++
	case opEndDevice:
		if err := bd.asm.complete(); err != nil {
			return err
		}
		root, err := bd.tree.Finish()
		if err != nil {
			return err
		}
		bd.dev.root = root
		bd.devices = append(bd.devices, bd.dev)
		bd.tree = nil
		// The device's nodes are complete: write them out rather than
		// hold every device's until the data space map is written.
		return bd.checkpoint()
	case opDef:
		bd.defs = append(bd.defs, nil)
		n := len(bd.defs) - 1
		bd.asm.reset(func(r leafRef, _ bool) error {
			bd.defs[n] = append(bd.defs[n], r)
			return nil
		})
		bd.stats.Defs++
	case opEndDef:
		return bd.asm.complete()
	}
	return nil
}

// addToDevice passes a leaf to the device's tree. The tree takes a
// reference of its own; a leaf just written gives up the reference its
// allocation holds.
func (bd *builder) addToDevice(r leafRef, shared bool) error {
	if err := bd.tree.AddSubtree(r.block, r.first, r.last); err != nil {
		return err
	}
	// thin_restore 0.9.0 counts mapped_blocks itself rather than trusting
	// the XML; so do we, so the two give the same pool.
	bd.dev.details.MappedBlocks += uint64(r.n)
	if shared {
		return nil
	}
	return bd.msm.Dec(r.block)
}

// writeLeaf writes a new leaf holding the first n entries of a (through
// the leaf writer, not the manager), taking them from a.
func (bd *builder) writeLeaf(a *leaves, n int) (leafRef, error) {
	blk, err := bd.msm.NewBlock()
	if err != nil {
		return leafRef{}, err
	}
	if blk >= bd.tm.NrBlocks() {
		return leafRef{}, fmt.Errorf("space map allocated block %d beyond the %d-block device", blk, bd.tm.NrBlocks())
	}
	bd.stats.Leaves++
	return bd.lw.add(blk, a, n)
}

// readLeaf returns the entries of a leaf written before.
func (bd *builder) readLeaf(r leafRef) (keys, vals []uint64, err error) {
	if err := bd.lw.sync(); err != nil {
		return nil, nil, err
	}
	buf, err := bd.tm.Read(r.block, btree.Validator)
	if err != nil {
		return nil, nil, err
	}
	n := btree.Node(buf)
	if !n.IsLeaf() || n.NrEntries() != r.n {
		return nil, nil, transaction.Corruptf(r.block, btree.Kind, transaction.ErrCorrupt, "leaf written by restore changed")
	}
	keys, vals = make([]uint64, r.n), make([]uint64, r.n)
	for i := range r.n {
		keys[i], vals[i] = n.Key(i), n.Uint64Value(i)
	}
	return keys, vals, nil
}

// copyLeaf returns the entries of a shared leaf that are being copied into
// a new leaf (whose references to their data blocks are counted when it is
// written).
func (bd *builder) copyLeaf(r leafRef) (keys, vals []uint64, err error) {
	return bd.readLeaf(r)
}

// releaseDefs drops the reference each def holds on its leaves: a leaf no
// device uses is freed, with its references to data blocks.
func (bd *builder) releaseDefs() error {
	for _, ls := range bd.defs {
		for _, r := range ls {
			c, err := bd.msm.Count(r.block)
			if err != nil {
				return err
			}
			switch {
			case c == 1:
				_, vals, err := bd.readLeaf(r)
				if err != nil {
					return err
				}
				for _, v := range vals {
					b, _ := thin.UnpackBlockTime(v)
					bd.data.Dec(b)
				}
				bd.stats.Leaves--
			case c > 2:
				bd.stats.SharedLeaves++
			}
			if err := bd.msm.Dec(r.block); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish builds the top-level trees and the data space map and commits.
func (bd *builder) finish(m *meter.Meter) error {
	m.Phase("space maps")
	// Every leaf written and counted: the data counts are ours now.
	if err := bd.lw.sync(); err != nil {
		return err
	}
	if err := bd.releaseDefs(); err != nil {
		return err
	}
	slices.SortFunc(bd.devices, func(a, b device) int { return cmp.Compare(a.id, b.id) })
	dvt := bd.detailsVT()
	details := btree.NewBuilder(bd.tm, dvt)
	mapping := btree.NewBuilder(bd.tm, mappingVT)
	dbuf := make([]byte, dvt.Size)
	var rbuf [8]byte
	for _, d := range bd.devices {
		d.details.Encode(dbuf)
		copy(dbuf[thin.DetailsSize:], d.blob)
		if err := details.Add(d.id, dbuf); err != nil {
			return err
		}
		if err := mapping.Add(d.id, encodeU64(&rbuf, d.root)); err != nil {
			return err
		}
	}
	detailsRoot, err := details.Finish()
	if err != nil {
		return err
	}
	mappingRoot, err := mapping.Finish()
	if err != nil {
		return err
	}
	ext, err := bd.extension()
	if err != nil {
		return err
	}
	dsm, err := writeDataSpaceMap(bd.data, bd.tm, bd.checkpoint, m.Err)
	if err != nil {
		return err
	}
	bd.stats.DataBlocks = dsm.NrAllocated
	if err := bd.lw.sync(); err != nil {
		return err
	}
	if err := m.Err(); err != nil {
		return err // before the superblock: no pool
	}
	err = bd.b.Commit(thin.BuildRoots{
		Time: bd.hdr.time, TransactionID: bd.hdr.transaction, Flags: bd.hdr.flags, Version: bd.version(),
		DataBlockSize: bd.hdr.dataBlockSize, MappingRoot: mappingRoot, DetailsRoot: detailsRoot,
		DataSpaceMap: dsm, Extension: ext,
	})
	if err != nil {
		return err
	}
	bd.stats.MetadataBlocks = bd.msm.NrAllocated()
	return nil
}

// version is the superblock version to write: the XML's, or 1 when it
// names none, as thin_restore 0.9.0 does.
func (bd *builder) version() uint32 {
	if bd.hdr.version != 0 {
		return bd.hdr.version
	}
	return 1
}
