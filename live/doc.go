// Package live runs dm-thin pools on the running kernel: pools, thins and
// snapshots through device-mapper (package dm), metadata through package
// thin.
//
// Create formats (or checks) a metadata device and activates a pool on it;
// Open attaches to an active pool and resumes devices a crashed manager
// left suspended. A Pool creates, deletes, activates and lists thins, sets
// the transaction id as a compare-and-swap, takes safe snapshots of active
// origins (Snapshot: suspend, create_snap, resume on every path, nothing
// else in between), reads its own metadata through a metadata snapshot
// (Read, with O_DIRECT so the page cache cannot serve stale blocks), waits
// for its low water mark and grows.
//
// Every method asks the kernel; a Pool keeps no state that the kernel does
// not have, so a restarted manager sees what the previous one left. The
// model, the kernel facts it relies on and the tests of each failure case
// are in the project's docs/LIVE.md.
//
// It sits above dm, thin and thin/check, and below the CLI.
package live
