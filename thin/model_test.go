package thin_test

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/thinmeta/thinmeta/thin"
)

// model is an independent in-memory picture of a pool: what the metadata
// should say after a sequence of operations.
type model struct {
	time      uint32
	trans     uint64
	nrData    uint64
	blockSize uint32
	devs      map[uint64]*mdev
}

type mdev struct {
	det  thin.Details
	maps map[uint64]thin.Mapping
}

func newModel(blockSize uint32, nrData uint64) *model {
	return &model{blockSize: blockSize, nrData: nrData, devs: map[uint64]*mdev{}}
}

func (m *model) clone() *model {
	c := *m
	c.devs = make(map[uint64]*mdev, len(m.devs))
	for id, d := range m.devs {
		c.devs[id] = &mdev{det: d.det, maps: maps.Clone(d.maps)}
	}
	return &c
}

// xml renders the model as thin_dump 0.9.0 prints it (an independent
// rendering: it shares no code with package dump).
func (m *model) xml(nrDataBlocks uint64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<superblock uuid=\"\" time=\"%d\" transaction=\"%d\" flags=\"0\" version=\"2\" data_block_size=\"%d\" nr_data_blocks=\"%d\">\n",
		m.time, m.trans, m.blockSize, nrDataBlocks)
	for _, id := range slices.Sorted(maps.Keys(m.devs)) {
		d := m.devs[id]
		fmt.Fprintf(&b, "  <device dev_id=\"%d\" mapped_blocks=\"%d\" transaction=\"%d\" creation_time=\"%d\" snap_time=\"%d\">\n",
			id, d.det.MappedBlocks, d.det.TransactionID, d.det.CreationTime, d.det.SnapshottedTime)
		keys := slices.Sorted(maps.Keys(d.maps))
		for i := 0; i < len(keys); {
			s := d.maps[keys[i]]
			j := i + 1
			for j < len(keys) && keys[j] == keys[j-1]+1 && d.maps[keys[j]].Block == d.maps[keys[j-1]].Block+1 && d.maps[keys[j]].Time == s.Time {
				j++
			}
			if j-i == 1 {
				fmt.Fprintf(&b, "    <single_mapping origin_block=\"%d\" data_block=\"%d\" time=\"%d\"/>\n", keys[i], s.Block, s.Time)
			} else {
				fmt.Fprintf(&b, "    <range_mapping origin_begin=\"%d\" data_begin=\"%d\" length=\"%d\" time=\"%d\"/>\n", keys[i], s.Block, j-i, s.Time)
			}
			i = j
		}
		b.WriteString("  </device>\n")
	}
	b.WriteString("</superblock>\n")
	return b.Bytes()
}
