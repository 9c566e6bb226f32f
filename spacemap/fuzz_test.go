package spacemap_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/transaction"
)

// refEntry decodes entry e of a bitmap block straight from FORMAT.md §5.3:
// word e/32 at offset 16, raw = (word >> 2(e mod 32)) & 3, and raw 1 means
// 2, raw 2 means 1.
func refEntry(block []byte, e int) uint32 {
	w := binary.LittleEndian.Uint64(block[16+8*(e/32):])
	return [4]uint32{0, 2, 1, 3}[(w>>(2*(e%32)))&3]
}

// FuzzBitmap checks BitmapEntry against an independent decoder on every
// entry, that SetBitmapEntry changes exactly one entry, that rebuilding a
// bitmap entry by entry reproduces its bytes, and the index-entry and
// space-map-root codecs (decode → encode gives the bytes back). Seeds:
// testdata/fuzz/FuzzBitmap (bitmaps of the shared fixtures) and the ones
// added below.
func FuzzBitmap(f *testing.F) {
	blk := make([]byte, transaction.BlockSize)
	for e, c := range []uint32{1, 1, 2, 3, 0, 1} {
		spacemap.SetBitmapEntry(blk, e, c)
	}
	f.Add(blk[:64], uint16(3), uint8(2))
	f.Add([]byte{}, uint16(16319), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, e uint16, count uint8) {
		block := make([]byte, transaction.BlockSize)
		copy(block, data)
		orig := bytes.Clone(block)
		entry, c := int(e)%spacemap.EntriesPerBitmap, uint32(count%4)

		rebuilt := make([]byte, transaction.BlockSize)
		copy(rebuilt, block[:16])
		for i := range spacemap.EntriesPerBitmap {
			got := spacemap.BitmapEntry(block, i)
			if want := refEntry(block, i); got != want {
				t.Fatalf("entry %d: BitmapEntry %d, FORMAT.md decodes %d", i, got, want)
			}
			spacemap.SetBitmapEntry(rebuilt, i, got)
		}
		if !bytes.Equal(rebuilt, block) {
			t.Fatal("rebuilding the bitmap entry by entry changed its bytes")
		}
		for i := range 510 {
			if spacemap.BitmapWord(block, i) != binary.LittleEndian.Uint64(block[16+8*i:]) {
				t.Fatalf("BitmapWord(%d) wrong", i)
			}
		}

		spacemap.SetBitmapEntry(block, entry, c)
		if got := spacemap.BitmapEntry(block, entry); got != c {
			t.Fatalf("entry %d set to %d reads %d", entry, c, got)
		}
		if !bytes.Equal(block[:16], orig[:16]) {
			t.Fatal("SetBitmapEntry changed the header")
		}
		for i := range spacemap.EntriesPerBitmap {
			if i != entry && refEntry(block, i) != refEntry(orig, i) {
				t.Fatalf("setting entry %d changed entry %d", entry, i)
			}
		}

		// Index entries and roots.
		src := make([]byte, 128)
		copy(src, data)
		ie := spacemap.DecodeIndexEntry(src)
		out := make([]byte, spacemap.IndexEntrySize)
		ie.Encode(out)
		if !bytes.Equal(out, src[:spacemap.IndexEntrySize]) || spacemap.DecodeIndexEntry(out) != ie {
			t.Fatal("index entry does not round-trip")
		}
		root := spacemap.DecodeRoot(src)
		slot := bytes.Repeat([]byte{0xEE}, 128)
		root.Encode(slot)
		if !bytes.Equal(slot[:spacemap.RootSize], src[:spacemap.RootSize]) || spacemap.DecodeRoot(slot) != root {
			t.Fatal("space-map root does not round-trip")
		}
		if bytes.ContainsFunc(slot[spacemap.RootSize:], func(r rune) bool { return r != 0 }) {
			t.Fatal("Root.Encode left the rest of the slot set")
		}
	})
}
