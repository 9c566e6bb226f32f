package spacemap_test

import (
	"fmt"

	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/transaction"
)

// Bitmap entries hold counts 0 to 3; 3 means "look in the overflow tree".
func ExampleBitmapEntry() {
	blk := make([]byte, transaction.BlockSize)
	spacemap.SetBitmapEntry(blk, 5, 1)
	spacemap.SetBitmapEntry(blk, 6, 2)
	spacemap.SetBitmapEntry(blk, 7, 3)
	fmt.Println(spacemap.BitmapEntry(blk, 4), spacemap.BitmapEntry(blk, 5), spacemap.BitmapEntry(blk, 6), spacemap.BitmapEntry(blk, 7))
	fmt.Println(spacemap.EntriesPerBitmap, "blocks per bitmap;", spacemap.NrBitmaps(100000), "bitmaps for 100000 blocks")
	// Output:
	// 0 1 2 3
	// 16320 blocks per bitmap; 7 bitmaps for 100000 blocks
}
