package thin

// Progress tells how far a long operation on a pool has come: a check,
// dump, listing or restore (and rmap and delta), which read every block
// of a large pool and can take minutes on a 16 GiB metadata device. The
// packages beside thin (check, dump, ls, restore, rmap, delta) take a
// func(Progress) in their options and call it now and then: a bounded
// number of times (about a thousand, plus one at the end), never
// concurrently, with Done never decreasing, and last with Done equal to
// Total when the operation succeeds.
type Progress struct {
	// Phase names the part of the work under way, for display: "walk",
	// "space maps", "input", and so on. It may change while Done grows.
	Phase string
	// Done and Total measure the whole operation in one unit, which each
	// operation documents (metadata blocks read, mappings written, bytes
	// of input). Total is an estimate made at the start, 0 if none can be
	// made (a restore from a pipe); Done never exceeds a non-zero Total.
	Done, Total uint64
}
