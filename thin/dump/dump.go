// Package dump writes a pool's metadata as thin_dump does: the XML format
// that thin_restore reads, byte-identical to thin_dump 0.9.0 by default or
// to thin_dump 1.1.0 (with shared leaves as <def>/<ref>) on request, and
// the human-readable format of either.
package dump

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
)

// Format selects the output format.
type Format int

const (
	// XML is thin_dump's default format.
	XML Format = iota
	// HumanReadable is thin_dump --format human_readable.
	HumanReadable
)

// Compat selects the generation of thin_dump whose output Dump
// reproduces byte for byte. Generations are ordered; each later one
// changes the form of the one before.
type Compat int

const (
	// Compat090 is thin_dump 0.9.0 (thin-provisioning-tools, C++; Debian
	// 12): every device's mappings written out in full, the superblock's
	// flags always present, each line ending in a newline.
	Compat090 Compat = iota
	// Compat110 is thin_dump 1.1.0 (the Rust rewrite; Debian 13): runs of
	// leaves shared by several devices written once, as <def name="N">
	// before the devices, and referred to as <ref name="N"/> where a
	// device uses them (N is the metadata block of the run's first leaf);
	// no flags attribute unless needs_check is set (then flags="1"); no
	// newline after </superblock>; in the human-readable format every
	// mapping as a range. The extended format has no 1.1.0 form.
	Compat110
)

// Options select what to dump.
type Options struct {
	Format Format
	// Compat is the thin_dump generation to reproduce (default 0.9.0).
	Compat Compat
	// DevIDs, if not empty, restricts the dump to these devices.
	DevIDs []uint64
	// SkipMappings emits devices without their mappings.
	SkipMappings bool
	// Overrides replace superblock values in the output.
	Overrides Overrides
	// Progress, if not nil, is called as the dump goes (see thin.Progress)
	// with Done counting the mappings written and Total the mapped_blocks
	// of the devices dumped (in 1.1.0's form a shared leaf is written
	// once, so the last report jumps).
	Progress func(thin.Progress)
}

// Overrides are superblock values given by the caller (thin_dump's
// --transaction-id, --data-block-size and --nr-data-blocks), for
// metadata whose superblock is wrong about them. A nil field keeps the
// superblock's value. With Compat090 a given value replaces the
// superblock's, as thin_dump 0.9.0 does; with Compat110 the transaction
// id and the number of data blocks are the larger of the given and the
// recorded value and the data block size is replaced, as thin_dump 1.1.0
// does. Either way they apply to a metadata-snapshot view too (1.1.0
// ignores them there).
type Overrides struct {
	TransactionID *uint64
	DataBlockSize *uint32
	NrDataBlocks  *uint64
}

// header is what the superblock element says.
type header struct {
	sb            *superblock.Superblock
	transactionID uint64
	dataBlockSize uint32
	nrDataBlocks  uint64
}

func (o *Options) header(p *thin.Pool) header {
	h := header{sb: p.Superblock(), transactionID: p.Superblock().TransactionID,
		dataBlockSize: p.Superblock().DataBlockSize, nrDataBlocks: p.NrDataBlocks()}
	ov := o.Overrides
	if ov.TransactionID != nil {
		h.transactionID = *ov.TransactionID
		if o.Compat == Compat110 {
			h.transactionID = max(h.transactionID, p.Superblock().TransactionID)
		}
	}
	if ov.DataBlockSize != nil {
		h.dataBlockSize = *ov.DataBlockSize
	}
	if ov.NrDataBlocks != nil {
		h.nrDataBlocks = *ov.NrDataBlocks
		if o.Compat == Compat110 {
			h.nrDataBlocks = max(h.nrDataBlocks, p.NrDataBlocks())
		}
	}
	return h
}

func (o *Options) selected(id uint64) bool {
	if len(o.DevIDs) == 0 {
		return true
	}
	for _, d := range o.DevIDs {
		if d == id {
			return true
		}
	}
	return false
}

// emitter produces one output format: each method appends an element's
// text to b.
type emitter interface {
	beginSuperblock(b []byte, h header) []byte
	endSuperblock(b []byte) []byte
	beginDevice(b []byte, id uint64, d thin.Details, blob []byte) []byte
	endDevice(b []byte) []byte
	run(b []byte, r thin.Run) []byte
}

// sharingEmitter also writes 1.1.0's definitions of shared leaves and
// references to them.
type sharingEmitter interface {
	emitter
	beginDef(b []byte, name uint64) []byte
	endDef(b []byte) []byte
	ref(b []byte, name uint64) []byte
}

func (o *Options) emitter() emitter {
	switch {
	case o.Compat == Compat110 && o.Format == HumanReadable:
		return hr110Emitter{}
	case o.Compat == Compat110:
		return xml110Emitter{}
	case o.Format == HumanReadable:
		return hrEmitter{}
	}
	return xmlEmitter{}
}

// ErrNoCompatForm means the pool cannot be written in the requested
// generation's form (the extended format in 1.1.0's).
var ErrNoCompatForm = errors.New("no such form for this pool")

// Dump writes the pool (or metadata-snapshot view) p to w.
//
// As thin_dump does, it first reads the whole device-details tree, then
// walks the top level of the mapping tree in device order; a device present
// in the mapping tree but not in the details tree is an error, one present
// only in the details tree is not dumped. Damage anywhere stops the dump
// with an error; what was written before stays written. With Compat110
// the leaves of every device are listed (and the sharing between devices
// worked out) before anything is written, as thin_dump 1.1.0 does, so
// damage above the leaves produces no output.
//
// When ctx is done before the dump is, Dump stops within a few
// milliseconds and returns an error wrapping ctx.Err(); what was written
// before stays written, as with damage.
func Dump(ctx context.Context, w io.Writer, p *thin.Pool, opts Options) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if opts.Compat == Compat110 && p.Variant() == thin.Extended {
		return fmt.Errorf("extended pool in thin_dump 1.1.0's form: %w", ErrNoCompatForm)
	}
	e := opts.emitter()
	details := make(map[uint64]thin.Device)
	for d, err := range p.Devices() {
		if err != nil {
			return err
		}
		if opts.selected(d.ID) {
			if p.Variant() == thin.Extended && d.Blob == nil {
				d.Blob = []byte{} // a zero-size blob: still the extended form
			}
			details[d.ID] = d
		}
	}
	var total uint64
	if !opts.SkipMappings {
		for _, d := range details {
			if total += d.MappedBlocks; total < d.MappedBlocks {
				total = math.MaxUint64 // damaged details
			}
		}
	}
	m := meter.New(ctx, opts.Progress, "mappings", total, 0)
	var err error
	if opts.Compat == Compat110 {
		err = dump110(w, p, &opts, e.(sharingEmitter), details, m)
	} else {
		err = dump090(w, p, &opts, e, details, m)
	}
	if err == nil {
		m.Finish()
	}
	return err
}

func dump090(w io.Writer, p *thin.Pool, opts *Options, e emitter, details map[uint64]thin.Device, m *meter.Meter) error {
	// Walk the top level fully before writing anything, so that damage
	// there produces no output, as with thin_dump.
	var roots []thin.DeviceRoot
	for dr, err := range p.DeviceRoots() {
		if err != nil {
			return err
		}
		roots = append(roots, dr)
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	bw.Write(e.beginSuperblock(nil, opts.header(p)))
	// The devices to dump, in order, up to the first one without details
	// (an error once the ones before it are written).
	var secs []*section
	var missing *thin.DeviceRoot
	for _, dr := range roots {
		if !opts.selected(dr.ID) {
			continue
		}
		d, ok := details[dr.ID]
		if !ok {
			missing = &dr
			break
		}
		s := &section{name: fmt.Sprintf("device %d", dr.ID),
			begin: e.beginDevice(nil, dr.ID, d.Details, d.Blob), end: e.endDevice(nil)}
		if !opts.SkipMappings {
			s.parts = []part{{kind: partTree, root: dr.Root}}
		}
		secs = append(secs, s)
	}
	if err := writeSections(w, bw, e, p, secs, m); err != nil {
		bw.Flush()
		return err
	}
	if missing != nil {
		bw.Flush()
		return fmt.Errorf("mappings present for device %d, but it is not in the device details tree: %w", missing.ID, thin.ErrDetailsMismatch)
	}
	bw.Write(e.endSuperblock(nil))
	return bw.Flush()
}
