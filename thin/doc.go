// Package thin is the dm-thin pool: Pool, a read-only view of the metadata
// (the live state or the metadata snapshot), and Metadata, the pool opened
// for changes, committed atomically as the kernel commits.
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
// two transactions. A Pool is safe for concurrent readers.
package thin
