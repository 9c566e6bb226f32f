package transaction_test

import (
	"errors"
	"fmt"

	"github.com/thinmeta/thinmeta/transaction"
)

// Seal a block as a space-map bitmap, validate it, and see a damaged copy
// rejected with a typed error.
func ExampleValidator() {
	v := &transaction.Validator{Kind: "space map bitmap", Salt: transaction.SaltBitmap}
	blk := make([]byte, transaction.BlockSize)
	v.Prepare(blk, 42)
	fmt.Println("valid:", v.Validate(blk, 42) == nil)
	salt, ok := transaction.SaltOf(blk)
	fmt.Println("recognised as a bitmap:", ok && salt == transaction.SaltBitmap)

	blk[1000] ^= 1
	err := v.Validate(blk, 42)
	var ce *transaction.CorruptError
	fmt.Println(errors.Is(err, transaction.ErrChecksum), errors.As(err, &ce) && ce.Block == 42)
	fmt.Println(errors.Is(v.Validate(blk, 43), transaction.ErrBlockNumber))
	// Output:
	// valid: true
	// recognised as a bitmap: true
	// true true
	// true
}
