// Package blob is the API of the extended ("dm-thin v2") pool format for
// volume managers: every thin carries a fixed-size blob (its name, UUID or
// any identity the manager chooses), thin ids are 64-bit and never reused,
// and thins can be found by the start of their blob.
//
// Creating a thin or a snapshot together with its blob is one transaction,
// so after a crash a thin exists with its blob or not at all, and a
// manager needs no database of its own to know which thin is which.
//
// The format: the superblock carries the incompat feature bit
// superblock.IncompatBlobs and, after the stock structure but inside the
// first 512-byte sector, the blob size, the index width, the next thin id
// and the number of thins; each device-details value is the stock 24 bytes
// followed by the blob (up to thin.MaxBlobSize bytes, so that a B-tree
// leaf still holds three values); an optional index maps a 64-bit FNV-1a
// hash of each blob's first IndexBytes bytes to the thin. Stock kernels
// refuse such a pool ("unsupported optional features", EINVAL) without
// writing to it, and thin_check and thin_dump 0.9.0 refuse it too, so
// nothing misreads it. Downgrade turns it back into a stock pool.
//
// Writer changes a pool (Format, Create, NewWriter, OpenWriter); Pool reads one
// (NewPool, Open): Thins enumerates the thins in id order, streaming the
// details tree in constant memory, Count reads the thin count from the
// superblock, Find looks thins up by key, Reconcile compares a manager's
// own list with the pool. Upgrade and Downgrade convert between the stock
// and the extended format, keeping every mapping and all sharing.
//
// Layering: blob is built on package thin (and superblock, transaction);
// nothing in the library below it imports it.
package blob
