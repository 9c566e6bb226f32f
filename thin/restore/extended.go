package restore

import (
	"encoding/hex"
	"math"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/blobindex"
	"github.com/thinmeta/thinmeta/thin"
)

// The extended XML form, which thinmeta dump writes for extended pools:
// the <superblock> tag carries blob_size, index_bytes and next_thin_id,
// and each <device> its full 64-bit dev_id and its blob, in hexadecimal
// without trailing zero bytes (blob="" for an all-zero blob). A
// superblock with blob_size is extended; one without any of the three is
// stock, and restored exactly as before.

// Indexes of the extended attributes in superblockAttrs.
const (
	attrBlobSize   = 8
	attrIndexBytes = 9
	attrNextThinID = 10
)

// extDeviceAttrs are the attributes of a <device> of an extended pool.
var extDeviceAttrs = []attrDesc{
	{name: "dev_id", max: u64}, {name: "mapped_blocks", max: u64}, {name: "transaction", max: u64},
	{name: "creation_time", max: u32}, {name: "snap_time", max: u32},
	{name: "blob", str: true, optional: true},
}

// extHeader is what the <superblock> tag of an extended pool adds.
type extHeader struct {
	blobSize, indexBytes int
	nextID               uint64
	haveNextID           bool
}

// readExtension reads the extended attributes of the <superblock> tag just
// parsed into h.
func (p *parser) readExtension(h *header) error {
	seen := func(j int) bool { return p.seen&(1<<j) != 0 }
	if !seen(attrBlobSize) {
		if seen(attrIndexBytes) || seen(attrNextThinID) {
			return p.errorf(h.line, "index_bytes and next_thin_id need blob_size (the extended format)")
		}
		return nil
	}
	x := &extHeader{blobSize: int(p.vals[attrBlobSize]), indexBytes: int(p.vals[attrIndexBytes]),
		nextID: p.vals[attrNextThinID], haveNextID: seen(attrNextThinID)}
	if p.vals[attrBlobSize] > thin.MaxBlobSize {
		return p.errorf(h.line, "blob_size %d: blobs go up to %d bytes", p.vals[attrBlobSize], thin.MaxBlobSize)
	}
	if x.indexBytes > x.blobSize {
		return p.errorf(h.line, "index_bytes %d is more than blob_size %d", x.indexBytes, x.blobSize)
	}
	h.ext = x
	return nil
}

// extDevice checks the id and reads the blob of a <device> of an extended
// pool.
func (p *parser) extDevice(id uint64) ([]byte, error) {
	x := p.hdr.ext
	line := p.lx.tagLine
	if id == math.MaxUint64 {
		return nil, p.errorf(line, "dev_id %d: the largest id is %d", id, uint64(math.MaxUint64-1))
	}
	if x.haveNextID && id >= x.nextID {
		return nil, p.errorf(line, "dev_id %d is not below next_thin_id %d", id, x.nextID)
	}
	blob := make([]byte, x.blobSize)
	text := p.strs[5]
	if hex.DecodedLen(len(text)) > x.blobSize {
		return nil, p.errorf(line, "blob of %d bytes; blobs have %d", hex.DecodedLen(len(text)), x.blobSize)
	}
	if _, err := hex.Decode(blob, text); err != nil || len(text)%2 != 0 {
		return nil, p.errorf(line, "blob %q is not hexadecimal", snippet(text))
	}
	return blob, nil
}

// detailsVT returns the value type of the details tree.
func (bd *builder) detailsVT() *btree.ValueType {
	if x := bd.hdr.ext; x != nil {
		return &btree.ValueType{Size: thin.DetailsSize + x.blobSize}
	}
	return &btree.ValueType{Size: thin.DetailsSize}
}

// extension returns the superblock fields of an extended pool, building
// its blob index (nil for a stock pool). bd.devices is in id order.
func (bd *builder) extension() (*thin.Extension, error) {
	x := bd.hdr.ext
	if x == nil {
		return nil, nil
	}
	e := &thin.Extension{BlobSize: uint32(x.blobSize), IndexBytes: uint32(x.indexBytes),
		NextThinID: x.nextID, NrThins: uint64(len(bd.devices))}
	if n := len(bd.devices); !x.haveNextID && n > 0 {
		e.NextThinID = bd.devices[n-1].id + 1
	}
	if x.indexBytes > 0 {
		root, err := blobindex.Build(bd.tm, x.indexBytes, func(yield func(uint64, []byte) bool) {
			for _, d := range bd.devices {
				if !yield(d.id, d.blob) {
					return
				}
			}
		})
		if err != nil {
			return nil, err
		}
		e.BlobIndexRoot = root
	}
	return e, nil
}
