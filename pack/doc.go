// Package pack reads and writes thin_metadata_pack version 3 files
// (FORMAT.md §8.4): a compact, compressed form of a metadata device that
// holds only its checksummed blocks, each encoded by a small instruction set
// that exploits the regularity of B-tree keys and values.
//
// It imports only package transaction (for checksums and salts).
package pack
