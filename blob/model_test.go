package blob_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"github.com/thinmeta/thinmeta/thin"
)

// xmodel is an independent in-memory picture of an extended pool: what the
// metadata should say after a sequence of operations. It shares no code
// with packages thin, dump or blob.
type xmodel struct {
	time       uint32
	trans      uint64
	nrData     uint64
	blockSize  uint32
	blobSize   int
	indexBytes int
	nextID     uint64
	devs       map[uint64]*xdev
}

type xdev struct {
	det  thin.Details
	blob []byte
	maps map[uint64]thin.Mapping
}

func newXModel(blockSize uint32, nrData uint64, blobSize, indexBytes int) *xmodel {
	return &xmodel{blockSize: blockSize, nrData: nrData, blobSize: blobSize, indexBytes: indexBytes, devs: map[uint64]*xdev{}}
}

func (m *xmodel) clone() *xmodel {
	c := *m
	c.devs = make(map[uint64]*xdev, len(m.devs))
	for id, d := range m.devs {
		c.devs[id] = &xdev{det: d.det, blob: bytes.Clone(d.blob), maps: maps.Clone(d.maps)}
	}
	return &c
}

// keyWidth is how many leading blob bytes Find compares.
func (m *xmodel) keyWidth() int {
	if m.indexBytes > 0 {
		return m.indexBytes
	}
	return m.blobSize
}

// find returns the ids whose blob starts with key padded to the key width.
func (m *xmodel) find(key []byte) []uint64 {
	w := m.keyWidth()
	padded := make([]byte, w)
	copy(padded, key)
	var ids []uint64
	for id, d := range m.devs {
		if bytes.Equal(d.blob[:w], padded) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// xml renders the model as the extended XML form: thin_dump's format with
// blob_size, index_bytes and next_thin_id on the superblock, and each
// device's full 64-bit id and its blob in hex without trailing zero bytes.
// With renumber set, it renders the stock form instead, as thin_dump 0.9.0
// prints the downgraded pool, with ids renumbered as given.
func (m *xmodel) xml(nrDataBlocks uint64, stock bool, renumber map[uint64]uint64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<superblock uuid=\"\" time=\"%d\" transaction=\"%d\" flags=\"0\" version=\"2\" data_block_size=\"%d\" nr_data_blocks=\"%d\"",
		m.time, m.trans, m.blockSize, nrDataBlocks)
	if !stock {
		fmt.Fprintf(&b, " blob_size=\"%d\" index_bytes=\"%d\" next_thin_id=\"%d\"", m.blobSize, m.indexBytes, m.nextID)
	}
	b.WriteString(">\n")
	newID := func(id uint64) uint64 {
		if n, ok := renumber[id]; ok {
			return n
		}
		return id
	}
	ids := slices.Collect(maps.Keys(m.devs))
	slices.SortFunc(ids, func(a, b uint64) int {
		x, y := newID(a), newID(b)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	for _, id := range ids {
		d := m.devs[id]
		fmt.Fprintf(&b, "  <device dev_id=\"%d\" mapped_blocks=\"%d\" transaction=\"%d\" creation_time=\"%d\" snap_time=\"%d\"",
			newID(id), d.det.MappedBlocks, d.det.TransactionID, d.det.CreationTime, d.det.SnapshottedTime)
		if !stock {
			fmt.Fprintf(&b, " blob=\"%s\"", hex.EncodeToString(bytes.TrimRight(d.blob, "\x00")))
		}
		b.WriteString(">\n")
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

// renumbering returns what Downgrade must do to the model's ids: ids
// beyond 24 bits, in order, take the lowest ids no thin has.
func (m *xmodel) renumbering() map[uint64]uint64 {
	used := map[uint64]bool{}
	var big []uint64
	for id := range m.devs {
		if id > thin.MaxStockDeviceID {
			big = append(big, id)
		} else {
			used[id] = true
		}
	}
	slices.Sort(big)
	r := map[uint64]uint64{}
	next := uint64(0)
	for _, id := range big {
		for used[next] {
			next++
		}
		r[id] = next
		next++
	}
	return r
}
