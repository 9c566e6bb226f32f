package btree

// Cursor steps through a tree's entries in key order without callbacks or
// goroutines, reading one leaf at a time; it suits merging a tree with
// another ordered sequence. Nodes are verified as for Walk. A Cursor is
// not safe for concurrent use.
type Cursor struct {
	w    *Walker
	leaf Node
	i    int
	done bool
}

// NewCursor returns a cursor before the first entry of t.
func NewCursor(t Tree) *Cursor {
	return &Cursor{w: t.walker()}
}

// Next returns the next entry; ok is false at the end or on an error (see
// Err). The value is valid until the following call.
func (c *Cursor) Next() (key uint64, value []byte, ok bool) {
	for !c.done {
		if c.leaf != nil && c.i < c.leaf.NrEntries() {
			k, v := c.leaf.Key(c.i), c.leaf.Value(c.i)
			c.i++
			return k, v, true
		}
		// Move to the next leaf; the walker reuses the buffer of this one.
		c.leaf = nil
		_, n, _, ok := c.w.Next()
		if !ok {
			c.done = true
			break
		}
		if n.IsLeaf() {
			c.leaf, c.i = n, 0
		}
	}
	return 0, nil, false
}

// Err returns the error that ended the iteration, if any.
func (c *Cursor) Err() error { return c.w.Err() }
