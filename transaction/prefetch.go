package transaction

// prefetch is the state of a ReadAhead that reads its plans ahead of the
// scan (ReadAhead.Prefetch): the runs of the current plan, read in order,
// depth of them at a time, each on a goroutine of its own that reads the
// run with one ReadAt and validates its planned blocks with v.
type prefetch struct {
	v     *Validator
	depth int
	slots []*slot  // started, in plan order; slots[0] is the oldest
	left  []*slot  // started for plans before, not yet gone past; oldest first
	idle  []*slot  // done with, their buffers for reuse
	runs  []pfRun  // planned runs not yet started, in plan order
	keep  []uint64 // scratch: the planned blocks of a run
}

// pfRun is a run of blocks [first, end) to read in one go; planned says
// which of them the plan names (bit i: block first+i), the others being
// gaps of at most planGap blocks that are read to join them.
type pfRun struct {
	first, end uint64
	planned    []uint64
}

// slot is a run being read or read: once done is closed, n blocks from
// first are in buf (fewer than asked when the read came up short), and for
// each planned block i of them, errs[i] is its verdict under v and
// judged[i] is true.
type slot struct {
	first, want, n uint64
	buf            []byte
	errs           []error
	judged         []bool
	done           chan struct{}
}

// Prefetch makes a read each plan (Plan) ahead of the scan, on other
// goroutines: the planned runs, grouped as a planned miss groups them (see
// Plan), are read in plan order, at most depth of them (at least 1) ahead
// of the one the scan is in, and their planned blocks are validated with v
// as they arrive. A scan that spends time on each block (checking it,
// counting its entries) then overlaps that work with the device reads and
// checksums, on another core.
//
// What the scan gets does not change: a block is still taken from the
// Reader's cache when it holds it, a block asked for with a validator other
// than v is validated when it is asked for, and a block a read could not
// supply (a failed or short read, beyond the device) is read by the Reader
// again, which returns its error. A new plan waits for the reads of the
// plan before to end. Call Stop when the scan ends (or is abandoned), so
// that no read of a is still running.
//
// Prefetch is for scans that read most of what they plan; a plan the scan
// leaves mostly unread (nodes it skips because it has walked them before)
// costs reads that would not otherwise be made: leave such blocks out of
// the plan.
func (a *ReadAhead) Prefetch(v *Validator, depth int) {
	a.Stop()
	a.pf = &prefetch{v: v, depth: max(depth, 1)}
}

// Stop waits for every read Prefetch started to end, and forgets the runs
// not yet started and those read. The ReadAhead can go on: later plans are
// read ahead again.
func (a *ReadAhead) Stop() {
	pf := a.pf
	if pf == nil {
		return
	}
	pf.slots = pf.drain(pf.slots, len(pf.slots))
	pf.left = pf.drain(pf.left, len(pf.left))
	pf.runs = pf.runs[:0]
}

// drain waits for the reads of the first k of slots to end, makes them
// idle, and returns the rest.
func (pf *prefetch) drain(slots []*slot, k int) []*slot {
	for _, s := range slots[:k] {
		<-s.done
		pf.idle = append(pf.idle, s)
	}
	return append(slots[:0], slots[k:]...)
}

// maxLeft bounds, in units of depth, the runs a ReadAhead keeps from plans
// replaced: a walk plans the children of a node and, at the first of them
// that is internal, plans its children in turn; the runs read for the
// siblings wait, a level each, until the walk comes back up to them.
const maxLeft = 3

// replan replaces the runs to read ahead with those of plan and starts the
// first of them. The runs of the plan before that were started are kept
// (pf.left) for the walk to come back to, the oldest going beyond
// maxLeft*depth of them.
func (a *ReadAhead) replan(plan []uint64) {
	pf := a.pf
	pf.left = append(pf.left, pf.slots...)
	pf.slots, pf.runs = pf.slots[:0], pf.runs[:0]
	if over := len(pf.left) - maxLeft*pf.depth; over > 0 {
		pf.left = pf.drain(pf.left, over)
	}
	nr := a.r.NrBlocks()
	for i := 0; i < len(plan); {
		b := plan[i]
		if b >= nr {
			i++
			continue
		}
		pf.keep = append(pf.keep[:0], b)
		end := b + 1
		j := i + 1
		for ; j < len(plan); j++ {
			c := plan[j]
			if c < end || c-end > planGap || c-b >= a.max || c >= nr {
				break
			}
			pf.keep = append(pf.keep, c)
			end = c + 1
		}
		i = j
		bits := make([]uint64, (end-b+63)/64)
		for _, c := range pf.keep {
			bits[(c-b)/64] |= 1 << ((c - b) % 64)
		}
		pf.runs = append(pf.runs, pfRun{first: b, end: end, planned: bits})
	}
	a.startRuns()
}

// startRuns starts queued runs until depth of them are in flight or read.
func (a *ReadAhead) startRuns() {
	pf := a.pf
	for len(pf.slots) < pf.depth && len(pf.runs) > 0 {
		run := pf.runs[0]
		pf.runs = pf.runs[1:]
		var s *slot
		if k := len(pf.idle); k > 0 {
			s = pf.idle[k-1]
			pf.idle = pf.idle[:k-1]
		} else {
			s = &slot{}
		}
		want := run.end - run.first
		if uint64(cap(s.buf)) < want*BlockSize {
			s.buf = make([]byte, want*BlockSize)
			s.errs = make([]error, want)
			s.judged = make([]bool, want)
		}
		s.first, s.want, s.n = run.first, want, 0
		s.buf, s.errs, s.judged = s.buf[:want*BlockSize], s.errs[:want], s.judged[:want]
		s.done = make(chan struct{})
		pf.slots = append(pf.slots, s)
		go s.read(a.r, pf.v, run.planned)
	}
}

// read fills s from r's device and judges its planned blocks with v.
func (s *slot) read(r *Reader, v *Validator, planned []uint64) {
	defer close(s.done)
	got, _ := r.ra.ReadAt(s.buf, int64(s.first)*BlockSize)
	n := uint64(max(got, 0)) / BlockSize
	for i := range n {
		s.judged[i] = planned[i/64]&(1<<(i%64)) != 0
		if s.judged[i] {
			s.errs[i] = v.Validate(s.buf[i*BlockSize:(i+1)*BlockSize:(i+1)*BlockSize], s.first+i)
		} else {
			s.errs[i] = nil
		}
	}
	s.n = n
}

// prefetched returns block b from the runs read ahead, validated with v,
// if they hold it (ok). In the current plan, the runs before the one
// holding it are done with: the scan has gone past them. A block of a
// planned run not yet started means the scan skipped ahead: what was read
// ahead for the plan is dropped and reading starts again at b's run. A
// block of a plan replaced before is taken from its run, which is kept.
func (a *ReadAhead) prefetched(b uint64, v *Validator) (blk []byte, err error, ok bool) {
	pf := a.pf
	for k, s := range pf.slots {
		if b-s.first >= s.want {
			continue
		}
		<-s.done
		if k > 0 {
			pf.slots = pf.drain(pf.slots, k)
			a.startRuns()
		}
		return pf.take(s, b, v)
	}
	for k, run := range pf.runs {
		if b-run.first < run.end-run.first {
			pf.slots = pf.drain(pf.slots, len(pf.slots))
			pf.runs = append(pf.runs[:0], pf.runs[k:]...)
			a.startRuns()
			return a.prefetched(b, v)
		}
	}
	for k := len(pf.left) - 1; k >= 0; k-- {
		if s := pf.left[k]; b-s.first < s.want {
			<-s.done
			return pf.take(s, b, v)
		}
	}
	return nil, nil, false
}

// take returns block b of s, whose read has ended, validated with v, or
// false if the read came up short of it.
func (pf *prefetch) take(s *slot, b uint64, v *Validator) (blk []byte, err error, ok bool) {
	i := b - s.first
	if i >= s.n {
		return nil, nil, false
	}
	blk = s.buf[i*BlockSize : (i+1)*BlockSize : (i+1)*BlockSize]
	if v == pf.v && s.judged[i] {
		return blk, s.errs[i], true
	}
	return blk, v.Validate(blk, b), true
}
