// Package superblock decodes, validates and encodes the dm-thin superblock
// (block 0) and the metadata-snapshot copy of it (FORMAT.md §2).
//
// It imports only package transaction. The two space-map roots are kept as
// opaque 128-byte slots; package spacemap interprets them.
package superblock
