package walk

import (
	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// readAheadBlocks bounds the read-ahead window. A walk reads one 4 KiB
// block at a time, and a system call per block would dominate its cost;
// the trees of restored pools and much of what the kernel writes lie in
// runs of neighbouring blocks, which the window serves from memory.
// Larger windows measured no faster on a million-mapping pool.
const readAheadBlocks = 32

// NewReader returns a block reader over p's device for one goroutine's
// walks, reading ahead adaptively (transaction.ReadAhead). It is not safe
// for concurrent use: use one per goroutine.
func NewReader(p *thin.Pool) btree.BlockReader {
	return transaction.NewReadAhead(p.Reader(), readAheadBlocks)
}
