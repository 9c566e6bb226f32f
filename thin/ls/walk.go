package ls

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/transaction"
)

// readAheadBlocks bounds a planned read: 64 blocks (256 KiB) stay in L2,
// as thin/dump measured.
const readAheadBlocks = 64

// maxSummaries bounds the leaf summaries one listing keeps (16 bytes each:
// 2 MiB), whatever the size of the pool: enough for every leaf of a pool of
// 10M mappings in half-full leaves.
var maxSummaries int64 = 1 << 17 // a variable for the tests

// A leafSum describes one leaf the counting walk read, so that the
// exclusive walk can often do without reading it again: the leaf's block
// (low 48 bits) and number of mappings (high 16), and the lowest data
// block it maps (low 40 bits) and how far above that its highest lies
// (high 24). When no block in that range is counted more than once, every
// mapping of the leaf is exclusive; when none is counted exactly once, no
// mapping is.
type leafSum struct{ blk, rng uint64 }

func (s leafSum) block() uint64 { return s.blk & (1<<48 - 1) }
func (s leafSum) nr() uint64    { return s.blk >> 48 }
func (s leafSum) lo() uint64    { return s.rng & (1<<40 - 1) }
func (s leafSum) hi() uint64    { return s.lo() + s.rng>>40 }

// sumChunk is how many summaries a sumList allocates at a time (8 KiB), so
// that a list grows without copies left for the collector.
const sumChunk = 512

// A sumList holds one device's leaf summaries in walk order.
type sumList struct {
	chunks [][]leafSum
	n      int
}

func (l *sumList) add(s leafSum) {
	if l.n%sumChunk == 0 {
		l.chunks = append(l.chunks, make([]leafSum, 0, sumChunk))
	}
	c := &l.chunks[len(l.chunks)-1]
	*c = append(*c, s)
	l.n++
}

func (l *sumList) at(i int) leafSum { return l.chunks[i/sumChunk][i%sumChunk] }

// maxSumSpan is how many data blocks a leaf's summary may span for each
// of its mappings (plus one). decide scans the whole span in the worst
// case, a word of 64 blocks at a time, so this bounds its work to about two
// words a mapping: less than reading the leaf again would cost. A leaf
// whose mappings lie scattered over the data device (a pool whose free
// blocks were handed out again in no order) is not summarised, and is read
// again instead.
const maxSumSpan = 128

// summarise returns the summary of leaf b, or false if it does not fit one
// or spans too many data blocks for its mappings (maxSumSpan).
func summarise(b uint64, nr int, lo, hi uint64) (leafSum, bool) {
	if b >= 1<<48 || nr >= 1<<16 || lo >= 1<<40 || hi-lo >= uint64(nr+1)*maxSumSpan {
		return leafSum{}, false
	}
	return leafSum{blk: b | uint64(nr)<<48, rng: lo | (hi-lo)<<40}, true
}

// walkReader walks device trees for one goroutine. Its walks plan their
// reads (btree.Walker.Plan): each internal node tells the ReadAhead which
// children come next, so the runs of leaves thin_restore and the kernel
// write are read in one read each and lent without a copy, and blocks of
// other trees are not read along. The checks are those of the tools'
// B-tree walks (btree.ToolConventions), as thin/internal/walk's.
//
// The exclusive walk of a device whose leaves the counting walk summarised
// skips each leaf its summary settles: it leaves it out of the plans it
// hands the ReadAhead (so it is not read) and the Walker does not enter
// it. Every leaf skipped was read and checked by the counting walk.
type walkReader struct {
	ra *transaction.ReadAhead
	w  *btree.Walker
	m  *meter.Meter

	pending uint64 // mappings walked not yet added to m

	budget *atomic.Int64 // summaries the listing may still keep
	rec    *sumList      // where the counting walk records summaries
	log    *runLog       // where the counting walk logs runs

	sums *sumList // the exclusive walk's summaries, in walk order
	at   int      // the next of them
	k    *cursor  // the counts the exclusive walk reads
	n    uint64   // exclusive mappings of skipped leaves
	err  error    // from the meter, in Enter
	plan []byte
}

// planner is the walkReader's ReadAhead, whose plans leave out the leaves
// the exclusive walk skips.
type planner struct {
	*transaction.ReadAhead
	wr *walkReader
}

func newWalkReader(p *thin.Pool, m *meter.Meter, budget *atomic.Int64) *walkReader {
	wr := &walkReader{ra: transaction.NewReadAhead(p.Reader(), readAheadBlocks), m: m, budget: budget}
	wr.w = &btree.Walker{R: planner{wr.ra, wr}, ValueSize: thin.MappingValueSize, Conventions: btree.ToolConventions, Plan: true}
	return wr
}

// Plan hands the ReadAhead the planned blocks less those the exclusive
// walk will skip: the children of a bottom internal node are the next
// leaves in walk order, so they meet the summaries from wr.at on.
func (p planner) Plan(next []byte) {
	wr := p.wr
	if wr.sums == nil || wr.at >= wr.sums.n {
		p.ReadAhead.Plan(next)
		return
	}
	wr.plan = wr.plan[:0]
	j := wr.at
	for i := 0; i+8 <= len(next); i += 8 {
		v := binary.LittleEndian.Uint64(next[i:])
		if j < wr.sums.n && wr.sums.at(j).block() == v {
			s := wr.sums.at(j)
			j++
			if skip, _ := wr.decide(s); skip {
				continue
			}
		}
		wr.plan = append(wr.plan, next[i:i+8]...)
	}
	p.ReadAhead.Plan(wr.plan)
}

// decide reports whether the counts settle leaf s, and if so how many of
// its mappings are exclusive.
func (wr *walkReader) decide(s leafSum) (skip bool, excl uint64) {
	once, multi := false, false
	b, n := s.lo(), s.hi()-s.lo()+1
	for n > 0 && !(once && multi) {
		w, bit := (b>>6)&(pageWords-1), b&63
		m := min(n, 64-bit)
		if pg := wr.k.page(b>>pageShift, false); pg != nil {
			mask := span(bit, m)
			once = once || (pg.seen[w]&^pg.multi[w])&mask != 0
			multi = multi || pg.multi[w]&mask != 0
		}
		b, n = b+m, n-m
	}
	switch {
	case !multi:
		return true, s.nr()
	case !once:
		return true, 0
	}
	return false, 0
}

// enter is the exclusive walk's Walker.Enter: it skips the leaves their
// summaries settle, counting their exclusive mappings.
func (wr *walkReader) enter(b uint64, _ btree.Place) bool {
	if wr.err != nil {
		return false // cancelled: read nothing more
	}
	if wr.at >= wr.sums.n || wr.sums.at(wr.at).block() != b {
		return true
	}
	s := wr.sums.at(wr.at)
	wr.at++
	skip, excl := wr.decide(s)
	if !skip {
		return true
	}
	if err := wr.add(s.nr()); err != nil && wr.err == nil {
		wr.err = err
	}
	wr.n += excl
	return false
}

// meterBatch is how many mappings a walkReader counts before it adds them
// to the meter: the meter's count is shared by the goroutines, and adding
// to it for every leaf cost 3.5% of a listing.
const meterBatch = 1 << 14

// add counts n mappings walked and returns the meter's Err, which it
// checks every time: a cancelled listing stops at the next leaf.
func (wr *walkReader) add(n uint64) error {
	if err := wr.m.Err(); err != nil {
		return err
	}
	if wr.pending += n; wr.pending >= meterBatch {
		return wr.flush()
	}
	return nil
}

// flush adds the mappings walked to the meter and returns its Err: the
// progress reported may have cancelled the listing.
func (wr *walkReader) flush() error {
	n := wr.pending
	wr.pending = 0
	if err := wr.m.Add(n); err != nil {
		return err
	}
	return wr.m.Err()
}

// runs goes through every run of mappings of the tree at root whose data
// blocks are consecutive (b, b+1, ... b+n-1) within a leaf, in key order.
// Damage ends the walk with a *transaction.CorruptError. With wr.rec set
// it records a summary of every leaf while the budget lasts; with wr.log
// set it logs every run but those whose blocks were all counted before.
// Counting, it counts them into k; else it returns how many of them k's
// set counts exactly once.
func (wr *walkReader) runs(root uint64, k *cursor, counting bool) (uint64, error) {
	var excl uint64
	lg := wr.log
	w := wr.w
	w.Reset(root)
	for {
		b, n, _, ok := w.Next()
		if !ok {
			if wr.err != nil {
				return 0, wr.err
			}
			if err := w.Err(); err != nil {
				return 0, err
			}
			return excl, wr.flush()
		}
		if !n.IsLeaf() {
			continue
		}
		// The walk checked the header: nr_entries values of 8 bytes fit
		// in the block after max_entries keys.
		nr := n.NrEntries()
		off := btree.HeaderSize + 8*n.MaxEntries()
		vals := n[off : off+8*nr]
		if err := wr.add(uint64(nr)); err != nil {
			return 0, err
		}
		if lg != nil {
			lg.mapped += uint64(nr)
		}
		if nr == 0 {
			continue
		}
		start := binary.LittleEndian.Uint64(vals) >> 24
		next := start + 1
		lo, hi := start, start
		// end counts the run [start, next) and starts one at b.
		end := func(b uint64) {
			if counting {
				if !k.inc(start, next-start) && lg != nil {
					lg.add(start, next-start)
				}
			} else {
				excl += k.once(start, next-start)
			}
			lo, hi = min(lo, start), max(hi, next-1)
			start = b
		}
		i := 8
		// Runs are long (21 blocks on average in the bench pool): four
		// values at a time are first tried as the run's next four, one
		// branch for the four.
		for ; i+32 <= len(vals); i += 32 {
			q := vals[i : i+32]
			b0 := binary.LittleEndian.Uint64(q[0:]) >> 24
			b1 := binary.LittleEndian.Uint64(q[8:]) >> 24
			b2 := binary.LittleEndian.Uint64(q[16:]) >> 24
			b3 := binary.LittleEndian.Uint64(q[24:]) >> 24
			if (b0^next)|(b1^(next+1))|(b2^(next+2))|(b3^(next+3)) == 0 {
				next += 4
				continue
			}
			for _, b := range [4]uint64{b0, b1, b2, b3} {
				if b != next {
					end(b)
				}
				next = b + 1
			}
		}
		for ; i < len(vals); i += 8 {
			b := binary.LittleEndian.Uint64(vals[i:]) >> 24
			if b != next {
				end(b)
			}
			next = b + 1
		}
		end(0)
		// A device whose log is whole needs no summaries: its exclusive
		// count comes from the log. Summaries are kept for the leaves
		// walked after its log ran out of room.
		if wr.rec != nil && (lg == nil || !lg.complete()) {
			if s, ok := summarise(b, nr, lo, hi); ok && wr.budget.Add(-1) >= 0 {
				wr.rec.add(s)
			}
		}
	}
}

// inc counts every mapping of the tree at root into k, recording leaf
// summaries in *rec and logging runs in *log.
func (wr *walkReader) inc(root uint64, k *cursor, rec *sumList, log *runLog) error {
	wr.rec, wr.log = rec, log
	defer func() { wr.rec, wr.log = nil, nil }()
	_, err := wr.runs(root, k, true)
	return err
}

// exclusive counts the mappings of the tree at root whose block k's set
// counts exactly once; sums are the counting walk's summaries of its
// leaves.
func (wr *walkReader) exclusive(root uint64, k *cursor, sums *sumList) (uint64, error) {
	wr.sums, wr.at, wr.k, wr.n, wr.err = sums, 0, k, 0, nil
	wr.w.Enter = wr.enter
	defer func() { wr.sums, wr.w.Enter = nil, nil }()
	n, err := wr.runs(root, k, false)
	return n + wr.n, err
}

// exclusiveLogged counts, as exclusive does, the mappings of a device
// whose counting walk logged its runs in log, without reading its tree.
func (wr *walkReader) exclusiveLogged(log *runLog, k *cursor) (uint64, error) {
	var excl, done uint64
	err := log.each(func(b, n uint64) error {
		excl += k.once(b, n)
		done += n
		return wr.add(n)
	})
	if err == nil {
		err = wr.add(log.mapped - done) // the runs not logged
	}
	if err != nil {
		return 0, err
	}
	return excl, wr.flush()
}
