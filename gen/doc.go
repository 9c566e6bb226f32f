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
// With Spec.Variant thin.Extended the pool is of thinmeta's extended
// format (docs/EXTENSION.md): every device is created with its blob in the
// same transaction (with Bulk, CreateThinFromTree then SetBlob), its
// 64-bit id handed out by the pool (AllocateID) or chosen far above 2^32
// (Spec.IDs), and the blobs are indexed by their first Spec.IndexBytes
// bytes. A Named blob starts with the device's name, "thin-<id>" (Name),
// so that blob.Pool.Find finds it; Spec.DuplicateKeys gives some devices
// an earlier device's name, so that keys collide in the index. Ids and
// blobs come from a random stream of their own: the extended pool of a
// spec and seed has the shape of its stock pool.
//
// Generate returns a Record: every change made and what the write path
// returned (the data blocks it allocated). Record.Final and
// Record.MetadataSnapshot replay it into the expected pool contents with a
// model of the kernel's rules, independent of the metadata written, and
// State.WriteXML prints them as thin_dump 0.9.0 does (an extended pool in
// the extended form of "thinmeta dump"), so a test can compare the two.
//
// Damage injects one kind of damage into a generated pool (leaked blocks,
// wrong reference counts, a corrupted node checksum, keys out of order, a
// missing details entry, a wrong mapped_blocks, a damaged metadata
// snapshot, a torn superblock) and returns a Report: the blocks written,
// the device concerned, thin_check 0.9.0's verdict (clean, non-fatal or
// fatal) and exactly the findings package thin/check reports. Every
// kind applies to extended pools too (thin_check 0.9.0 refuses them
// whatever they hold: fatal).
//
// Layering: gen uses packages thin, thin/check, btree, spacemap,
// superblock and transaction; nothing but tests and the CLI imports it.
package gen
