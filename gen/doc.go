// Package gen generates dm-thin pools of a known shape for test harnesses,
// and damages them in known ways.
//
// A Spec describes the pool declaratively: thin devices and how many
// blocks are written to each (in runs, with gaps), a snapshot tree (chains,
// fans or random), how much is rewritten after each snapshot, discards,
// deletions, a metadata snapshot, and the data and metadata device sizes.
// NewPlan turns a Spec and a seed into every decision of the run; Build
// carries it out through the write path of package thin (thin.Format,
// CreateThin, CreateSnapshot, Map, Unmap, Delete,
// ReserveMetadataSnapshot, Commit), committing as a kernel driven by LVM
// would, so the metadata is what the kernel would write: shared subtrees,
// copy-on-write shadows, reference counts of three and more in the
// overflow trees. With Spec.Bulk the thins' initial mappings are instead
// built bottom-up by btree.Builder (full leaves, each node written once),
// for very large pools. The same spec and seed give a byte-identical image.
//
// Generate returns a Record: every change made and what the write path
// returned (the data blocks it allocated). Record.Final and
// Record.MetadataSnapshot replay it into the expected pool contents with a
// model of the kernel's rules, independent of the metadata written, and
// State.WriteXML prints them as thin_dump 0.9.0 does, so a test can compare
// the two.
//
// Damage injects one kind of damage into a generated pool (leaked blocks,
// wrong reference counts, a corrupted node checksum, keys out of order, a
// missing details entry, a wrong mapped_blocks, a damaged metadata
// snapshot, a torn superblock) and returns a Report: the blocks written,
// the device concerned, thin_check 0.9.0's verdict (clean, non-fatal or
// fatal) and exactly the findings package thin/check reports.
//
// Layering: gen uses packages thin, thin/check, btree, spacemap,
// superblock and transaction; nothing but tests and the CLI imports it.
package gen
