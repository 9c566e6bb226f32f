package thinmeta_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/pack"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// Each on-disk size, offset and constant of docs/FORMAT.md, restated here
// as a literal: the code's constants and encoders must agree with the
// document, not with themselves.
func TestOnDiskSizes(t *testing.T) {
	eq := func(what string, got, want uint64) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %d, the format says %d", what, got, want)
		}
	}
	// §1
	eq("metadata block", transaction.BlockSize, 4096)
	eq("sectors per block", transaction.SectorsPerBlock, 8)
	eq("checksummed header", transaction.HeaderSize, 16)
	eq("superblock salt", uint64(transaction.SaltSuperblock), 160774)
	eq("node salt", uint64(transaction.SaltNode), 121107)
	eq("bitmap salt", uint64(transaction.SaltBitmap), 240779)
	eq("index salt", uint64(transaction.SaltIndex), 160478)
	eq("cache superblock salt", uint64(transaction.SaltCacheSuperblock), 9031977)
	eq("era superblock salt", uint64(transaction.SaltEraSuperblock), 146538381)
	eq("array block salt", uint64(transaction.SaltArrayBlock), 595846735)
	// The checksum of a zeroed block under each salt (only bytes 4.. count).
	zero := make([]byte, 4096)
	for salt, want := range map[uint32]uint32{
		transaction.SaltSuperblock: 0x58CFD397, transaction.SaltNode: 0x58CC7E82,
		transaction.SaltBitmap: 0x58CE0B1A, transaction.SaltIndex: 0x58CFD54F,
	} {
		eq("checksum of a zero block", uint64(transaction.Checksum(zero, salt)), uint64(want))
	}

	// §2: the stock structure, the extended one, both in the first sector.
	eq("superblock", superblock.Size, 364)
	eq("extended superblock", superblock.ExtendedSize, 396)
	if superblock.ExtendedSize > 512 {
		t.Errorf("superblock of %d bytes does not fit the first sector", superblock.ExtendedSize)
	}
	eq("space map root slot", superblock.SpaceMapRootSize, 128)
	eq("magic", superblock.Magic, 27022010)
	sb := superblock.Superblock{
		Flags: 0x01020304, Blocknr: 0x1112131415161718, Magic: superblock.Magic, Version: 2,
		Time: 0x21222324, TransactionID: 0x3132333435363738, HeldRoot: 0x4142434445464748,
		DataMappingRoot: 0x5152535455565758, DeviceDetailsRoot: 0x6162636465666768,
		DataBlockSize: 0x71727374, MetadataBlockSize: 8, MetadataNrBlocks: 0x8182838485868788,
		CompatFlags: 0x91929394, CompatROFlags: 0xa1a2a3a4, IncompatFlags: 0xb1b2b3b4,
	}
	sb.DataSpaceMapRoot[0], sb.DataSpaceMapRoot[127] = 0xd1, 0xd2
	sb.MetadataSpaceMapRoot[0], sb.MetadataSpaceMapRoot[127] = 0xe1, 0xe2
	blk := make([]byte, 4096)
	sb.Encode(blk)
	le := binary.LittleEndian
	for _, f := range []struct {
		name      string
		off, size int
		want      uint64
	}{
		{"flags", 4, 4, 0x01020304}, {"blocknr", 8, 8, 0x1112131415161718}, {"magic", 32, 8, 27022010},
		{"version", 40, 4, 2}, {"time", 44, 4, 0x21222324}, {"transaction id", 48, 8, 0x3132333435363738},
		{"held root", 56, 8, 0x4142434445464748}, {"data sm slot", 64, 1, 0xd1}, {"data sm slot end", 191, 1, 0xd2},
		{"metadata sm slot", 192, 1, 0xe1}, {"metadata sm slot end", 319, 1, 0xe2},
		{"mapping root", 320, 8, 0x5152535455565758}, {"details root", 328, 8, 0x6162636465666768},
		{"data block size", 336, 4, 0x71727374}, {"metadata block size", 340, 4, 8},
		{"metadata blocks", 344, 8, 0x8182838485868788}, {"compat", 352, 4, 0x91929394},
		{"compat_ro", 356, 4, 0xa1a2a3a4}, {"incompat", 360, 4, 0xb1b2b3b4},
	} {
		var got uint64
		switch f.size {
		case 1:
			got = uint64(blk[f.off])
		case 4:
			got = uint64(le.Uint32(blk[f.off:]))
		case 8:
			got = le.Uint64(blk[f.off:])
		}
		eq("superblock "+f.name+" at its offset", got, f.want)
	}
	for i := 364; i < 4096; i++ {
		if blk[i] != 0 {
			t.Fatalf("stock superblock byte %d is %#x, not 0", i, blk[i])
		}
	}

	// §3
	eq("node header", btree.HeaderSize, 32)
	eq("internal value", btree.InternalValueSize, 8)
	eq("internal flag", uint64(btree.FlagInternal), 1)
	eq("leaf flag", uint64(btree.FlagLeaf), 2)
	for vs, want := range map[int]int{4: 336, 8: 252, 16: 168, 24: 126} {
		eq("max_entries", uint64(btree.MaxEntries(vs)), uint64(want))
	}
	eq("largest value", btree.MaxValueSize, 1346)
	eq("depth walked", btree.MaxDepth, 64)

	// §5
	eq("space map root", spacemap.RootSize, 32)
	eq("index entry", spacemap.IndexEntrySize, 16)
	eq("overflow count", spacemap.RefCountValueSize, 4)
	eq("entries per bitmap", spacemap.EntriesPerBitmap, 16320)
	eq("metadata bitmaps", spacemap.MaxMetadataBitmaps, 255)
	eq("metadata blocks tracked", spacemap.MaxMetadataBlocks, 4161600)
	slot := make([]byte, 128)
	spacemap.Root{NrBlocks: 1, NrAllocated: 2, BitmapRoot: 3, RefCountRoot: 4}.Encode(slot)
	for i, want := range []uint64{1, 2, 3, 4} {
		eq("space map root field", le.Uint64(slot[8*i:]), want)
	}
	ie := make([]byte, 16)
	spacemap.IndexEntry{Blocknr: 0x0102030405060708, NrFree: 0x11121314, NoneFreeBefore: 0x21222324}.Encode(ie)
	eq("index entry block", le.Uint64(ie[0:]), 0x0102030405060708)
	eq("index entry free", uint64(le.Uint32(ie[8:])), 0x11121314)
	eq("index entry hint", uint64(le.Uint32(ie[12:])), 0x21222324)
	// Entry 5 of a bitmap: word 0, bits 10 (worth 2) and 11 (worth 1).
	bm := make([]byte, 4096)
	spacemap.SetBitmapEntry(bm, 5, 1)
	eq("bitmap count 1", le.Uint64(bm[16:]), 1<<11)
	spacemap.SetBitmapEntry(bm, 5, 2)
	eq("bitmap count 2", le.Uint64(bm[16:]), 1<<10)
	spacemap.SetBitmapEntry(bm, 16320-1, 3)
	eq("bitmap last entry", le.Uint64(bm[4088:]), 3<<62)

	// §7
	eq("details", thin.DetailsSize, 24)
	eq("mapping value", thin.MappingValueSize, 8)
	eq("largest blob", thin.MaxBlobSize, 1322)
	det := make([]byte, 24)
	thin.Details{MappedBlocks: 0x0102030405060708, TransactionID: 0x1112131415161718, CreationTime: 0x21222324, SnapshottedTime: 0x31323334}.Encode(det)
	eq("mapped blocks", le.Uint64(det[0:]), 0x0102030405060708)
	eq("details transaction id", le.Uint64(det[8:]), 0x1112131415161718)
	eq("creation time", uint64(le.Uint32(det[16:])), 0x21222324)
	eq("snapshot time", uint64(le.Uint32(det[20:])), 0x31323334)
	eq("block and time", thin.PackBlockTime(0xABCDE12345, 0x654321), 0xABCDE12345<<24|0x654321)
	dev := memdev.New(1 << 20)
	md, err := thin.Format(dev, dev.Size(), &thin.FormatOptions{NrDataBlocks: 100, Variant: thin.Extended, BlobSize: 40})
	if err != nil {
		t.Fatal(err)
	}
	eq("details of an extended pool", uint64(md.View().DetailsSize()), 24+40)

	// §8.4
	eq("pack magic", pack.Magic, 0xA537A0AA6309EF77)
	eq("pack version", pack.Version, 3)
	eq("pack header", pack.HeaderSize, 32)
}

// Every "FORMAT.md §n" (or "FORMAT §n") the code and the docs cite names a
// section of docs/FORMAT.md.
func TestFormatCitations(t *testing.T) {
	doc, err := os.ReadFile("docs/FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#{2,3} ([0-9]+(?:\.[0-9]+)?)\.? `).FindAllSubmatch(doc, -1) {
		sections[string(m[1])] = true
	}
	cite := regexp.MustCompile(`FORMAT(?:\.md)?\s+§([0-9]+(?:\.[0-9]+)?)`)
	n := 0
	err = filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != "." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, ".md") || p == "docs/FORMAT.md" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range cite.FindAllSubmatch(b, -1) {
			n++
			if !sections[strings.TrimSuffix(string(m[1]), ".")] {
				t.Errorf("%s cites FORMAT §%s, which docs/FORMAT.md does not have", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 40 {
		t.Errorf("only %d citations found: the scan is broken", n)
	}
}
