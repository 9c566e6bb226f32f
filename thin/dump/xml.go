package dump

import (
	"encoding/hex"
	"strconv"

	"github.com/thinmeta/thinmeta/thin"
)

// xmlEmitter writes thin_dump 0.9.0's XML: two-space indentation, attributes
// in a fixed order, flags and version always present, device ids as 32-bit
// numbers (thin_dump truncates them).
type xmlEmitter struct{}

func attr(b []byte, name string, v uint64) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '=', '"')
	b = strconv.AppendUint(b, v, 10)
	return append(b, '"')
}

func (xmlEmitter) beginSuperblock(b []byte, h header) []byte {
	sb := h.sb
	b = append(b, `<superblock uuid=""`...)
	b = attr(b, "time", uint64(sb.Time))
	b = attr(b, "transaction", h.transactionID)
	b = attr(b, "flags", uint64(sb.Flags))
	b = attr(b, "version", uint64(sb.Version))
	b = attr(b, "data_block_size", uint64(h.dataBlockSize))
	b = attr(b, "nr_data_blocks", h.nrDataBlocks)
	if sb.Extended() {
		// The extended form: what a stock superblock does not have.
		b = attr(b, "blob_size", uint64(sb.BlobSize))
		b = attr(b, "index_bytes", uint64(sb.IndexBytes))
		b = attr(b, "next_thin_id", sb.NextThinID)
	}
	return append(b, ">\n"...)
}

func (xmlEmitter) endSuperblock(b []byte) []byte { return append(b, "</superblock>\n"...) }

func (xmlEmitter) beginDevice(b []byte, id uint64, d thin.Details, blob []byte) []byte {
	b = append(b, "  <device"...)
	if blob == nil {
		id = uint64(uint32(id)) // thin_dump prints stock ids as 32-bit
	}
	b = attr(b, "dev_id", id)
	b = attr(b, "mapped_blocks", d.MappedBlocks)
	b = attr(b, "transaction", d.TransactionID)
	b = attr(b, "creation_time", uint64(d.CreationTime))
	b = attr(b, "snap_time", uint64(d.SnapshottedTime))
	if blob != nil {
		b = append(b, ` blob="`...)
		b = appendBlob(b, blob)
		b = append(b, '"')
	}
	return append(b, ">\n"...)
}

// appendBlob appends a blob as lowercase hex without its trailing zero
// bytes (a reader pads them back to the pool's blob size).
func appendBlob(b, blob []byte) []byte {
	n := len(blob)
	for n > 0 && blob[n-1] == 0 {
		n--
	}
	return hex.AppendEncode(b, blob[:n])
}

func (xmlEmitter) endDevice(b []byte) []byte { return append(b, "  </device>\n"...) }

func (xmlEmitter) run(b []byte, r thin.Run) []byte { return appendRun(b, r, &form090) }

// hrEmitter writes thin_dump's human_readable format.
type hrEmitter struct{}

func (hrEmitter) beginSuperblock(b []byte, h header) []byte {
	sb := h.sb
	b = append(b, `begin superblock: ""`...)
	for _, v := range []uint64{uint64(sb.Time), h.transactionID, uint64(sb.Flags), uint64(sb.Version), uint64(h.dataBlockSize), h.nrDataBlocks} {
		b = append(b, ", "...)
		b = strconv.AppendUint(b, v, 10)
	}
	return append(b, '\n')
}

func (hrEmitter) endSuperblock(b []byte) []byte { return append(b, "end superblock\n"...) }

func (hrEmitter) beginDevice(b []byte, id uint64, d thin.Details, blob []byte) []byte {
	b = append(b, "device: "...)
	if blob == nil {
		id = uint64(uint32(id))
	}
	b = strconv.AppendUint(b, id, 10)
	b = append(b, "\nmapped_blocks: "...)
	b = strconv.AppendUint(b, d.MappedBlocks, 10)
	b = append(b, "\ntransaction: "...)
	b = strconv.AppendUint(b, d.TransactionID, 10)
	b = append(b, "\ncreation time: "...)
	b = strconv.AppendUint(b, uint64(d.CreationTime), 10)
	b = append(b, "\nsnap time: "...)
	b = strconv.AppendUint(b, uint64(d.SnapshottedTime), 10)
	b = append(b, '\n')
	if blob != nil {
		b = append(b, "blob: "...)
		b = appendBlob(b, blob)
		b = append(b, '\n')
	}
	return b
}

func (hrEmitter) endDevice(b []byte) []byte { return append(b, '\n') }

func (hrEmitter) run(b []byte, r thin.Run) []byte {
	b = append(b, "    "...)
	if r.Len == 1 {
		b = strconv.AppendUint(b, r.VBlock, 10)
		b = append(b, " -> "...)
		b = strconv.AppendUint(b, r.Block, 10)
	} else {
		b = append(b, '(')
		b = strconv.AppendUint(b, r.VBlock, 10)
		b = append(b, ".."...)
		b = strconv.AppendUint(b, r.VBlock+r.Len-1, 10)
		b = append(b, ") -> ("...)
		b = strconv.AppendUint(b, r.Block, 10)
		b = append(b, ".."...)
		b = strconv.AppendUint(b, r.Block+r.Len-1, 10)
		b = append(b, ')')
	}
	b = append(b, ", "...)
	b = strconv.AppendUint(b, uint64(r.Time), 10)
	return append(b, '\n')
}
