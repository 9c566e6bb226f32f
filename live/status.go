package live

import (
	"fmt"
	"strconv"
	"strings"
)

// Mode is the mode of a pool as its status reports it.
type Mode int

const (
	// ReadWrite: the pool works normally.
	ReadWrite Mode = iota
	// ReadOnly: no change to the metadata is possible (asked for, after a
	// metadata error, or out of metadata space). Writes that need a new
	// block fail.
	ReadOnly
	// OutOfDataSpace: the data device is full; writes that need a new
	// block wait (or fail, with error_if_no_space).
	OutOfDataSpace
	// Failed: all I/O fails; the status has no other field.
	Failed
)

// String returns the mode as the pool's status line writes it ("rw",
// "ro", "out_of_data_space", "Fail").
func (m Mode) String() string {
	switch m {
	case ReadWrite:
		return "rw"
	case ReadOnly:
		return "ro"
	case OutOfDataSpace:
		return "out_of_data_space"
	case Failed:
		return "Fail"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Discard is the discard handling a pool reports.
type Discard int

const (
	// DiscardPassdown: discards unmap blocks and go to the data device.
	DiscardPassdown Discard = iota
	// NoDiscardPassdown: discards only unmap blocks.
	NoDiscardPassdown
	// IgnoreDiscard: discards are disabled.
	IgnoreDiscard
)

// String returns the discard handling as the pool's status line writes
// it ("discard_passdown", "no_discard_passdown", "ignore_discard").
func (d Discard) String() string {
	switch d {
	case DiscardPassdown:
		return "discard_passdown"
	case NoDiscardPassdown:
		return "no_discard_passdown"
	case IgnoreDiscard:
		return "ignore_discard"
	}
	return fmt.Sprintf("Discard(%d)", int(d))
}

// PoolStatus is a thin-pool's status line, parsed.
type PoolStatus struct {
	Mode          Mode
	TransactionID uint64
	// Metadata counts are in 4 KiB metadata blocks, data counts in data
	// blocks.
	UsedMetadataBlocks, TotalMetadataBlocks uint64
	UsedDataBlocks, TotalDataBlocks         uint64
	// HeldRoot is the block of the metadata snapshot's superblock, or 0
	// if none is held.
	HeldRoot       uint64
	Discard        Discard
	ErrorIfNoSpace bool
	NeedsCheck     bool
	// MetadataLowWater is the kernel's metadata threshold in blocks (0 if
	// the kernel does not report it).
	MetadataLowWater uint64
	// Extra holds words after the known ones (later kernels add fields).
	Extra []string
}

// FreeDataBlocks returns the free data blocks.
func (s PoolStatus) FreeDataBlocks() uint64 { return s.TotalDataBlocks - s.UsedDataBlocks }

// FreeMetadataBlocks returns the free metadata blocks.
func (s PoolStatus) FreeMetadataBlocks() uint64 { return s.TotalMetadataBlocks - s.UsedMetadataBlocks }

// ParsePoolStatus parses a thin-pool status line (the text of
// `dmsetup status` after the start, length and target type).
func ParsePoolStatus(line string) (PoolStatus, error) {
	w := strings.Fields(line)
	if len(w) == 1 && w[0] == "Fail" {
		return PoolStatus{Mode: Failed}, nil
	}
	bad := func(why string) (PoolStatus, error) {
		return PoolStatus{}, fmt.Errorf("thin-pool status %q: %s", line, why)
	}
	if len(w) == 1 && w[0] == "Error" {
		return bad("the kernel could not read the pool's metadata")
	}
	if len(w) < 8 {
		return bad(fmt.Sprintf("%d fields, want at least 8", len(w)))
	}
	var s PoolStatus
	var err error
	if s.TransactionID, err = strconv.ParseUint(w[0], 10, 64); err != nil {
		return bad("transaction id")
	}
	if s.UsedMetadataBlocks, s.TotalMetadataBlocks, err = fraction(w[1]); err != nil {
		return bad("metadata blocks")
	}
	if s.UsedDataBlocks, s.TotalDataBlocks, err = fraction(w[2]); err != nil {
		return bad("data blocks")
	}
	if w[3] != "-" {
		if s.HeldRoot, err = strconv.ParseUint(w[3], 10, 64); err != nil {
			return bad("held root")
		}
	}
	switch w[4] {
	case "rw":
		s.Mode = ReadWrite
	case "ro":
		s.Mode = ReadOnly
	case "out_of_data_space":
		s.Mode = OutOfDataSpace
	default:
		return bad("mode " + w[4])
	}
	switch w[5] {
	case "discard_passdown":
		s.Discard = DiscardPassdown
	case "no_discard_passdown":
		s.Discard = NoDiscardPassdown
	case "ignore_discard":
		s.Discard = IgnoreDiscard
	default:
		return bad("discard mode " + w[5])
	}
	switch w[6] {
	case "error_if_no_space":
		s.ErrorIfNoSpace = true
	case "queue_if_no_space":
	default:
		return bad("no-space mode " + w[6])
	}
	switch w[7] {
	case "needs_check":
		s.NeedsCheck = true
	case "-":
	default:
		return bad("needs_check field " + w[7])
	}
	rest := w[8:]
	if len(rest) > 0 {
		if v, err := strconv.ParseUint(rest[0], 10, 64); err == nil {
			s.MetadataLowWater = v
			rest = rest[1:]
		}
	}
	if len(rest) > 0 {
		s.Extra = rest
	}
	return s, nil
}

func fraction(s string) (uint64, uint64, error) {
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not used/total", s)
	}
	x, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return 0, 0, err
	}
	y, err := strconv.ParseUint(b, 10, 64)
	if err != nil {
		return 0, 0, err
	}
	if x > y {
		return 0, 0, fmt.Errorf("%q: more used than total", s)
	}
	return x, y, nil
}

// ThinStatus is a thin device's status line, parsed.
type ThinStatus struct {
	// Failed is set when the pool has failed; nothing else is known then.
	Failed bool
	// MappedSectors is the number of mapped sectors (mapped blocks times
	// the block size).
	MappedSectors uint64
	// HighestSector is the last sector of the highest mapped block, valid
	// if HasMapped.
	HighestSector uint64
	HasMapped     bool
}

// ParseThinStatus parses a thin target's status.
func ParseThinStatus(line string) (ThinStatus, error) {
	w := strings.Fields(line)
	if len(w) == 1 && w[0] == "Fail" {
		return ThinStatus{Failed: true}, nil
	}
	if len(w) != 2 {
		return ThinStatus{}, fmt.Errorf("thin status %q: %d fields, want 2", line, len(w))
	}
	var s ThinStatus
	var err error
	if s.MappedSectors, err = strconv.ParseUint(w[0], 10, 64); err != nil {
		return ThinStatus{}, fmt.Errorf("thin status %q: mapped sectors", line)
	}
	if w[1] != "-" {
		if s.HighestSector, err = strconv.ParseUint(w[1], 10, 64); err != nil {
			return ThinStatus{}, fmt.Errorf("thin status %q: highest sector", line)
		}
		s.HasMapped = true
	}
	return s, nil
}
