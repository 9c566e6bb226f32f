// Package fuzz holds the whole-image fuzz targets of thinmeta: FuzzImage
// opens an arbitrary small metadata image and walks everything a reader
// can (devices, mappings, runs, lookups, the thin_dump XML, both space
// maps, the metadata snapshot), and FuzzUnpack unpacks arbitrary
// thin_metadata_pack files. Both assert that nothing panics, that damage is
// reported as a typed error, and the consistency properties that hold
// between the different ways of reading the same data. FuzzWrite opens
// the same images for writing on an in-memory device and runs a short
// sequence of changes chosen by the input (thins, snapshots, mappings,
// unmaps, deletes, transaction ids, metadata snapshots, blobs, resizes,
// early write-back, commits, aborts): besides typed errors it holds every
// failed call to thin.Metadata's contract (a refused call changes
// nothing; any other error ends the transaction until Abort), every
// commit to the view taken just before it, a clean pool to a clean check
// after each commit, and the device to the last commit. TestWriteSeeds
// runs its seed sequences over every fixture and over pools damaged where
// only shadowing meets the damage (an empty non-root leaf, a child beyond
// the device, a cycle, keys outside the parent's range, a live node
// counted 0).
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
