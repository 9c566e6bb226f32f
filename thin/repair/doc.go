// Package repair salvages damaged dm-thin metadata (docs/REPAIR.md).
//
// Salvage reads a metadata device that may be damaged anywhere and
// returns what can be recovered, with a Report that says exactly what was
// kept, what was taken from older copies of the metadata, what was
// dropped and why, and what was inferred. The newest metadata is used
// wherever it is readable; a damaged node is replaced by the newest
// consistent older copy of its subtree that the device still holds (the
// kernel's copy-on-write leaves them behind), and every mapping taken from
// an older copy is checked against the newest metadata: a data block the
// newest metadata gives to another device is never given back. The
// salvaged content is then written as a new pool (Salvaged.Write), or as
// XML (DumpRepair).
//
// AutoRepair fixes in place, in one atomic commit, only what can be fixed
// without losing a mapping: reference counts in either space map, a
// device's mapped_blocks, a stale needs_check flag.
//
// Layering: repair sits beside the other tools on package thin; it
// imports thin/check (AutoRepair), thin/restore (the bulk build path) and
// thin/dump (DumpRepair), and nothing imports it but the CLI.
package repair
