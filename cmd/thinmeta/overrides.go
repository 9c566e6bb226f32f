package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/thinmeta/thinmeta/thin"
)

// optUint is an option holding an unsigned number of the given bit size,
// remembering whether it was given.
type optUint struct {
	v    uint64
	set  bool
	bits int
}

func (f *optUint) String() string { return strconv.FormatUint(f.v, 10) }

func (f *optUint) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, f.bits)
	if err != nil {
		return fmt.Errorf("not a number of at most %d bits: %q", f.bits, s)
	}
	f.v, f.set = v, true
	return nil
}

func (f *optUint) ptr() *uint64 {
	if !f.set {
		return nil
	}
	v := f.v
	return &v
}

// overrideFlags are the superblock values a caller can give instead of the
// metadata's own (thin-provisioning-tools' --transaction-id,
// --data-block-size and --nr-data-blocks): dump, restore, repair and
// dump --repair parse them with this one type.
type overrideFlags struct {
	tid, dbs, nrData optUint
}

func newOverrideFlags() *overrideFlags {
	return &overrideFlags{tid: optUint{bits: 64}, dbs: optUint{bits: 32}, nrData: optUint{bits: 64}}
}

// register adds the three options to fs.
func (f *overrideFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.tid, "transaction-id", "")
	fs.Var(&f.dbs, "data-block-size", "")
	fs.Var(&f.nrData, "nr-data-blocks", "")
}

// validDataBlockSize returns a usage complaint if the data block size
// given is not one a pool can have (for the commands that write a pool;
// dump prints any value it is given, as thin_dump does).
func (f *overrideFlags) validDataBlockSize() string {
	if f.dbs.set && !thin.ValidDataBlockSize(uint32(f.dbs.v)) {
		return fmt.Sprintf("data block size %d: %v", f.dbs.v, thin.ErrDataBlockSize)
	}
	return ""
}

// values returns the options given, nil for each one not given.
func (f *overrideFlags) values() (tid *uint64, dbs *uint32, nrData *uint64) {
	if f.dbs.set {
		v := uint32(f.dbs.v)
		dbs = &v
	}
	return f.tid.ptr(), dbs, f.nrData.ptr()
}
