// Package fuzz holds the whole-image fuzz targets of thinmeta: FuzzImage
// opens an arbitrary small metadata image and walks everything a reader
// can (devices, mappings, runs, lookups, the thin_dump XML, both space
// maps, the metadata snapshot), and FuzzUnpack unpacks arbitrary
// thin_metadata_pack files. Both assert that nothing panics, that damage is
// reported as a typed error, and the consistency properties that hold
// between the different ways of reading the same data.
//
// The per-codec targets live beside their codecs: superblock.FuzzSuperblock,
// btree.FuzzNode, spacemap.FuzzBitmap and pack.FuzzDecodeBlock,
// FuzzEncodeBlock and FuzzEncodeU64s.
//
// Seeds come from the shared kernel-written fixtures (added at run time when
// ../shared/fixtures is present) and from small images derived from them
// and committed under testdata/fuzz (regenerate with
// "go test ./fuzz -run TestSeeds -update-seeds"). Run one target with
//
//	go test ./fuzz -run '^$' -fuzz '^FuzzImage$' -fuzztime 60s
//
// and all of them briefly with .ci/fuzz.
//
// The package has no non-test code; it imports nothing into thinmeta.
package fuzz
