package ls_test

import (
	"fmt"
	"strings"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/ls"
)

// A report formats as thin_ls prints it: right-aligned columns, each value
// followed by a space. (Spaces are shown as "|" here: example output
// cannot end lines in spaces.)
func ExampleReport_Format() {
	rep := &ls.Report{
		DataBlockSize: 128, // 64 KiB blocks
		Exclusive:     true,
		Devices: []ls.Device{
			{ID: 1, Details: thin.Details{MappedBlocks: 10713, CreationTime: 0, SnapshottedTime: 15}, ExclusiveBlocks: 64},
			{ID: 12, Details: thin.Details{MappedBlocks: 64, CreationTime: 11, SnapshottedTime: 11}},
		},
	}
	fields, _ := ls.ParseFields("DEV,MAPPED,EXCLUSIVE_BLOCKS,SHARED,SNAP_TIME")
	var b strings.Builder
	rep.Format(&b, fields, true)
	fmt.Print(strings.ReplaceAll(b.String(), " ", "|"))
	// Output:
	// DEV||MAPPED|EXCLUSIVE_BLOCKS||SHARED|SNAP_TIME|
	// ||1||670MiB|||||||||||||||64||666MiB||||||||15|
	// |12|4096KiB||||||||||||||||0|4096KiB||||||||11|
}
