package transaction_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/transaction"
)

// StartWriteback is a hint: on a file it leaves what was written as it
// was and what is flushed, and on what cannot take it (a pipe) it does
// nothing.
func TestFileDeviceStartWriteback(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "dev"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dev := transaction.FileDevice{File: f}
	want := bytes.Repeat([]byte{0xa5}, 3*transaction.BlockSize)
	if _, err := dev.WriteAt(want, transaction.BlockSize); err != nil {
		t.Fatal(err)
	}
	var ws transaction.WritebackStarter = dev
	ws.StartWriteback(transaction.BlockSize, int64(len(want)))
	ws.StartWriteback(0, 1<<40) // past the end
	if err := dev.Flush(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := dev.ReadAt(got, transaction.BlockSize); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after the hint the file reads %x..., %v", got[:8], err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	transaction.FileDevice{File: w}.StartWriteback(0, transaction.BlockSize)
}

// WriteVAt writes its buffers back to back: more of them than one pwritev
// takes (it failed with EINVAL above 1024), empty ones among them and at
// the end (a vector left with only empty buffers never finished), at an
// offset beyond 4 GiB.
func TestFileDeviceWriteVAt(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "dev"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dev := transaction.FileDevice{File: f}
	r := rand.New(rand.NewPCG(5, 5))
	for _, nbufs := range []int{1, 3, 1024, 1025, 2500} {
		var bufs [][]byte
		var want []byte
		for i := range nbufs {
			b := make([]byte, 1+r.IntN(40))
			if i%7 == 3 || i == nbufs-1 {
				b = b[:0] // empty, the last one too
			}
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			bufs = append(bufs, b)
			want = append(want, b...)
		}
		off := int64(5<<30 + 123*nbufs)
		done := make(chan error, 1)
		go func() { done <- dev.WriteVAt(slices.Clone(bufs), off) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("WriteVAt of %d buffers: %v", nbufs, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("WriteVAt of %d buffers, the last one empty, has not returned after 10 s", nbufs)
		}
		got := make([]byte, len(want))
		if _, err := f.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("WriteVAt of %d buffers wrote other bytes", nbufs)
		}
	}
}
