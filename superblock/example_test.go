package superblock_test

import (
	"fmt"

	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// Encode a superblock, seal it, and decode it again.
func ExampleDecode() {
	sb := superblock.Superblock{Magic: superblock.Magic, Version: superblock.Version, Time: 3,
		TransactionID: 9, DataBlockSize: 128, MetadataBlockSize: 8, Flags: superblock.FlagNeedsCheck}
	blk := make([]byte, transaction.BlockSize)
	sb.Encode(blk)
	superblock.Validator.Prepare(blk, superblock.Location)

	got := superblock.Decode(blk)
	fmt.Println(superblock.Validator.Validate(blk, superblock.Location) == nil)
	fmt.Println(got.TransactionID, got.Time, got.NeedsCheck(), got.Extended())
	// Output:
	// true
	// 9 3 true false
}
