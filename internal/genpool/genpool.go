// Package genpool generates random dm-thin pools as an in-memory model and
// writes them as thin_dump XML, for tests and benchmarks that restore them
// with thin_restore and compare thinmeta with thin-provisioning-tools.
package genpool

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

// Mapping is one mapped virtual block.
type Mapping struct {
	VBlock, Block uint64
	Time          uint32
}

// Device is a thin device and its mappings, sorted by VBlock.
type Device struct {
	ID           uint32
	MappedBlocks uint64 // as recorded in the details; normally len(Mappings)
	Transaction  uint64
	CreationTime uint32
	SnapTime     uint32
	Mappings     []Mapping
}

// Pool is a whole pool.
type Pool struct {
	Time          uint32
	Transaction   uint64
	DataBlockSize uint32
	NrDataBlocks  uint64
	Devices       []Device // sorted by ID
}

// Spec shapes a random pool.
type Spec struct {
	Devices int // number of thin devices
	// Mappings per origin device is uniform in [MinMappings, MaxMappings].
	MinMappings, MaxMappings int
	// MeanRun is the mean length of runs of consecutive virtual blocks
	// mapped to consecutive data blocks (1 gives mostly single mappings).
	MeanRun int
	// Sparsity is the mean gap between runs of virtual blocks.
	Sparsity int
	// SnapshotFraction of devices are snapshots of an earlier device: they
	// share its data blocks, with RewriteFraction of them rewritten to
	// new blocks after the snapshot.
	SnapshotFraction, RewriteFraction float64
	// Slack is the fraction of free data blocks beyond those used.
	Slack float64
	// MaxTime bounds mapping times (0 means 1000).
	MaxTime uint32
}

// Generate builds a random pool from spec.
func Generate(rng *rand.Rand, spec Spec) *Pool {
	if spec.MeanRun < 1 {
		spec.MeanRun = 1
	}
	if spec.MaxTime == 0 {
		spec.MaxTime = 1000
	}
	p := &Pool{
		DataBlockSize: 128 * uint32(1+rng.IntN(4)),
		Transaction:   rng.Uint64N(1000),
	}
	next := uint64(0) // data blocks are handed out in increasing runs, then shuffled by gaps
	alloc := func(n int) uint64 {
		b := next
		next += uint64(n)
		if rng.IntN(4) == 0 {
			next += uint64(rng.IntN(8)) // leave holes in the data device
		}
		return b
	}
	id := uint32(rng.IntN(3))
	for i := 0; i < spec.Devices; i++ {
		d := Device{ID: id, Transaction: rng.Uint64N(p.Transaction + 1)}
		id += 1 + uint32(rng.IntN(3))
		if i > 0 && rng.Float64() < spec.SnapshotFraction {
			origin := &p.Devices[rng.IntN(len(p.Devices))]
			t := uint32(rng.IntN(int(spec.MaxTime)))
			d.CreationTime, d.SnapTime = t, t
			origin.SnapTime = max(origin.SnapTime, t)
			for _, m := range origin.Mappings {
				if rng.Float64() < spec.RewriteFraction {
					m.Block = alloc(1)
					m.Time = t
				}
				d.Mappings = append(d.Mappings, m)
			}
		} else {
			n := spec.MinMappings
			if spec.MaxMappings > spec.MinMappings {
				n += rng.IntN(spec.MaxMappings - spec.MinMappings + 1)
			}
			t := uint32(rng.IntN(int(spec.MaxTime)))
			d.CreationTime, d.SnapTime = t, t
			v := uint64(rng.IntN(spec.Sparsity + 1))
			for len(d.Mappings) < n {
				run := 1 + rng.IntN(2*spec.MeanRun)
				run = min(run, n-len(d.Mappings))
				b := alloc(run)
				mt := uint32(rng.IntN(int(spec.MaxTime)))
				for j := range run {
					d.Mappings = append(d.Mappings, Mapping{VBlock: v + uint64(j), Block: b + uint64(j), Time: mt})
				}
				v += uint64(run)
				if spec.Sparsity > 0 {
					v += uint64(rng.IntN(2 * spec.Sparsity))
				}
			}
		}
		d.MappedBlocks = uint64(len(d.Mappings))
		p.Devices = append(p.Devices, d)
	}
	p.NrDataBlocks = next + uint64(float64(next)*spec.Slack) + 1
	for _, d := range p.Devices {
		p.Time = max(p.Time, d.SnapTime, d.CreationTime)
		for _, m := range d.Mappings {
			p.Time = max(p.Time, m.Time)
		}
	}
	return p
}

// TotalMappings returns the number of mappings of all devices.
func (p *Pool) TotalMappings() int {
	n := 0
	for _, d := range p.Devices {
		n += len(d.Mappings)
	}
	return n
}

// WriteXML writes the pool in thin_dump's XML format.
func (p *Pool) WriteXML(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "<superblock uuid=\"\" time=\"%d\" transaction=\"%d\" flags=\"0\" version=\"2\" data_block_size=\"%d\" nr_data_blocks=\"%d\">\n",
		p.Time, p.Transaction, p.DataBlockSize, p.NrDataBlocks)
	for _, d := range p.Devices {
		fmt.Fprintf(bw, "  <device dev_id=\"%d\" mapped_blocks=\"%d\" transaction=\"%d\" creation_time=\"%d\" snap_time=\"%d\">\n",
			d.ID, d.MappedBlocks, d.Transaction, d.CreationTime, d.SnapTime)
		var b []byte
		ms := d.Mappings
		for i := 0; i < len(ms); {
			j := i + 1
			for j < len(ms) && ms[j].VBlock == ms[j-1].VBlock+1 && ms[j].Block == ms[j-1].Block+1 && ms[j].Time == ms[i].Time {
				j++
			}
			b = b[:0]
			if j-i == 1 {
				b = append(b, "    <single_mapping origin_block=\""...)
				b = strconv.AppendUint(b, ms[i].VBlock, 10)
				b = append(b, "\" data_block=\""...)
				b = strconv.AppendUint(b, ms[i].Block, 10)
			} else {
				b = append(b, "    <range_mapping origin_begin=\""...)
				b = strconv.AppendUint(b, ms[i].VBlock, 10)
				b = append(b, "\" data_begin=\""...)
				b = strconv.AppendUint(b, ms[i].Block, 10)
				b = append(b, "\" length=\""...)
				b = strconv.AppendUint(b, uint64(j-i), 10)
			}
			b = append(b, "\" time=\""...)
			b = strconv.AppendUint(b, uint64(ms[i].Time), 10)
			b = append(b, "\"/>\n"...)
			bw.Write(b)
			i = j
		}
		fmt.Fprintf(bw, "  </device>\n")
	}
	fmt.Fprintf(bw, "</superblock>\n")
	return bw.Flush()
}

// MetadataBlocks estimates a metadata device size, in 4 KiB blocks, that
// comfortably holds the pool when restored.
func (p *Pool) MetadataBlocks() uint64 {
	n := uint64(p.TotalMappings())
	// Leaves hold up to 252 mappings; thin_restore fills them. Allow for
	// half-full leaves, internal nodes, details, bitmaps and slack.
	est := 2*n/126 + 4*uint64(len(p.Devices)) + p.NrDataBlocks/16320*2 + 1024
	return (est + 255) / 256 * 256
}
