package check

import (
	"encoding/binary"
	"fmt"
	"iter"
	"math/bits"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/refcount"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// smInfo is what the check learns of one space map's structure.
type smInfo struct {
	area     string
	root     spacemap.Root
	index    []spacemap.IndexEntry
	overflow ovBatch // the metadata map's overflow entries, in key order
	metadata bool
	ok       bool
}

// overflowEntry is an entry of an overflow tree: a block's full count.
type overflowEntry struct {
	block uint64
	count uint32
}

// ovBatch holds entries of an overflow tree in its leaves' own encoding
// (keys, then counts; FORMAT.md §3.1, §3.6): decoding them only as compare
// reaches them, rather than into a slice of overflowEntry at each leaf,
// saves a store and a load of each (3 ms of the bench pool's check).
type ovBatch struct {
	keys, vals []byte
}

func (o ovBatch) len() int { return len(o.keys) / 8 }

// checkSpaceMaps counts the blocks of both space maps, then compares the
// counts they record with the references found. Every block is read once:
// the data map's overflow tree, which can be large, is walked while the
// data bitmaps are compared; the metadata map's, whose nodes must all be
// counted before the metadata bitmaps are compared, is read first and kept.
func (c *checker) checkSpaceMaps(live *superblock.Superblock) {
	sound := c.sum.Fatal == c.countsFatal // the references found are complete
	msm := c.loadSpaceMap("metadata space map", live.MetadataSpaceMapRoot[:], true)
	dsm := c.loadSpaceMap("data space map", live.DataSpaceMapRoot[:], false)
	ovOK := false
	ov := c.overflowWalk(dsm, &ovOK)
	if sound && dsm.ok && c.data != nil {
		// Pulled a leaf at a time: the walk is suspended at a leaf's
		// end, exactly where an entry at a time suspends it, so findings
		// come in the same order, but with a coroutine switch per leaf
		// rather than per entry (40 ms of the 10M bench pool's check).
		next, stop := iter.Pull(ov)
		c.sum.LeakedData = c.compare(dsm, c.data, dsm.root.NrBlocks, next)
		for _, more := next(); more; _, more = next() {
			// Finish the walk: every node is checked and counted.
		}
		stop()
	} else {
		for range ov {
		}
	}
	if !sound || !msm.ok || !dsm.ok || !ovOK || c.data == nil {
		return
	}
	c.sum.SpaceMapsChecked = true
	// Blocks in use beyond the end of the metadata space map were reported
	// by countMeta. Blocks beyond the device but within the space map must be free, as
	// thin_check 0.9.0 requires.
	ents := msm.overflow
	c.sum.LeakedMetadata = c.compare(msm, c.meta, msm.root.NrBlocks, func() (ovBatch, bool) {
		e := ents
		ents = ovBatch{}
		return e, e.len() > 0
	})
}

// overflowWalk walks a space map's overflow tree, checking and counting
// its nodes, and yields the entries of each leaf that has any, in key
// order; the batch is the leaf's own bytes, valid until the walk goes on.
// *ok reports, once the walk is over, whether every node was sound.
func (c *checker) overflowWalk(s smInfo, ok *bool) iter.Seq[ovBatch] {
	return func(yield func(ovBatch) bool) {
		more := true
		_, *ok = c.walk(s.root.RefCountRoot, &walkCtx{
			kind: kindOverflow, area: s.area, valueSize: spacemap.RefCountValueSize,
			leaf: func(_ uint64, n btree.Node) {
				if !more || n.NrEntries() == 0 {
					return
				}
				// The walker has checked the node: its keys and values
				// (of RefCountValueSize bytes) are all there.
				nr := n.NrEntries()
				more = yield(ovBatch{keys: n[btree.HeaderSize : btree.HeaderSize+8*nr],
					vals: n.ValueBytes()[:spacemap.RefCountValueSize*nr]})
			},
		})
	}
}

// loadSpaceMap reads a space map's index and counts its own metadata
// blocks: the index (block or tree), the bitmaps and, for the metadata
// map, the overflow tree.
func (c *checker) loadSpaceMap(area string, slot []byte, metadata bool) smInfo {
	s := smInfo{area: area, root: spacemap.DecodeRoot(slot), metadata: metadata}
	want := spacemap.NrBitmaps(s.root.NrBlocks)
	fatal := c.sum.Fatal
	if metadata {
		if want > spacemap.MaxMetadataBitmaps {
			c.fatalf(area, nil, fmt.Errorf("%w: %d blocks need %d bitmaps, more than %d",
				spacemap.ErrIndex, s.root.NrBlocks, want, spacemap.MaxMetadataBitmaps))
			return s
		}
		if !c.countMeta(s.root.BitmapRoot, kindMetadataIndex, area) {
			return s
		}
		if !c.tick() {
			return s
		}
		buf := c.buf(0)
		if err := c.r.ReadInto(s.root.BitmapRoot, buf, spacemap.IndexValidator); err != nil {
			c.fatalf(area, nil, err)
			return s
		}
		for i := range want {
			s.index = append(s.index, spacemap.MetadataIndexEntry(buf, int(i)))
		}
	} else {
		bad := false
		c.walk(s.root.BitmapRoot, &walkCtx{
			kind: kindDataIndex, area: area, valueSize: spacemap.IndexEntrySize,
			leaf: func(b uint64, n btree.Node) {
				for i := range n.NrEntries() {
					if k := n.Key(i); k != uint64(len(s.index)) || k >= want {
						if !bad {
							c.fatalf(area, nil, transaction.Corruptf(b, btree.Kind, spacemap.ErrIndex,
								"index key %d where %d was expected (%d bitmaps for %d blocks)", k, len(s.index), want, s.root.NrBlocks))
						}
						bad = true
						return
					}
					s.index = append(s.index, spacemap.DecodeIndexEntry(n.Value(i)))
				}
			},
		})
		if !bad && c.sum.Fatal == fatal && uint64(len(s.index)) != want {
			c.fatalf(area, nil, fmt.Errorf("%w: %d index entries, %d bitmaps needed for %d blocks",
				spacemap.ErrIndex, len(s.index), want, s.root.NrBlocks))
		}
	}
	for _, ie := range s.index {
		c.countMeta(ie.Blocknr, kindBitmap, area)
	}
	if metadata {
		ok := false
		for ents := range c.overflowWalk(s, &ok) {
			s.overflow.keys = append(s.overflow.keys, ents.keys...)
			s.overflow.vals = append(s.overflow.vals, ents.vals...)
		}
	}
	s.ok = c.sum.Fatal == fatal
	return s
}

// ovCursor goes through the entries of an overflow tree in key order, as
// batches from next: cur is the entry it is at, while more.
type ovCursor struct {
	cur   overflowEntry
	batch ovBatch // the entries after cur in its batch
	more  bool
	next  func() (ovBatch, bool)
}

// advance moves to the next entry (more false past the last).
func (o *ovCursor) advance() {
	if len(o.batch.keys) < 8 || len(o.batch.vals) < spacemap.RefCountValueSize {
		o.refill()
		return
	}
	o.take()
}

// take moves to the first entry of batch, which has one.
func (o *ovCursor) take() {
	o.cur = overflowEntry{binary.LittleEndian.Uint64(o.batch.keys), spacemap.DecodeRefCount(o.batch.vals)}
	o.batch.keys, o.batch.vals = o.batch.keys[8:], o.batch.vals[spacemap.RefCountValueSize:]
}

// refill moves to the first entry of the next batch.
func (o *ovCursor) refill() {
	if o.batch, o.more = o.next(); o.more {
		o.take()
	}
}

// compare reads every bitmap of a space map and compares the counts with
// the references found, for blocks [0, n), taking counts of 3 or more from
// next, which yields the overflow tree's entries in key order, in
// non-empty batches. It returns the number of leaked blocks.
func (c *checker) compare(s smInfo, want *refcount.Counts, n uint64, next func() (ovBatch, bool)) (leaked uint64) {
	// A bitmap entry of 3 defers to the overflow tree, whose value is the
	// count — even a value below 3, as the kernel reads it.
	ov := ovCursor{next: next}
	ov.refill()
	overflow := func(b uint64) (uint32, bool) {
		for ov.more && ov.cur.block < b {
			ov.advance()
		}
		if !ov.more || ov.cur.block != b {
			c.fatalf(s.area, nil, fmt.Errorf("%w: block %d is counted 3 or more in its bitmap but the overflow tree has no count for it",
				spacemap.ErrOverflow, b))
			return 0, false
		}
		return ov.cur.count, true
	}

	// judge compares block b's bitmap entry got (3: see the overflow
	// tree) with e, its count as the planes hold it (saturated: look it
	// up).
	judge := func(b uint64, got, e uint32) {
		if got == 3 {
			v, ok := overflow(b)
			if !ok {
				return
			}
			got = v
		}
		if e == refcount.Saturated {
			e = want.Get(b)
		}
		if got != e {
			if got > e {
				leaked++
				c.nonFatalf(s.area, nil, &CountError{Block: b, Recorded: got, Found: e})
			} else {
				c.fatalf(s.area, nil, &CountError{Block: b, Recorded: got, Found: e})
			}
		}
	}

	const wordsPerBitmap = spacemap.EntriesPerBitmap / 32
	// Not a walk buffer: the overflow walk may be suspended in a leaf.
	if c.bitmapBuf == nil {
		c.bitmapBuf = make([]byte, transaction.BlockSize)
	}
	buf := c.bitmapBuf
	for i, ie := range s.index {
		base := uint64(i) * spacemap.EntriesPerBitmap
		if base >= n || !c.tick() {
			break
		}
		if err := c.r.ReadInto(ie.Blocknr, buf, spacemap.BitmapValidator); err != nil {
			c.fatalf(s.area, nil, err)
			continue
		}
		for w := range uint64(wordsPerBitmap) {
			first := base + 32*w
			if first >= n {
				break
			}
			disk := fromDisk(spacemap.BitmapWord(buf, int(w)))
			low, high := want.Word(first / 32)
			threes := disk & (disk >> 1) & lowBits // entries of 3: the overflow tree's
			if high == 0 && low == disk && threes == 0 {
				continue
			}
			// A block is judged by judge unless its bitmap entry is
			// below 3 and equals its count: when that holds for every
			// entry but those of 3 (as in a pool whose snapshots share
			// blocks), only those are.
			m3 := threes | threes<<1
			if high&^m3 == 0 && (low^disk)&^m3 == 0 {
				for t := threes; t != 0; t &= t - 1 {
					j := uint64(bits.TrailingZeros64(t)) / 2
					b := first + j
					if b >= n {
						break
					}
					e := uint32(low>>(2*j))&3 | (uint32(high>>(2*j))&3)<<2
					// What judge would find, inline: the next overflow
					// entry is b's and holds its count. Lookups go up,
					// so it is never needed again.
					if ov.more && ov.cur.block == b && ov.cur.count == e && e < refcount.Saturated {
						ov.advance()
						continue
					}
					judge(b, 3, e)
				}
				continue
			}
			for j := range uint64(32) {
				b := first + j
				if b >= n {
					break
				}
				got := uint32(disk>>(2*j)) & 3
				// The found count from the words already read, as
				// want.Get(b) gives it: only a saturated one is
				// looked up.
				e := uint32(low>>(2*j))&3 | (uint32(high>>(2*j))&3)<<2
				if got == e && got < 3 {
					continue
				}
				judge(b, got, e)
			}
		}
	}
	return leaked
}
