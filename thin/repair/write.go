package repair

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/restore"
	"github.com/thinmeta/thinmeta/transaction"
)

// Write writes the salvaged pool to dev, a metadata device of size bytes,
// through the bulk build path of thin/restore: nodes shared in the input
// stay shared, both space maps are built from what was kept, block 0 is
// zeroed first and the superblock written last, so a Write that fails or
// is interrupted leaves no pool on dev. The input is read again.
// It stops with ctx's error once ctx is done.
func (sv *Salvaged) Write(ctx context.Context, dev transaction.Device, size int64) error {
	s := sv.s
	h := restore.Header{Time: s.time, TransactionID: s.tid, Version: s.version,
		DataBlockSize: s.dbs, NrDataBlocks: s.nrData}
	if s.ext {
		h.Extended = &restore.ExtendedHeader{BlobSize: s.blobSize, IndexBytes: s.indexB, NextThinID: s.nextID}
	}
	w, err := restore.NewWriter(dev, size, h)
	if err != nil {
		return err
	}
	e := &emitter{s: s, w: w, buf: make([]byte, transaction.BlockSize)}
	// Defs first: every shared node a salvaged device uses.
	for _, d := range s.devs {
		for _, it := range d.items {
			if err := e.defsOf(it); err != nil {
				return err
			}
		}
	}
	for _, d := range s.devs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.BeginDevice(d.id, d.details, d.blob); err != nil {
			return err
		}
		if err := e.emit(d.items, false); err != nil {
			return err
		}
		if err := w.EndDevice(); err != nil {
			return err
		}
	}
	_, err = w.Commit()
	return err
}

type emitter struct {
	s   *salvager
	w   *restore.Writer
	buf []byte
	ms  []thin.Mapping // a leaf's mappings, reused from leaf to leaf
	// run being gathered
	v, b, n uint64
	t       uint32
}

// defsOf writes the def of a shared item (once).
func (e *emitter) defsOf(it item) error {
	if it.kind != itemShared || it.def.num >= 0 {
		return nil
	}
	num, err := e.w.BeginDef()
	if err != nil {
		return err
	}
	it.def.num = num
	if err := e.emit(it.def.items, true); err != nil {
		return err
	}
	return e.w.EndDef()
}

func (e *emitter) add(m thin.Mapping) error {
	if e.n > 0 && m.VBlock == e.v+e.n && m.Block == e.b+e.n && m.Time == e.t {
		e.n++
		return nil
	}
	if err := e.flush(); err != nil {
		return err
	}
	e.v, e.b, e.n, e.t = m.VBlock, m.Block, 1, m.Time
	return nil
}

func (e *emitter) flush() error {
	if e.n == 0 {
		return nil
	}
	n := e.n
	e.n = 0
	return e.w.Map(e.v, e.b, n, e.t)
}

// emit writes items as mappings (inside a def, shared items were expanded
// already).
func (e *emitter) emit(items []item, inDef bool) error {
	for _, it := range items {
		switch it.kind {
		case itemLeaf:
			n, err := e.s.readNode(it.block, e.buf, thin.MappingValueSize)
			if err != nil && err != errUnsorted {
				return err
			}
			e.ms = leafMappings(e.ms[:0], n, err == errUnsorted, 0, ^uint64(0))
			for _, m := range e.ms {
				if err := e.add(m); err != nil {
					return err
				}
			}
		case itemMaps:
			for _, m := range it.maps {
				if err := e.add(m); err != nil {
					return err
				}
			}
		case itemHole:
			for _, k := range it.hole.fill.kept {
				if err := e.add(k.m); err != nil {
					return err
				}
			}
		case itemShared:
			if err := e.flush(); err != nil {
				return err
			}
			if err := e.w.Ref(it.def.num); err != nil {
				return err
			}
		}
	}
	return e.flush()
}

// WriteXML writes the salvaged pool as thinmeta dump would print it once
// written (opts as for dump.Dump): it is built in a temporary file
// (os.TempDir, sparse, removed before WriteXML returns; in memory if no
// file can be made) and dumped.
func (sv *Salvaged) WriteXML(ctx context.Context, w io.Writer, opts dump.Options) error {
	size := int64(max(sv.s.n, 1024)) * transaction.BlockSize
	for {
		dev, done := scratchDevice(size)
		err := sv.Write(ctx, dev, size)
		if errors.Is(err, spacemap.ErrNoSpace) && size < int64(spacemap.MaxMetadataBlocks)*transaction.BlockSize {
			done()
			size *= 2
			continue
		}
		if err == nil {
			var p *thin.Pool
			if p, err = thin.NewPool(dev, size); err == nil {
				err = dump.Dump(ctx, w, p, opts)
			}
		}
		done()
		return err
	}
}

// scratchDevice returns a device of size bytes for building a pool that is
// read back at once, and the function that discards it.
func scratchDevice(size int64) (transaction.Device, func()) {
	f, err := os.CreateTemp("", "thinmeta-repair-*")
	if err == nil {
		os.Remove(f.Name()) // gone once closed
		if err = f.Truncate(size); err == nil {
			return scratchFile{f}, func() { f.Close() }
		}
		f.Close()
	}
	return newSparseDevice(size), func() {}
}

// scratchFile is a temporary file as a device: it need not be durable.
type scratchFile struct{ *os.File }

func (scratchFile) Flush() error { return nil }

// DumpRepair salvages the metadata in ra (size bytes) and writes it to w
// as XML; it returns the salvage's report.
func DumpRepair(ctx context.Context, w io.Writer, ra io.ReaderAt, size int64, opts Options, dopts dump.Options) (*Report, error) {
	sv, err := Salvage(ctx, ra, size, opts)
	if err != nil {
		return nil, err
	}
	return sv.Report, sv.WriteXML(ctx, w, dopts)
}

// sparseDevice is an in-memory device that holds only the blocks written.
type sparseDevice struct {
	size   int64
	blocks map[int64][]byte
}

func newSparseDevice(size int64) *sparseDevice {
	return &sparseDevice{size: size, blocks: make(map[int64][]byte)}
}

func (d *sparseDevice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < d.size {
		b, o := off/transaction.BlockSize, off%transaction.BlockSize
		k := min(int64(len(p)-n), transaction.BlockSize-o, d.size-off)
		if blk := d.blocks[b]; blk != nil {
			copy(p[n:n+int(k)], blk[o:])
		} else {
			clear(p[n : n+int(k)])
		}
		n += int(k)
		off += k
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *sparseDevice) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, errors.New("write beyond the end of the device")
	}
	n := 0
	for n < len(p) {
		b, o := off/transaction.BlockSize, off%transaction.BlockSize
		k := min(int64(len(p)-n), transaction.BlockSize-o)
		blk := d.blocks[b]
		if blk == nil {
			blk = make([]byte, transaction.BlockSize)
			d.blocks[b] = blk
		}
		copy(blk[o:], p[n:n+int(k)])
		n += int(k)
		off += k
	}
	return n, nil
}

func (d *sparseDevice) Flush() error { return nil }
