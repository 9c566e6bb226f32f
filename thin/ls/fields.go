package ls

import (
	"fmt"
	"strconv"
	"strings"
)

// Field is one output column of thin_ls. The order of the constants is
// the order thin_ls lists them in its help.
type Field int

// The fields of thin_ls 0.9.0. Block counts are in data blocks, sector
// counts in 512-byte sectors; Mapped, Exclusive and Shared print sizes
// with a binary unit suffix. Exclusive blocks are the device's mappings of
// data blocks that no other mapping in the pool names; shared blocks are
// the device's mapped blocks (as its details record them) less those.
const (
	DevID Field = iota
	MappedBlocks
	ExclusiveBlocks
	SharedBlocks
	MappedSectors
	ExclusiveSectors
	SharedSectors
	MappedBytes
	ExclusiveBytes
	SharedBytes
	Mapped
	Exclusive
	Shared
	Transaction
	CreateTime
	SnapTime
	nrFields
)

var fieldNames = [nrFields]string{
	"DEV", "MAPPED_BLOCKS", "EXCLUSIVE_BLOCKS", "SHARED_BLOCKS",
	"MAPPED_SECTORS", "EXCLUSIVE_SECTORS", "SHARED_SECTORS",
	"MAPPED_BYTES", "EXCLUSIVE_BYTES", "SHARED_BYTES",
	"MAPPED", "EXCLUSIVE", "SHARED",
	"TRANSACTION", "CREATE_TIME", "SNAP_TIME",
}

// DefaultFields are the columns thin_ls prints without -o.
var DefaultFields = []Field{DevID, Mapped, CreateTime, SnapTime}

// AllFields returns every field in thin_ls's order.
func AllFields() []Field {
	fs := make([]Field, nrFields)
	for i := range fs {
		fs[i] = Field(i)
	}
	return fs
}

// String returns the field's name as thin_ls spells it (its column header).
func (f Field) String() string {
	if f < 0 || f >= nrFields {
		return "Field(" + strconv.Itoa(int(f)) + ")"
	}
	return fieldNames[f]
}

// NeedsExclusive reports whether the field needs exclusive-block counts,
// which cost a walk of every mapping tree.
func (f Field) NeedsExclusive() bool {
	switch f {
	case ExclusiveBlocks, SharedBlocks, ExclusiveSectors, SharedSectors,
		ExclusiveBytes, SharedBytes, Exclusive, Shared:
		return true
	}
	return false
}

// needExclusive reports whether any of fields needs exclusive counts.
func needExclusive(fields []Field) bool {
	for _, f := range fields {
		if f.NeedsExclusive() {
			return true
		}
	}
	return false
}

// ParseField returns the field named s (exact, upper case).
func ParseField(s string) (Field, error) {
	for i, n := range fieldNames {
		if s == n {
			return Field(i), nil
		}
	}
	return 0, fmt.Errorf("unknown field %q", s)
}

// ParseFields parses a comma-separated list of field names as thin_ls -o
// does: an empty last item (a trailing comma, or an empty list) is
// ignored, so "" selects no field; any other empty item is an error.
func ParseFields(s string) ([]Field, error) {
	items := strings.Split(s, ",")
	if items[len(items)-1] == "" {
		items = items[:len(items)-1]
	}
	fs := []Field{}
	for _, item := range items {
		f, err := ParseField(item)
		if err != nil {
			return nil, err
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// formatSize formats a size given in 512-byte sectors as thin_ls does for
// MAPPED, EXCLUSIVE and SHARED: the byte count, divided by 1024 (rounding
// down) while it exceeds 1 MiB, then once more with rounding to nearest if
// it still exceeds 8192, followed by the unit ("", KiB, MiB, GiB, TiB,
// PiB). The byte count wraps at 2^64 as thin_ls's does.
func formatSize(sectors uint64) string {
	n := sectors * 512
	i := 0
	for n > 1<<20 {
		n /= 1024
		i++
	}
	if n > 8*1024 {
		n = (n + 512) / 1024
		i++
	}
	units := [...]string{"", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	return strconv.FormatUint(n, 10) + units[i]
}
