// Package restore builds dm-thin metadata from thin_dump XML, as
// thin_restore does, but streaming: a hand-written tokenizer reads the
// input in large chunks and checks it, and the trees are built bottom-up
// as it goes, every node written once (the leaves on another goroutine).
//
// It accepts the XML of thin_dump 0.9.0 and 1.x (FORMAT.md §8.2),
// including 1.x shared subtrees: a <def> names a run of mappings whose
// leaves are built once, and each <ref> to it in a <device> shares those
// leaves, with reference counts and data-block counts as the kernel keeps
// them. It refuses what thin_restore refuses (§8.3) and reports the input
// line at fault. It also reads the extended form that thinmeta's dump
// writes for extended pools (blobs, 64-bit ids; see extended.go), and
// builds their blob index.
//
// Layering: restore uses packages thin (thin.Build), btree, spacemap and
// transaction; nothing below it imports it.
package restore
