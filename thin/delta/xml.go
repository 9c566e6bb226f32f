package delta

import (
	"bufio"
	"io"
	"strconv"
)

// xw appends XML attributes to a line buffer.
type xw struct {
	b []byte
}

func (x *xw) attr(name string, v uint64) {
	x.b = append(x.b, ' ')
	x.b = append(x.b, name...)
	x.b = append(x.b, '=', '"')
	x.b = strconv.AppendUint(x.b, v, 10)
	x.b = append(x.b, '"')
}

// side names the attribute of one side: left or right for a device,
// left_root or right_root for a tree given by its root block, as
// thin_delta 1.1.0 names them.
func side(name string, root bool) string {
	if root {
		return name + "_root"
	}
	return name
}

// WriteXML writes the delta in thin_delta's XML format. Without verbose,
// adjacent ranges of one kind are merged and printed as
// <KIND begin=".." length=".."/>; with verbose every range is printed with
// its data blocks, inside one <KIND> element per stretch of ranges of the
// same kind.
func (d *Delta) WriteXML(w io.Writer, verbose bool) error {
	bw := bufio.NewWriter(w)
	x := &xw{b: append([]byte(nil), `<superblock uuid=""`...)}
	x.attr("time", uint64(d.Time))
	x.attr("transaction", d.Transaction)
	x.attr("data_block_size", uint64(d.DataBlockSize))
	x.attr("nr_data_blocks", d.NrDataBlocks)
	if d.MetadataSnap != 0 {
		x.attr("metadata_snap", d.MetadataSnap)
	}
	x.b = append(x.b, ">\n  <diff"...)
	x.attr(side("left", d.LeftRoot), d.Left)
	x.attr(side("right", d.RightRoot), d.Right)
	x.b = append(x.b, ">\n"...)
	bw.Write(x.b)
	if verbose {
		d.writeVerbose(bw, x)
	} else {
		d.writeSimple(bw, x)
	}
	bw.WriteString("  </diff>\n</superblock>\n")
	return bw.Flush()
}

func (d *Delta) writeSimple(bw *bufio.Writer, x *xw) {
	var cur Range
	have := false
	emit := func() {
		if !have {
			return
		}
		x.b = append(x.b[:0], "    <"...)
		x.b = append(x.b, cur.Kind.String()...)
		x.attr("begin", cur.Begin)
		x.attr("length", cur.Len)
		x.b = append(x.b, "/>\n"...)
		bw.Write(x.b)
	}
	for r := range d.Ranges() {
		if have && r.Kind == cur.Kind && r.Begin == cur.Begin+cur.Len {
			cur.Len += r.Len
			continue
		}
		emit()
		cur, have = r, true
	}
	emit()
}

func (d *Delta) writeVerbose(bw *bufio.Writer, x *xw) {
	var cur Kind
	open := false
	for r := range d.Ranges() {
		if !open || r.Kind != cur {
			if open {
				bw.WriteString("    </" + cur.String() + ">\n")
			}
			bw.WriteString("    <" + r.Kind.String() + ">\n")
			cur, open = r.Kind, true
		}
		x.b = append(x.b[:0], "      <range"...)
		x.attr("begin", r.Begin)
		switch r.Kind {
		case LeftOnly:
			x.attr("data_begin", r.LeftData)
		case RightOnly:
			x.attr("data_begin", r.RightData)
		case Different:
			x.attr("left_data_begin", r.LeftData)
			x.attr("right_data_begin", r.RightData)
		case Same:
			x.attr("data_begin", r.LeftData)
		}
		x.attr("length", r.Len)
		x.b = append(x.b, "/>\n"...)
		bw.Write(x.b)
	}
	if open {
		bw.WriteString("    </" + cur.String() + ">\n")
	}
}
