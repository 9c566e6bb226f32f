// Package ls lists the thin devices of a pool as thin_ls does: per device
// its details (mapped blocks, transaction, creation and snapshot times)
// and, on request, how many of its mapped blocks are exclusive to it and
// how many are shared. Numbers and text layout are identical to thin_ls
// 0.9.0's.
//
// Exclusive counts follow thin_ls: a data block is exclusive when exactly
// one mapping names it among those of all devices of the device-details
// tree (the device itself included); the on-disk data space map is not
// consulted, so the counts are right for a metadata-snapshot view too. The shared count is
// the mapped-blocks figure of the device details less the exclusive count,
// wrapping as an unsigned 64-bit number if the details undercount.
//
// It is a query layer above package thin: it imports thin and its
// internal walker (and so btree and transaction), and nothing that writes.
package ls
