package ls

// Reference counts of data blocks, as thin_ls keeps them: for each block
// only whether it is mapped once or more than once. Two bit planes per page
// of 2^16 blocks ("seen" and "multi"); pages are allocated when first
// touched, so memory follows the data blocks in use, at two bits each.

const (
	pageShift    = 16
	pageBlocks   = 1 << pageShift
	pageWords    = pageBlocks / 64
	wordMask     = pageWords - 1
	denseMaxPage = 1 << 20 // pages below this index live in a slice
)

type page struct {
	seen  [pageWords]uint64 // mapped at least once
	multi [pageWords]uint64 // mapped at least twice
}

// counts holds saturating (0, 1, many) mapping counts per data block.
type counts struct {
	dense []*page
	far   map[uint64]*page // pages of absurdly high block numbers
}

// pageFor returns the page of page index pi, allocating it.
func (c *counts) pageFor(pi uint64) *page {
	p := c.lookup(pi)
	if p == nil {
		p = new(page)
		c.set(pi, p)
	}
	return p
}

// set installs p as the page of page index pi.
func (c *counts) set(pi uint64, p *page) {
	if pi >= denseMaxPage {
		if c.far == nil {
			c.far = make(map[uint64]*page)
		}
		c.far[pi] = p
		return
	}
	if pi >= uint64(len(c.dense)) {
		n := min(max(uint64(len(c.dense))*2, pi+1, 64), denseMaxPage)
		d := make([]*page, n)
		copy(d, c.dense)
		c.dense = d
	}
	c.dense[pi] = p
}

// lookup returns the page of page index pi, or nil.
func (c *counts) lookup(pi uint64) *page {
	if pi < uint64(len(c.dense)) {
		return c.dense[pi]
	}
	return c.far[pi]
}

// merge adds the counts of o into c; o must not be used afterwards.
func (c *counts) merge(o *counts) {
	add := func(pi uint64, q *page) {
		p := c.lookup(pi)
		if p == nil {
			c.set(pi, q)
			return
		}
		for j := range p.seen {
			p.multi[j] |= q.multi[j] | p.seen[j]&q.seen[j]
			p.seen[j] |= q.seen[j]
		}
	}
	for pi, q := range o.dense {
		if q != nil {
			add(uint64(pi), q)
		}
	}
	for pi, q := range o.far {
		add(pi, q)
	}
}
