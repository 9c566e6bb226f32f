package transaction

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// A Reader is documented as safe for concurrent use: goroutines reading
// the same few blocks through a cache smaller than them (so that blocks
// are missed, inserted twice, evicted and read again at once) each get
// the block they asked for. Run under the race detector by .ci/run (its
// name has ConcurrentReaders in it); before Read took a cached entry's
// fields under the lock, -race reported Read against insert here.
func TestReaderConcurrentReaders(t *testing.T) {
	const nr = 16
	data := make([]byte, nr*BlockSize)
	for b := range uint64(nr) {
		blk := data[b*BlockSize : (b+1)*BlockSize]
		copy(blk[64:], fmt.Sprintf("block %02d", b))
		Seal(blk, b, SaltNode)
	}
	v := &Validator{Kind: "test", Salt: SaltNode}
	r := NewReader(bytes.NewReader(data), int64(len(data)))
	r.SetCacheBlocks(4)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			buf := make([]byte, BlockSize)
			for i := range 3000 {
				b := uint64((i*(g+1) + g) % nr)
				want := fmt.Sprintf("block %02d", b)
				var got []byte
				var err error
				if i%3 == 0 {
					err, got = r.ReadInto(b, buf, v), buf
				} else {
					got, err = r.Read(b, v)
				}
				if err != nil || string(got[64:72]) != want {
					errs <- fmt.Errorf("goroutine %d read %d: %q, %v", g, b, got[64:72], err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
