package dump

import (
	"strconv"

	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
)

// xml110Emitter writes thin_dump 1.1.0's XML. Its writer puts a newline
// and the indentation (two spaces a level) before every element but the
// first, so nothing follows the closing </superblock>. The flags
// attribute appears only when needs_check is set, as flags="1" (other
// bits are not shown).
type xml110Emitter struct{}

func (xml110Emitter) beginSuperblock(b []byte, h header) []byte {
	b = append(b, `<superblock uuid=""`...)
	b = attr(b, "time", uint64(h.sb.Time))
	b = attr(b, "transaction", h.transactionID)
	if h.sb.Flags&superblock.FlagNeedsCheck != 0 {
		b = attr(b, "flags", 1)
	}
	b = attr(b, "version", uint64(h.sb.Version))
	b = attr(b, "data_block_size", uint64(h.dataBlockSize))
	b = attr(b, "nr_data_blocks", h.nrDataBlocks)
	return append(b, '>')
}

func (xml110Emitter) endSuperblock(b []byte) []byte { return append(b, "\n</superblock>"...) }

func (xml110Emitter) beginDef(b []byte, name uint64) []byte {
	b = append(b, "\n  <def"...)
	b = attr(b, "name", name)
	return append(b, '>')
}

func (xml110Emitter) endDef(b []byte) []byte { return append(b, "\n  </def>"...) }

func (xml110Emitter) ref(b []byte, name uint64) []byte {
	b = append(b, "\n    <ref"...)
	b = attr(b, "name", name)
	return append(b, "/>"...)
}

func (xml110Emitter) beginDevice(b []byte, id uint64, d thin.Details, _ []byte) []byte {
	b = append(b, "\n  <device"...)
	b = attr(b, "dev_id", uint64(uint32(id)))
	b = attr(b, "mapped_blocks", d.MappedBlocks)
	b = attr(b, "transaction", d.TransactionID)
	b = attr(b, "creation_time", uint64(d.CreationTime))
	b = attr(b, "snap_time", uint64(d.SnapshottedTime))
	return append(b, '>')
}

func (xml110Emitter) endDevice(b []byte) []byte { return append(b, "\n  </device>"...) }

func (xml110Emitter) run(b []byte, r thin.Run) []byte { return appendRun(b, r, &form110) }

// hr110Emitter writes thin_dump 1.1.0's human-readable format: as
// 0.9.0's, except that the flags field is 1 for needs_check and 0
// otherwise, every mapping is written as a range (also a single block),
// and shared leaves appear as "def: N" sections and "ref: N" lines.
type hr110Emitter struct{}

func (hr110Emitter) beginSuperblock(b []byte, h header) []byte {
	flags := uint64(0)
	if h.sb.Flags&superblock.FlagNeedsCheck != 0 {
		flags = 1
	}
	b = append(b, `begin superblock: ""`...)
	for _, v := range []uint64{uint64(h.sb.Time), h.transactionID, flags, uint64(h.sb.Version), uint64(h.dataBlockSize), h.nrDataBlocks} {
		b = append(b, ", "...)
		b = strconv.AppendUint(b, v, 10)
	}
	return append(b, '\n')
}

func (hr110Emitter) endSuperblock(b []byte) []byte { return append(b, "end superblock\n"...) }

func (hr110Emitter) beginDef(b []byte, name uint64) []byte {
	b = append(b, "def: "...)
	b = strconv.AppendUint(b, name, 10)
	return append(b, '\n')
}

func (hr110Emitter) endDef(b []byte) []byte { return append(b, '\n') }

func (hr110Emitter) ref(b []byte, name uint64) []byte {
	b = append(b, "    ref: "...)
	b = strconv.AppendUint(b, name, 10)
	return append(b, '\n')
}

func (hr110Emitter) beginDevice(b []byte, id uint64, d thin.Details, _ []byte) []byte {
	return hrEmitter{}.beginDevice(b, uint64(uint32(id)), d, nil)
}

func (hr110Emitter) endDevice(b []byte) []byte { return append(b, '\n') }

func (hr110Emitter) run(b []byte, r thin.Run) []byte {
	b = append(b, "    ("...)
	b = strconv.AppendUint(b, r.VBlock, 10)
	b = append(b, ".."...)
	b = strconv.AppendUint(b, r.VBlock+r.Len-1, 10)
	b = append(b, ") -> ("...)
	b = strconv.AppendUint(b, r.Block, 10)
	b = append(b, ".."...)
	b = strconv.AppendUint(b, r.Block+r.Len-1, 10)
	b = append(b, "), "...)
	b = strconv.AppendUint(b, uint64(r.Time), 10)
	return append(b, '\n')
}
