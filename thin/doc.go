// Package thin is a dm-thin pool's metadata: the devices, their mappings
// and the space maps, as the kernel's dm-thin-pool target keeps them
// (docs/FORMAT.md §7), read and written directly.
//
// Reading: Open opens a metadata device, an image file, a
// thin_metadata_pack file or an LZ4 frame (OpenImage gives the raw bytes
// of any of them), and NewPool reads from an io.ReaderAt; both return a
// Pool, a read-only view of the committed metadata. A Pool lists devices
// and their details, looks up and iterates mappings and runs of mappings
// (iter.Seq2 with an error), opens the space maps, and gives the metadata
// snapshot (held root) as a Pool of its own. Nothing is read before it is
// asked for, and every block is validated: damaged metadata comes back as
// typed errors naming the block (errors.As with
// *transaction.CorruptError).
//
// Writing: OpenMetadata opens a device or file for changes, exclusively,
// CreateMetadata formats one, and NewMetadata and Format do the same on a
// transaction.Device; each returns a Metadata. Its calls are the kernel's
// pool messages and the thin target's writes — create a thin or a
// snapshot, delete, map, unmap, set the transaction id, reserve and
// release a metadata snapshot, resize — in a transaction that Commit makes
// durable with the kernel's two-phase protocol (§6.2) and Abort discards.
// A crash leaves the previous or the new commit. What a failed call leaves
// behind is in Metadata's documentation; a full data device and a full
// metadata device are told apart (ErrNoDataSpace, ErrNoMetadataSpace).
// NewBuild writes a whole pool bottom-up in one transaction, as
// thin_restore does.
//
// The extended ("dm-thin v2") format, a Variant of its own, gives each
// thin a fixed-size blob, 64-bit ids that are never reused, and an index
// of the thins by a prefix of their blobs (docs/EXTENSION.md); Convert
// rewrites a pool from one variant to the other. Package blob is the
// interface made for it.
//
// # Locking and concurrency
//
// Openers of a file or block device lock it (docs/CONCURRENCY.md): Open
// and OpenImage take a shared flock, OpenMetadata and CreateMetadata an
// exclusive one (and O_EXCL on a block device), so a writer is refused
// while another process reads and a reader while another process writes,
// with ErrLocked (also ErrBusy) naming the path. OpenOptions.Wait,
// WriteOptions.Wait and FormatOptions.Wait wait for the lock instead. In
// one process, a reader may open the file its own writer holds.
//
// A reader the locks cannot protect (a block device opened
// OpenOptions.Shared under an active pool, a writer that ignores the
// locks) sees the superblock move: its reads then fail, and Pool.Stale and
// Image.Stale return, ErrStale. A caller that writes out what it reads
// calls Stale before each write and at the end; then nothing it wrote mixes
// two transactions.
//
// A Pool opened on its own is safe for concurrent readers (see Pool); a
// Metadata, and a Pool it hands out by View, belong to one goroutine.
package thin
