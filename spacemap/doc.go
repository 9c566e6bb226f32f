// Package spacemap reads (and later writes) dm-thin space maps: two-bit
// reference counts per block in bitmap blocks, with counts of three or more
// in an overflow B-tree (FORMAT.md §5). The data space map indexes its
// bitmaps with a B-tree; the metadata space map with a single index block.
//
// It imports transaction and btree. Package superblock hands it the opaque
// root slots.
package spacemap
