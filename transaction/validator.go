package transaction

// A Validator describes one kind of checksummed metadata block: its name, its
// checksum salt and the structural checks that follow the shared location and
// checksum checks. Every block read names the validator it expects, as the
// kernel's block manager does.
type Validator struct {
	// Kind names the block kind in errors, e.g. "btree node".
	Kind string
	// Salt is XORed into the block's checksum.
	Salt uint32
	// Check, if not nil, verifies the block's structure. It runs only after
	// the location and checksum have been verified, and should return a
	// *CorruptError.
	Check func(block []byte, location uint64) error
}

// Validate checks that block, read from location, claims that location, has
// a valid checksum for v's salt, and passes v.Check.
func (v *Validator) Validate(block []byte, location uint64) error {
	if got := StoredBlocknr(block); got != location {
		return Corruptf(location, v.Kind, ErrBlockNumber, "block claims to be %d", got)
	}
	if sum, want := StoredChecksum(block), Checksum(block, v.Salt); sum != want {
		return Corruptf(location, v.Kind, ErrChecksum, "stored %#08x, computed %#08x", sum, want)
	}
	if v.Check != nil {
		return v.Check(block, location)
	}
	return nil
}

// Prepare stamps block for writing at location: it sets the self-location and
// recomputes the checksum.
func (v *Validator) Prepare(block []byte, location uint64) {
	Seal(block, location, v.Salt)
}
