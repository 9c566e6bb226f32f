package fuzz

import (
	"bytes"
	"errors"
	"testing"

	"github.com/thinmeta/thinmeta/pack"
	"github.com/thinmeta/thinmeta/transaction"
)

// maxRepackBlocks bounds the images FuzzUnpack packs again (the fixtures
// have up to 16384 blocks).
const maxRepackBlocks = 1 << 14

// FuzzUnpack unpacks arbitrary bytes as a thin_metadata_pack file into a
// sparse in-memory image. Nothing may panic; a failure must wrap
// pack.ErrFormat; on success every stored block has a valid checksum, and
// packing the image again and unpacking that gives the identical image.
func FuzzUnpack(f *testing.F) {
	addSeedFiles(f, "FuzzUnpack")
	for _, raw := range fixturePacks(f) {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := unpackSparse(data)
		if err != nil {
			if !errors.Is(err, pack.ErrFormat) {
				t.Fatalf("unexpected error %T %v", err, err)
			}
			return
		}
		for b, blk := range img.blocks {
			if _, ok := transaction.SaltOf(blk); !ok {
				t.Fatalf("block %d unpacked without a valid checksum", b)
			}
		}
		if img.size/bs > maxRepackBlocks {
			return
		}
		var p bytes.Buffer
		if err := pack.Pack(img, img.size, &p); err != nil {
			t.Fatalf("packing the unpacked image: %v", err)
		}
		again, err := unpackSparse(p.Bytes())
		if err != nil {
			t.Fatalf("unpacking our own pack: %v", err)
		}
		if again.size != img.size || len(again.blocks) != len(img.blocks) {
			t.Fatalf("round trip: %d blocks of %d bytes, was %d of %d", len(again.blocks), again.size, len(img.blocks), img.size)
		}
		for b, blk := range img.blocks {
			if !bytes.Equal(again.blocks[b], blk) {
				t.Fatalf("round trip changed block %d", b)
			}
		}
	})
}
