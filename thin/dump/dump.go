// Package dump writes a pool's metadata as thin_dump does: the XML format
// that thin_restore reads, byte-identical to thin_dump 0.9.0, and the
// human-readable format.
package dump

import (
	"bufio"
	"fmt"
	"io"

	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
)

// Format selects the output format.
type Format int

const (
	// XML is thin_dump's default format.
	XML Format = iota
	// HumanReadable is thin_dump --format human_readable.
	HumanReadable
)

// Options select what to dump.
type Options struct {
	Format Format
	// DevIDs, if not empty, restricts the dump to these devices.
	DevIDs []uint64
	// SkipMappings emits devices without their mappings.
	SkipMappings bool
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

// emitter produces one output format.
type emitter interface {
	beginSuperblock(w *bufio.Writer, sb *superblock.Superblock, nrDataBlocks uint64)
	endSuperblock(w *bufio.Writer)
	beginDevice(w *bufio.Writer, id uint64, d thin.Details, blob []byte)
	endDevice(w *bufio.Writer)
	run(buf []byte, r thin.Run) []byte
}

// Dump writes the pool (or metadata-snapshot view) p to w.
//
// As thin_dump does, it first reads the whole device-details tree, then
// walks the top level of the mapping tree in device order; a device present
// in the mapping tree but not in the details tree is an error, one present
// only in the details tree is not dumped. Damage anywhere stops the dump
// with an error; what was written before stays written.
func Dump(w io.Writer, p *thin.Pool, opts Options) error {
	var e emitter = xmlEmitter{}
	if opts.Format == HumanReadable {
		e = hrEmitter{}
	}
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
	sb := p.Superblock()
	e.beginSuperblock(bw, sb, p.NrDataBlocks())
	// The devices to dump, in order, up to the first one without details
	// (an error once the ones before it are written).
	var devs []device
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
		devs = append(devs, device{DeviceRoot: dr, Details: d.Details, Blob: d.Blob})
	}
	if opts.SkipMappings {
		for _, d := range devs {
			e.beginDevice(bw, d.ID, d.Details, d.Blob)
			e.endDevice(bw)
		}
	} else if err := dumpDevices(bw, e, p, devs); err != nil {
		bw.Flush()
		return err
	}
	if missing != nil {
		bw.Flush()
		return fmt.Errorf("thinmeta: mappings present for device %d, but it is not in the device details tree: %w", missing.ID, thin.ErrDetailsMismatch)
	}
	e.endSuperblock(bw)
	return bw.Flush()
}

// device is one device to dump.
type device struct {
	thin.DeviceRoot
	thin.Details
	Blob []byte // extended pools only
}
