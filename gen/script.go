package gen

import (
	"fmt"

	"github.com/thinmeta/thinmeta/internal/opscript"
	"github.com/thinmeta/thinmeta/thin"
)

// Script returns the record as a script of the tests' operation language
// (internal/opscript): a format of the pool's geometry, then each event as
// the operation that repeats it (mappings with the data blocks the
// generator got, map_to), so that a generated pool can be rebuilt, or cut
// down, in a script. A pool built with Spec.Bulk records its mappings
// after the devices' creation, as the one-by-one path would; its script
// rebuilds the same final pool with other details' times only if
// snapshots come between.
func (r *Record) Script() opscript.Script {
	var s opscript.Script
	f := []any{fmt.Sprintf("data=%d", r.NrDataBlocks), fmt.Sprintf("meta=%d", r.MetadataBlocks),
		fmt.Sprintf("block_size=%d", r.DataBlockSize)}
	ext := r.Spec.Variant == thin.Extended
	if ext {
		f = append(f, "extended", fmt.Sprintf("blob_size=%d", r.Spec.BlobSize), fmt.Sprintf("index_bytes=%d", r.Spec.IndexBytes))
	}
	s.Add("format", f...)
	blob := func(b string) []any {
		if !ext || b == "" {
			return nil
		}
		return []any{[]byte(b)}
	}
	var tid uint64
	for _, e := range r.Events {
		switch e.Kind {
		case Create:
			s.Add("create_thin", append([]any{e.Dev}, blob(e.Blob)...)...)
		case Snap:
			s.Add("create_snap", append([]any{e.Dev, e.Origin}, blob(e.Blob)...)...)
		case SetBlob:
			s.Add("set_blob", e.Dev, []byte(e.Blob))
		case Map:
			s.Add("map_to", e.Dev, e.VBlock, e.Block, e.Len)
		case Unmap:
			s.Add("unmap", e.Dev, e.VBlock, e.VBlock+e.Len)
		case Delete:
			s.Add("delete", e.Dev)
		case SetTransaction:
			s.Add("set_transaction_id", tid, e.Transaction)
			tid = e.Transaction
		case Commit:
			s.Add("commit")
		case ReserveSnapshot:
			// As the generator (and the kernel): what came before is
			// committed, then the snapshot.
			s.Add("commit")
			s.Add("reserve_metadata_snap")
			s.Add("commit")
		}
	}
	return s
}
