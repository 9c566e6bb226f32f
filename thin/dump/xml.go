package dump

import (
	"bufio"
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

func (xmlEmitter) beginSuperblock(w *bufio.Writer, time uint32, trans uint64, flags, version, dataBlockSize uint32, nrDataBlocks uint64) {
	b := []byte(`<superblock uuid=""`)
	b = attr(b, "time", uint64(time))
	b = attr(b, "transaction", trans)
	b = attr(b, "flags", uint64(flags))
	b = attr(b, "version", uint64(version))
	b = attr(b, "data_block_size", uint64(dataBlockSize))
	b = attr(b, "nr_data_blocks", nrDataBlocks)
	b = append(b, ">\n"...)
	w.Write(b)
}

func (xmlEmitter) endSuperblock(w *bufio.Writer) { w.WriteString("</superblock>\n") }

func (xmlEmitter) beginDevice(w *bufio.Writer, id uint64, d thin.Details) {
	b := []byte("  <device")
	b = attr(b, "dev_id", uint64(uint32(id)))
	b = attr(b, "mapped_blocks", d.MappedBlocks)
	b = attr(b, "transaction", d.TransactionID)
	b = attr(b, "creation_time", uint64(d.CreationTime))
	b = attr(b, "snap_time", uint64(d.SnapshottedTime))
	b = append(b, ">\n"...)
	w.Write(b)
}

func (xmlEmitter) endDevice(w *bufio.Writer) { w.WriteString("  </device>\n") }

func (xmlEmitter) run(b []byte, r thin.Run) []byte {
	if r.Len == 1 {
		b = append(b, "    <single_mapping"...)
		b = attr(b, "origin_block", r.VBlock)
		b = attr(b, "data_block", r.Block)
	} else {
		b = append(b, "    <range_mapping"...)
		b = attr(b, "origin_begin", r.VBlock)
		b = attr(b, "data_begin", r.Block)
		b = attr(b, "length", r.Len)
	}
	b = attr(b, "time", uint64(r.Time))
	return append(b, "/>\n"...)
}

// hrEmitter writes thin_dump's human_readable format.
type hrEmitter struct{}

func (hrEmitter) beginSuperblock(w *bufio.Writer, time uint32, trans uint64, flags, version, dataBlockSize uint32, nrDataBlocks uint64) {
	b := []byte(`begin superblock: ""`)
	for _, v := range []uint64{uint64(time), trans, uint64(flags), uint64(version), uint64(dataBlockSize), nrDataBlocks} {
		b = append(b, ", "...)
		b = strconv.AppendUint(b, v, 10)
	}
	b = append(b, '\n')
	w.Write(b)
}

func (hrEmitter) endSuperblock(w *bufio.Writer) { w.WriteString("end superblock\n") }

func (hrEmitter) beginDevice(w *bufio.Writer, id uint64, d thin.Details) {
	b := []byte("device: ")
	b = strconv.AppendUint(b, uint64(uint32(id)), 10)
	b = append(b, "\nmapped_blocks: "...)
	b = strconv.AppendUint(b, d.MappedBlocks, 10)
	b = append(b, "\ntransaction: "...)
	b = strconv.AppendUint(b, d.TransactionID, 10)
	b = append(b, "\ncreation time: "...)
	b = strconv.AppendUint(b, uint64(d.CreationTime), 10)
	b = append(b, "\nsnap time: "...)
	b = strconv.AppendUint(b, uint64(d.SnapshottedTime), 10)
	b = append(b, '\n')
	w.Write(b)
}

func (hrEmitter) endDevice(w *bufio.Writer) { w.WriteString("\n") }

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
