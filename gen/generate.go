package gen

import (
	"errors"
	"fmt"
	"os"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// Generate builds the pool of spec and seed on dev, a metadata device of
// size bytes (at least NewPlan(spec, seed).MetadataBytes()), and returns
// its Record. Everything dev held is overwritten; blocks the pool does not
// use are not written, so dev should start zeroed for the image to be
// byte-identical from run to run.
func Generate(dev transaction.Device, size int64, spec Spec, seed uint64) (*Record, error) {
	p, err := NewPlan(spec, seed)
	if err != nil {
		return nil, err
	}
	return p.Build(dev, size)
}

// GenerateFile creates (or truncates) the file at path, sized for the
// plan, and builds the pool of spec and seed in it.
func GenerateFile(path string, spec Spec, seed uint64) (*Record, error) {
	p, err := NewPlan(spec, seed)
	if err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	rec, err := p.BuildFile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return rec, err
}

// BuildFile builds the plan in f, which it truncates to the plan's
// metadata size first.
func (p *Plan) BuildFile(f *os.File) (*Record, error) {
	if err := f.Truncate(0); err != nil {
		return nil, err
	}
	if err := f.Truncate(p.MetadataBytes()); err != nil {
		return nil, err
	}
	return p.Build(transaction.FileDevice{File: f}, p.MetadataBytes())
}

// recordingDevice keeps the contents of block 0 as each commit writes it.
type recordingDevice struct {
	transaction.Device
	prev, last []byte
}

// WriteAt writes, keeping a copy of every superblock write.
func (d *recordingDevice) WriteAt(b []byte, off int64) (int, error) {
	n, err := d.Device.WriteAt(b, off)
	if off == 0 && len(b) >= transaction.BlockSize && err == nil {
		d.prev, d.last = d.last, append(d.prev[:0], b[:transaction.BlockSize]...)
	}
	return n, err
}

// executor carries out a plan through the write path.
type executor struct {
	p     *Plan
	md    *thin.Metadata
	rec   *Record
	tid   uint64
	dirty int // writes since the last commit
}

// Build carries out the plan on dev (size bytes, at least MetadataBytes).
func (p *Plan) Build(dev transaction.Device, size int64) (*Record, error) {
	if size < p.MetadataBytes() {
		return nil, fmt.Errorf("gen: the metadata device has %d bytes, the plan needs %d", size, p.MetadataBytes())
	}
	rd := &recordingDevice{Device: dev}
	opts := &thin.FormatOptions{
		DataBlockSize:  p.spec.DataBlockSize,
		NrDataBlocks:   p.NrDataBlocks,
		MetadataBlocks: p.MetadataBlocks,
	}
	if p.ext != nil {
		opts.Variant, opts.BlobSize, opts.IndexBytes = thin.Extended, p.spec.BlobSize, p.spec.IndexBytes
	}
	md, err := thin.Format(rd, size, opts)
	if err != nil {
		return nil, err
	}
	x := &executor{p: p, md: md, rec: &Record{
		Spec: p.spec, Seed: p.seed,
		DataBlockSize: p.spec.DataBlockSize, NrDataBlocks: p.NrDataBlocks, MetadataBlocks: p.MetadataBlocks,
	}}
	x.rec.Commits = 1 // the format
	if err := x.run(); err != nil {
		return nil, err
	}
	x.rec.PreviousSuperblock = rd.prev
	return x.rec, nil
}

func (x *executor) event(e Event) { x.rec.Events = append(x.rec.Events, e) }

// commit commits, recording it.
func (x *executor) commit() error {
	if err := x.md.Commit(); err != nil {
		return err
	}
	x.rec.Commits++
	x.dirty = 0
	x.event(Event{Kind: Commit})
	return nil
}

// message ends a pool message as LVM sends them: the userspace
// transaction id goes up by one and the pool commits.
func (x *executor) message() error {
	if err := x.md.SetTransactionID(x.tid, x.tid+1); err != nil {
		return err
	}
	x.tid++
	x.event(Event{Kind: SetTransaction, Transaction: x.tid})
	return x.commit()
}

// mapped records one mapping made by the write path, extending the last
// Map event when it continues it.
func (x *executor) mapped(dev, v, b uint64) {
	t := x.md.Time()
	if n := len(x.rec.Events); n > 0 {
		e := &x.rec.Events[n-1]
		if e.Kind == Map && e.Dev == dev && e.VBlock+e.Len == v && e.Block+e.Len == b && e.Time == t {
			e.Len++
			return
		}
	}
	x.event(Event{Kind: Map, Dev: dev, VBlock: v, Block: b, Len: 1, Time: t})
}

// write writes [v, v+n) of dev block by block, as the kernel maps a write
// to unmapped or shared blocks: a new data block each. If expect is not
// nil the data blocks must be *expect, *expect+1, ... (and *expect
// advances).
func (x *executor) write(dev, v, n uint64, expect *uint64) error {
	every := x.p.spec.CommitEvery
	for k := range n {
		b, err := x.md.Map(dev, v+k)
		if err != nil {
			return fmt.Errorf("gen: writing block %d of device %d: %w", v+k, dev, err)
		}
		if expect != nil {
			if b != *expect {
				return fmt.Errorf("%w: block %d of device %d got data block %d, expected %d", ErrDataPlan, v+k, dev, b, *expect)
			}
			*expect++
		}
		x.mapped(dev, v+k, b)
		x.dirty++
		if every > 0 && x.dirty >= every {
			if err := x.commit(); err != nil {
				return err
			}
		}
	}
	return nil
}

// ErrIDPlan means the pool handed out another id than the plan expected
// (a bug: a new extended pool hands out its ids in order).
var ErrIDPlan = errors.New("id allocation differs from the plan")

// newDevice returns the pool id and blob (nil in a stock pool) of plan
// device k, taking the id from the pool if the plan says so.
func (x *executor) newDevice(k uint64) (uint64, []byte, error) {
	id := x.p.id(k)
	if x.p.ext == nil {
		return id, nil, nil
	}
	if x.p.ext.allocated[k-1] {
		got, err := x.md.AllocateID()
		if err != nil {
			return 0, nil, err
		}
		if got != id {
			return 0, nil, fmt.Errorf("%w: device %d got id %d, expected %d", ErrIDPlan, k, got, id)
		}
	}
	return id, x.p.blob(k), nil
}

// create creates plan device k, empty (origin 0) or as a snapshot of plan
// device origin, with its blob in an extended pool, and records it.
func (x *executor) create(k, origin uint64) error {
	id, blob, err := x.newDevice(k)
	if err != nil {
		return err
	}
	switch {
	case origin == 0 && blob == nil:
		err = x.md.CreateThin(id)
	case origin == 0:
		err = x.md.CreateThinWithBlob(id, blob)
	case blob == nil:
		err = x.md.CreateSnapshot(id, x.p.id(origin))
	default:
		err = x.md.CreateSnapshotWithBlob(id, x.p.id(origin), blob)
	}
	if err != nil {
		return err
	}
	if origin == 0 {
		x.event(Event{Kind: Create, Dev: id, Blob: string(blob)})
	} else {
		x.event(Event{Kind: Snap, Dev: id, Origin: x.p.id(origin), Time: x.md.Time(), Blob: string(blob)})
	}
	return x.message()
}

func (x *executor) run() error {
	steps := x.p.steps
	start := 0
	if x.p.spec.Bulk {
		if err := x.bulk(steps[:x.p.population]); err != nil {
			return err
		}
		start = x.p.population
	}
	var popData uint64 // the next data block of the population phase
	for i, st := range steps[start:] {
		var err error
		switch st.kind {
		case stepCreate:
			err = x.create(st.dev, 0)
		case stepWrite:
			var expect *uint64
			if start+i < x.p.population {
				expect = &popData
			}
			err = x.write(x.p.id(st.dev), st.v, st.n, expect)
		case stepSnapshot:
			err = x.create(st.dev, st.origin)
		case stepDiscard:
			var n uint64
			id := x.p.id(st.dev)
			if n, err = x.md.Unmap(id, st.v, st.v+st.n); err == nil {
				x.event(Event{Kind: Unmap, Dev: id, VBlock: st.v, Len: st.n, Block: n})
				x.dirty++
			}
		case stepDelete:
			id := x.p.id(st.dev)
			if err = x.md.Delete(id); err == nil {
				x.event(Event{Kind: Delete, Dev: id})
				err = x.message()
			}
		case stepReserve:
			// As the kernel: what came before is committed, then the
			// snapshot (held from the next commit on).
			if err = x.md.Commit(); err == nil {
				err = x.md.ReserveMetadataSnapshot()
			}
			if err == nil {
				err = x.md.Commit()
			}
			if err == nil {
				x.rec.Commits += 2
				x.rec.HeldRoot = x.md.Superblock().HeldRoot
				x.event(Event{Kind: ReserveSnapshot, Block: x.rec.HeldRoot})
				err = x.message()
			}
		case stepEndPhase:
			if x.dirty > 0 {
				err = x.commit()
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ErrDataPlan means the write path allocated other data blocks than the
// plan expected (a bug: the allocator is expected to hand out blocks in
// order on a fresh pool).
var ErrDataPlan = errors.New("data allocation differs from the plan")

// bulk carries out the population phase with the bulk builder: the thins
// are created with trees built bottom-up, holding the data blocks the
// one-by-one path would have allocated (in the interleaved write order,
// from block 0 up). In an extended pool each thin, created with a zero
// blob, is given its blob in the same transaction.
func (x *executor) bulk(steps []step) error {
	// Data blocks in write order, then each thin's runs in virtual order
	// (which is the order each thin's runs were written in).
	type run struct{ v, b, n uint64 }
	runs := make(map[uint64][]run)
	var created []uint64
	next := uint64(0)
	for _, st := range steps {
		switch st.kind {
		case stepCreate:
			created = append(created, st.dev)
		case stepWrite:
			runs[st.dev] = append(runs[st.dev], run{st.v, next, st.n})
			next += st.n
		}
	}
	dsm := x.md.DataSpaceMap()
	vt := &btree.ValueType{Size: thin.MappingValueSize}
	for _, k := range created {
		bld := btree.NewBuilder(x.md.Manager(), vt)
		var n uint64
		for _, r := range runs[k] {
			for k := range r.n {
				if err := dsm.Inc(r.b + k); err != nil {
					return err
				}
				if err := bld.Add(r.v+k, u64(thin.PackBlockTime(r.b+k, 0))); err != nil {
					return err
				}
			}
			n += r.n
		}
		root, err := bld.Finish()
		if err != nil {
			return err
		}
		id, blob, err := x.newDevice(k)
		if err != nil {
			return err
		}
		if err := x.md.CreateThinFromTree(id, root, n); err != nil {
			return err
		}
		x.event(Event{Kind: Create, Dev: id})
		if blob != nil {
			if err := x.md.SetBlob(id, blob); err != nil {
				return err
			}
			x.event(Event{Kind: SetBlob, Dev: id, Blob: string(blob)})
		}
		if err := x.message(); err != nil {
			return err
		}
	}
	// The events, as the one-by-one path records them.
	cursor := make(map[uint64]int)
	for _, st := range steps {
		if st.kind != stepWrite {
			continue
		}
		r := runs[st.dev][cursor[st.dev]]
		cursor[st.dev]++
		for k := range r.n {
			x.mapped(x.p.id(st.dev), r.v+k, r.b+k)
		}
	}
	return x.commit()
}

func u64(v uint64) []byte {
	var b [8]byte
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b[:]
}
