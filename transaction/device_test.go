package transaction_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

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
