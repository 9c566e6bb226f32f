package restore

import (
	"strings"
	"testing"
)

// A range longer than one op holds (2^32-1 mappings) reaches the builder
// as consecutive ops that together map exactly the range, each naming the
// range's line.
func TestLongRangeSplitIntoOps(t *testing.T) {
	const length = 2*maxOpLen + 7
	xml := `<superblock uuid="" time="0" transaction="0" data_block_size="128" nr_data_blocks="9000000000">
<device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">
<single_mapping origin_block="3" data_block="4" time="1"/>
<range_mapping origin_begin="10" data_begin="20" length="8589934597" time="5"/>
</device>
</superblock>
`
	p := newParser(newLexer(strings.NewReader(xml), nil), &Options{})
	if _, err := p.readHeader(); err != nil {
		t.Fatal(err)
	}
	var maps []op
	err := p.run(&batch{ops: make([]op, 0, 2)}, func(b *batch) (*batch, error) {
		for _, o := range b.ops {
			if o.kind() == opMap {
				maps = append(maps, o)
			}
		}
		b.reset()
		return b, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 4 || maps[0] != (op{a: 3, b: 4, n: 1, kt: 1, line: 3}) {
		t.Fatalf("ops %+v", maps)
	}
	origin, data, total := uint64(10), uint64(20), uint64(0)
	for _, o := range maps[1:] {
		if o.a != origin || o.b != data || o.time() != 5 || o.line != 4 || o.n == 0 {
			t.Fatalf("op %+v, want one from %d to %d at time 5, line 4", o, origin, data)
		}
		origin += uint64(o.n)
		data += uint64(o.n)
		total += uint64(o.n)
	}
	if total != length {
		t.Fatalf("ops map %d blocks, want %d", total, length)
	}
}
