// Command genxml writes a large, deterministic dm-thin pool as thin_dump XML,
// for the performance comparison in bench/compare.sh.
//
// The pool has -thins thin devices of exactly -mappings mappings each. Some
// devices are origins: their mappings are a mix of single mappings and runs
// of consecutive virtual blocks on consecutive data blocks, with gaps
// between them. The others are snapshots of an earlier device: they map the
// same virtual blocks, mostly to the same (shared) data blocks, with a
// fraction rewritten in chunks to data blocks of their own (exclusive).
//
// The XML is streamed: nothing of size proportional to the mappings is held
// in memory. A snapshot's mappings are produced by regenerating its origin's
// from the origin's seed, which is why every device draws its data blocks
// from a region of its own, computed in a cheap first pass.
//
// The same flags and seed always give the same bytes.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
)

// params shape the pool.
type params struct {
	thins, mappings int
	seed            uint64
	snapFrac        float64 // fraction of devices that are snapshots
	rewriteFrac     float64 // fraction of a snapshot's mappings rewritten
	singleFrac      float64 // fraction of origin runs that are single mappings
	maxRun          int     // longest origin run
	maxDepth        int     // longest chain of snapshots of snapshots
}

// device is the plan of one thin device: enough to regenerate its mappings.
type device struct {
	id       uint32
	origin   int // index of the origin device, or -1
	depth    int // 0 for an origin, origin's depth + 1 for a snapshot
	seed     uint64
	base     uint64 // first data block of the device's own region
	extent   uint64 // size of that region
	trans    uint64
	ctime    uint32 // creation time
	snapTime uint32 // creation time or time of the latest snapshot of it
}

type pool struct {
	p       params
	devs    []device
	time    uint32
	trans   uint64
	nrBlock uint64
}

// plan lays out the devices: which are snapshots of which, their seeds,
// times and data regions.
func plan(p params) *pool {
	rng := rand.New(rand.NewPCG(p.seed, 0x7468696e6d657461))
	pl := &pool{p: p}
	for i := range p.thins {
		d := device{id: uint32(i + 1), origin: -1, seed: rng.Uint64(), ctime: uint32(2 * i), trans: uint64(i)}
		if i > 0 && rng.Float64() < p.snapFrac {
			o := rng.IntN(i)
			for pl.devs[o].depth >= p.maxDepth {
				o = pl.devs[o].origin
			}
			d.origin, d.depth = o, pl.devs[o].depth+1
		}
		d.snapTime = d.ctime
		if d.origin >= 0 {
			pl.devs[d.origin].snapTime = d.ctime
		}
		pl.devs = append(pl.devs, d)
	}
	// First pass: the size of each device's region does not depend on
	// where the region starts, so generate with base 0 and lay out.
	next := uint64(0)
	for i := range pl.devs {
		pl.mappings(i, func(_, _ uint64, _ uint32) {})
		pl.devs[i].base = next
		next += pl.devs[i].extent
	}
	pl.nrBlock = next + next/10 + 1
	pl.time = uint32(2*p.thins) + 8
	pl.trans = uint64(p.thins) + 1
	return pl
}

// mappings calls fn for each mapping of device i in virtual-block order
// and records the device's region size.
func (pl *pool) mappings(i int, fn func(vblock, block uint64, time uint32)) {
	d := &pl.devs[i]
	rng := rand.New(rand.NewPCG(d.seed, uint64(i)))
	next := d.base
	if d.origin < 0 {
		n := pl.p.mappings
		v := uint64(rng.IntN(64))
		for n > 0 {
			run := 1
			if rng.Float64() >= pl.p.singleFrac {
				run = 2 + rng.IntN(pl.p.maxRun-1)
			}
			run = min(run, n)
			t := d.ctime + uint32(rng.IntN(2))
			for j := range run {
				fn(v+uint64(j), next+uint64(j), t)
			}
			next += uint64(run)
			if rng.IntN(4) == 0 {
				next += uint64(rng.IntN(8)) // holes in the data device
			}
			n -= run
			v += uint64(run)
			if rng.IntN(3) != 0 {
				v += 1 + uint64(rng.IntN(40))
			}
		}
	} else {
		// Rewrites come in chunks of 1..16 mappings; start a chunk with the
		// probability that gives rewriteFrac on average.
		start := pl.p.rewriteFrac / 8.5
		left := 0
		var t uint32
		pl.mappings(d.origin, func(v, b uint64, ot uint32) {
			if left == 0 && rng.Float64() < start {
				left = 1 + rng.IntN(16)
				t = d.ctime + 1
				if rng.IntN(8) == 0 {
					next += uint64(rng.IntN(4))
				}
			}
			if left > 0 {
				left--
				fn(v, next, t)
				next++
				return
			}
			fn(v, b, ot)
		})
	}
	d.extent = next - d.base
}

func (pl *pool) write(w *bufio.Writer) error {
	b := make([]byte, 0, 256)
	b = append(b, `<superblock uuid="" time="`...)
	b = strconv.AppendUint(b, uint64(pl.time), 10)
	b = append(b, `" transaction="`...)
	b = strconv.AppendUint(b, pl.trans, 10)
	b = append(b, `" flags="0" version="2" data_block_size="128" nr_data_blocks="`...)
	b = strconv.AppendUint(b, pl.nrBlock, 10)
	b = append(b, "\">\n"...)
	w.Write(b)
	for i, d := range pl.devs {
		b = append(b[:0], `  <device dev_id="`...)
		b = strconv.AppendUint(b, uint64(d.id), 10)
		b = append(b, `" mapped_blocks="`...)
		b = strconv.AppendUint(b, uint64(pl.p.mappings), 10)
		b = append(b, `" transaction="`...)
		b = strconv.AppendUint(b, d.trans, 10)
		b = append(b, `" creation_time="`...)
		b = strconv.AppendUint(b, uint64(d.ctime), 10)
		b = append(b, `" snap_time="`...)
		b = strconv.AppendUint(b, uint64(d.snapTime), 10)
		b = append(b, "\">\n"...)
		w.Write(b)
		var cur struct {
			v, b, n uint64
			t       uint32
		}
		flush := func() {
			if cur.n == 0 {
				return
			}
			if cur.n == 1 {
				b = append(b[:0], `    <single_mapping origin_block="`...)
				b = strconv.AppendUint(b, cur.v, 10)
				b = append(b, `" data_block="`...)
				b = strconv.AppendUint(b, cur.b, 10)
			} else {
				b = append(b[:0], `    <range_mapping origin_begin="`...)
				b = strconv.AppendUint(b, cur.v, 10)
				b = append(b, `" data_begin="`...)
				b = strconv.AppendUint(b, cur.b, 10)
				b = append(b, `" length="`...)
				b = strconv.AppendUint(b, cur.n, 10)
			}
			b = append(b, `" time="`...)
			b = strconv.AppendUint(b, uint64(cur.t), 10)
			b = append(b, "\"/>\n"...)
			w.Write(b)
		}
		pl.mappings(i, func(v, blk uint64, t uint32) {
			if cur.n > 0 && v == cur.v+cur.n && blk == cur.b+cur.n && t == cur.t {
				cur.n++
				return
			}
			flush()
			cur.v, cur.b, cur.n, cur.t = v, blk, 1, t
		})
		flush()
		w.WriteString("  </device>\n")
	}
	w.WriteString("</superblock>\n")
	return w.Flush()
}

func main() {
	var p params
	var out string
	var info, pair bool
	flag.IntVar(&p.thins, "thins", 50, "number of thin devices")
	flag.IntVar(&p.mappings, "mappings", 200000, "mappings per thin device")
	flag.Uint64Var(&p.seed, "seed", 1, "random seed")
	flag.Float64Var(&p.snapFrac, "snapshots", 0.4, "fraction of devices that are snapshots of an earlier one")
	flag.Float64Var(&p.rewriteFrac, "rewrite", 0.2, "fraction of a snapshot's mappings rewritten to its own blocks")
	flag.Float64Var(&p.singleFrac, "singles", 0.5, "fraction of origin runs that are single mappings")
	flag.IntVar(&p.maxRun, "max-run", 32, "longest run of an origin (at least 2)")
	flag.IntVar(&p.maxDepth, "max-depth", 3, "longest chain of snapshots of snapshots")
	flag.StringVar(&out, "o", "-", "output file (- for standard output)")
	flag.BoolVar(&info, "info", false, "print the pool's shape to standard error")
	flag.BoolVar(&pair, "pair", false, "print the ids of the first snapshot's origin and of the snapshot (for thin_delta), write no XML")
	flag.Parse()
	if p.thins < 1 || p.mappings < 0 || p.maxRun < 2 || p.maxDepth < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "genxml: bad arguments; see genxml -h")
		os.Exit(2)
	}
	pl := plan(p)
	if pair {
		for _, d := range pl.devs {
			if d.origin >= 0 {
				fmt.Println(pl.devs[d.origin].id, d.id)
				return
			}
		}
		fmt.Fprintln(os.Stderr, "genxml: the pool has no snapshot")
		os.Exit(1)
	}
	f := os.Stdout
	if out != "-" {
		var err error
		if f, err = os.Create(out); err != nil {
			fmt.Fprintln(os.Stderr, "genxml:", err)
			os.Exit(1)
		}
	}
	if err := pl.write(bufio.NewWriterSize(f, 1<<20)); err != nil {
		fmt.Fprintln(os.Stderr, "genxml:", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "genxml:", err)
		os.Exit(1)
	}
	if info {
		snaps := 0
		for _, d := range pl.devs {
			if d.origin >= 0 {
				snaps++
			}
		}
		fmt.Fprintf(os.Stderr, "genxml: %d thins (%d snapshots), %d mappings, %d data blocks\n",
			len(pl.devs), snaps, len(pl.devs)*p.mappings, pl.nrBlock)
	}
}
