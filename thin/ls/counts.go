package ls

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/thinmeta/thinmeta/internal/offheap"
)

// Reference counts of data blocks, as thin_ls keeps them: for each block
// only whether it is mapped once or more than once. Two bit planes per page
// of 2^16 blocks ("seen" and "multi"); pages are allocated when first
// touched, so memory follows the data blocks in use, at two bits each.
// Pages come from mappings outside the Go heap (offheap.Slab), so the
// collector's heap goal does not grow with them; release frees them.
//
// One set is shared by every goroutine of the counting walk: a word of
// seen is set with an atomic OR, whose old value says which of the blocks
// were seen before (by any goroutine), and those bits are ORed into multi.
// So two goroutines counting the same block at once leave it counted as
// many, and the set costs two bits a block however many goroutines count.

const (
	pageShift    = 16
	pageBlocks   = 1 << pageShift
	pageWords    = pageBlocks / 64
	dirShift     = 10                    // pages per directory chunk: 2^dirShift
	dirChunks    = 1 << 10               // chunks in the directory
	denseMaxPage = dirChunks << dirShift // pages below this index are in the directory
)

type page struct {
	seen  [pageWords]uint64 // mapped at least once
	multi [pageWords]uint64 // mapped at least twice
}

// chunk is one part of the page directory.
type chunk [1 << dirShift]atomic.Pointer[page]

// counts holds saturating (0, 1, many) mapping counts per data block. Its
// methods are safe for concurrent use while counting (inc); exclusive
// reads the counts and must not run concurrently with inc.
type counts struct {
	dir [dirChunks]atomic.Pointer[chunk]

	mu  sync.Mutex
	far map[uint64]*page // pages of absurdly high block numbers

	slabOnce sync.Once
	slab     *offheap.Slab // where the pages are
}

// slabPages is the pages in one mapping of the slab: 1 MiB.
const slabPages = 64

// newPage returns a zeroed page outside the Go heap.
func (c *counts) newPage() *page {
	c.slabOnce.Do(func() { c.slab = offheap.NewSlab(int(unsafe.Sizeof(page{})), slabPages) })
	return (*page)(unsafe.Pointer(unsafe.SliceData(c.slab.Get())))
}

// release frees the pages; the counts must not be used after it.
func (c *counts) release() {
	if c.slab != nil {
		c.slab.Release()
	}
	*c = counts{}
}

// lookup returns the page of page index pi, or nil.
func (c *counts) lookup(pi uint64) *page {
	if pi >= denseMaxPage {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.far[pi]
	}
	ch := c.dir[pi>>dirShift].Load()
	if ch == nil {
		return nil
	}
	return ch[pi&(1<<dirShift-1)].Load()
}

// pageFor returns the page of page index pi, allocating it.
func (c *counts) pageFor(pi uint64) *page {
	if pi >= denseMaxPage {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.far == nil {
			c.far = make(map[uint64]*page)
		}
		p := c.far[pi]
		if p == nil {
			p = c.newPage()
			c.far[pi] = p
		}
		return p
	}
	slot := &c.dir[pi>>dirShift]
	ch := slot.Load()
	if ch == nil {
		ch = new(chunk)
		if !slot.CompareAndSwap(nil, ch) {
			ch = slot.Load()
		}
	}
	ps := &ch[pi&(1<<dirShift-1)]
	p := ps.Load()
	if p == nil {
		p = c.newPage() // lost, with its slab space, if another goroutine wins
		if !ps.CompareAndSwap(nil, p) {
			p = ps.Load()
		}
	}
	return p
}

// span returns the mask of the n bits (1 <= n <= 64-bit) from bit on.
func span(bit, n uint64) uint64 {
	if n == 64 {
		return ^uint64(0)
	}
	return (1<<n - 1) << bit
}

// cursor counts for one goroutine, keeping the page it counted in last.
type cursor struct {
	c    *counts
	next uint64 // one more than the page index of pg; 0: none yet
	pg   *page  // (reading: nil if the page is absent)
}

// page returns the page of page index pi: allocated if alloc, else
// possibly nil.
func (k *cursor) page(pi uint64, alloc bool) *page {
	if pi+1 == k.next {
		return k.pg
	}
	return k.lookup(pi, alloc)
}

func (k *cursor) lookup(pi uint64, alloc bool) *page {
	if alloc {
		k.pg = k.c.pageFor(pi)
	} else {
		k.pg = k.c.lookup(pi)
	}
	k.next = pi + 1
	return k.pg
}

// inc counts one mapping of each of the n blocks from b on (n >= 1), and
// reports whether every one of them had been counted before: they are then
// all counted many, whatever else is counted later.
func (k *cursor) inc(b, n uint64) (allSeen bool) {
	if bit := b & 63; bit+n <= 64 { // one word: most runs
		pg := k.page(b>>pageShift, true)
		w, mask := (b>>6)&(pageWords-1), span(bit, n)
		old := atomic.OrUint64(&pg.seen[w], mask) & mask
		if old != 0 {
			atomic.OrUint64(&pg.multi[w], old)
		}
		return old == mask
	}
	return k.incWords(b, n)
}

func (k *cursor) incWords(b, n uint64) bool {
	all := true
	for n > 0 {
		pg := k.page(b>>pageShift, true)
		w, bit := (b>>6)&(pageWords-1), b&63
		m := min(n, 64-bit)
		mask := span(bit, m)
		old := atomic.OrUint64(&pg.seen[w], mask) & mask
		if old != 0 {
			atomic.OrUint64(&pg.multi[w], old)
		}
		all = all && old == mask
		b, n = b+m, n-m
	}
	return all
}

// once returns how many of the n blocks from b on are counted exactly once.
func (k *cursor) once(b, n uint64) uint64 {
	if bit := b & 63; bit+n <= 64 {
		if pg := k.page(b>>pageShift, false); pg != nil {
			w := (b >> 6) & (pageWords - 1)
			return uint64(bits.OnesCount64((pg.seen[w] &^ pg.multi[w]) & span(bit, n)))
		}
		return 0
	}
	return k.onceWords(b, n)
}

func (k *cursor) onceWords(b, n uint64) uint64 {
	var r uint64
	for n > 0 {
		w, bit := (b>>6)&(pageWords-1), b&63
		m := min(n, 64-bit)
		if pg := k.page(b>>pageShift, false); pg != nil {
			r += uint64(bits.OnesCount64((pg.seen[w] &^ pg.multi[w]) & span(bit, m)))
		}
		b, n = b+m, n-m
	}
	return r
}
