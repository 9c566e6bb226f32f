//go:build !thinmeta_faults

package transaction

// beforeIO is called before every write and flush of a FileDevice. Built
// with the tag thinmeta_faults it can kill the process there (see
// fault_on.go), for crash tests of real processes; otherwise it is
// nothing.
func beforeIO() {}
