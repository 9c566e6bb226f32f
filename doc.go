// Package thinmeta is the overview of a library that reads, checks and
// writes Linux dm-thin pool metadata directly, byte-compatible with the
// kernel's dm-thin-pool target and with thin-provisioning-tools.
//
// The code is layered as the kernel's persistent-data library is, each
// package depending only on those listed before it:
//
//   - transaction: 4 KiB blocks read through io.ReaderAt and validated by
//     per-kind checksum salts and structure checks (the kernel's block
//     manager), a small cache, and the transaction manager: shadowing
//     (copy-on-write) and the two-phase commit that writes the superblock
//     last. It declares the small SpaceMap interface it needs.
//   - btree: node layout, lookup, ordered walks with validation, insert with
//     splits, remove with rebalancing, whole-tree delete, and a bulk
//     builder. Values are opaque; a ValueType says how to count the
//     references they hold.
//   - spacemap: reference counts in two-bit bitmaps with an overflow tree,
//     read-only (Map) and writable (Writable, which implements
//     transaction.SpaceMap for the metadata space map).
//   - superblock: the superblock and its metadata-snapshot copy; the space
//     map roots are opaque slots.
//   - thin: the pool. Pool is a read-only view (devices, mappings, runs,
//     the metadata snapshot, space maps); Metadata is the pool opened for
//     changes (create, snapshot, delete, map, unmap, commit, abort).
//   - thin/check, thin/dump, thin/ls, thin/rmap, thin/delta, thin/restore:
//     the tools of thin-provisioning-tools as library calls; pack:
//     thin_metadata_pack.
//   - blob: the extended ("dm-thin v2") format — a blob per thin, 64-bit
//     never-reused ids, lookup by blob (docs/EXTENSION.md); gen: pools of a
//     given shape, optionally damaged, for test harnesses.
//   - cmd/thinmeta: the command-line tool.
//
// Apart from that stack, two packages drive pools on the running kernel
// (docs/LIVE.md):
//
//   - dm: a device-mapper client, the ioctls of /dev/mapper/control in pure
//     Go. It knows ioctls, tables and status text, not the format, and
//     imports no package of the project.
//   - live: pools, thins and safe snapshots on the kernel, metadata read
//     through metadata snapshots, growth; on dm, thin and thin/check.
//
// The on-disk format the code relies on is described in docs/FORMAT.md
// (the "FORMAT.md §n" of the comments), the extended format in
// docs/EXTENSION.md; every layout lives in one layout.go per package, and
// sizes_test.go holds each size and offset to the document.
package thinmeta
