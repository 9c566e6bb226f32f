package pack_test

import (
	"bytes"
	"fmt"

	"github.com/thinmeta/thinmeta/pack"
	"github.com/thinmeta/thinmeta/transaction"
)

// exampleImage is a fixed-size in-memory io.WriterAt.
type exampleImage []byte

func (m exampleImage) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

// Pack an image (only its checksummed blocks are stored) and unpack it.
func ExamplePack() {
	img := make([]byte, 64*transaction.BlockSize)
	for _, b := range []uint64{3, 10, 11} {
		blk := img[b*transaction.BlockSize : (b+1)*transaction.BlockSize]
		copy(blk[64:], "some metadata")
		transaction.Seal(blk, b, transaction.SaltBitmap) // a valid space-map bitmap
	}
	img[40*transaction.BlockSize] = 1 // an unchecksummed block: not packed

	var packed bytes.Buffer
	if err := pack.Pack(bytes.NewReader(img), int64(len(img)), &packed); err != nil {
		panic(err)
	}
	out := make(exampleImage, len(img))
	h, err := pack.Unpack(&packed, out)
	if err != nil {
		panic(err)
	}
	fmt.Println("blocks:", h.NrBlocks)
	fmt.Println("checksummed blocks survive:", bytes.Equal(out[3*transaction.BlockSize:12*transaction.BlockSize], img[3*transaction.BlockSize:12*transaction.BlockSize]))
	fmt.Println("block 40 came back zero:", out[40*transaction.BlockSize] == 0)
	// Output:
	// blocks: 64
	// checksummed blocks survive: true
	// block 40 came back zero: true
}
