// Package transaction is the bottom layer of thinmeta: access to the 4 KiB
// blocks of a dm-thin metadata device, each validated by a checksum with a
// per-kind salt and by the structural checks of its kind, with a small cache.
//
// It mirrors the kernel's block manager (drivers/md/persistent-data/
// dm-block-manager.c). It imports nothing from thinmeta; every other package
// builds on it. Block layouts of the higher layers live in their own
// packages; only the shared 16-byte checksummed header and the checksum salts
// are declared here (layout.go).
package transaction
