package live

import (
	"fmt"
	"strconv"
	"strings"
)

// Features are the optional arguments of a thin-pool table.
type Features struct {
	// SkipBlockZeroing does not zero newly provisioned data blocks.
	SkipBlockZeroing bool
	// IgnoreDiscard disables discards (cannot change while the pool is
	// active).
	IgnoreDiscard bool
	// NoDiscardPassdown removes mappings on discard but does not pass the
	// discard to the data device.
	NoDiscardPassdown bool
	// ReadOnly allows no change to the metadata.
	ReadOnly bool
	// ErrorIfNoSpace fails writes at once when the data device is full,
	// instead of queueing them until the pool grows (or a timeout).
	ErrorIfNoSpace bool
}

// args returns the feature words in the kernel's order.
func (f Features) args() []string {
	var a []string
	for _, x := range []struct {
		on   bool
		word string
	}{
		{f.SkipBlockZeroing, "skip_block_zeroing"},
		{f.IgnoreDiscard, "ignore_discard"},
		{f.NoDiscardPassdown, "no_discard_passdown"},
		{f.ReadOnly, "read_only"},
		{f.ErrorIfNoSpace, "error_if_no_space"},
	} {
		if x.on {
			a = append(a, x.word)
		}
	}
	return a
}

// set turns on the feature named word.
func (f *Features) set(word string) error {
	switch strings.ToLower(word) {
	case "skip_block_zeroing":
		f.SkipBlockZeroing = true
	case "ignore_discard":
		f.IgnoreDiscard = true
	case "no_discard_passdown":
		f.NoDiscardPassdown = true
	case "read_only":
		f.ReadOnly = true
	case "error_if_no_space":
		f.ErrorIfNoSpace = true
	default:
		return fmt.Errorf("unknown pool feature %q", word)
	}
	return nil
}

// ParseFeatures parses feature words ("skip_block_zeroing", ...) as the
// CLI takes them, separated by commas or blanks.
func ParseFeatures(s string) (Features, error) {
	var f Features
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if err := f.set(w); err != nil {
			return Features{}, err
		}
	}
	if n := len(f.args()); n > maxFeatures {
		return Features{}, fmt.Errorf("%d pool features: the kernel takes at most %d at once", n, maxFeatures)
	}
	return f, nil
}

// maxFeatures is the most feature arguments the kernel accepts in a table.
const maxFeatures = 4

// PoolTable is the table of a thin-pool device: its one target's
// parameters.
type PoolTable struct {
	MetadataDev string // "major:minor" or a path
	DataDev     string
	BlockSize   uint32 // data block size in 512-byte sectors
	LowWater    uint64 // in data blocks
	Features    Features
}

// String returns the target parameters as the kernel reads them.
func (t PoolTable) String() string {
	// The feature count is always there, as the kernel prints the table.
	a := t.Features.args()
	return strings.Join(append([]string{t.MetadataDev, t.DataDev, fmt.Sprint(t.BlockSize), fmt.Sprint(t.LowWater),
		fmt.Sprint(len(a))}, a...), " ")
}

// ParsePoolTable parses the parameters of a thin-pool target.
func ParsePoolTable(params string) (PoolTable, error) {
	w := strings.Fields(params)
	bad := func(why string) (PoolTable, error) {
		return PoolTable{}, fmt.Errorf("thin-pool table %q: %s: %w", params, why, ErrNotPool)
	}
	if len(w) < 4 {
		return bad("fewer than 4 arguments")
	}
	t := PoolTable{MetadataDev: w[0], DataDev: w[1]}
	bs, err := strconv.ParseUint(w[2], 10, 32)
	if err != nil {
		return bad("block size")
	}
	t.BlockSize = uint32(bs)
	if t.LowWater, err = strconv.ParseUint(w[3], 10, 64); err != nil {
		return bad("low water mark")
	}
	if len(w) > 4 {
		n, err := strconv.Atoi(w[4])
		if err != nil || n != len(w)-5 {
			return bad("feature count")
		}
		for _, f := range w[5:] {
			if err := t.Features.set(f); err != nil {
				return bad(err.Error())
			}
		}
	}
	return t, nil
}

// ThinTable is the table of a thin device.
type ThinTable struct {
	PoolDev string // "major:minor" or a path
	ID      uint64
	Origin  string // external origin device, or ""
}

// String returns the target parameters as the kernel reads them.
func (t ThinTable) String() string {
	s := fmt.Sprintf("%s %d", t.PoolDev, t.ID)
	if t.Origin != "" {
		s += " " + t.Origin
	}
	return s
}

// ParseThinTable parses the parameters of a thin target.
func ParseThinTable(params string) (ThinTable, error) {
	w := strings.Fields(params)
	if len(w) != 2 && len(w) != 3 {
		return ThinTable{}, fmt.Errorf("thin table %q: %d arguments", params, len(w))
	}
	id, err := strconv.ParseUint(w[1], 10, 64)
	if err != nil {
		return ThinTable{}, fmt.Errorf("thin table %q: device id: %w", params, err)
	}
	t := ThinTable{PoolDev: w[0], ID: id}
	if len(w) == 3 {
		t.Origin = w[2]
	}
	return t, nil
}
