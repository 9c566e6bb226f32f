package transaction

import (
	"bytes"
	"errors"
	"testing"
)

// After Close every way of reading a Reader fails with ErrClosed (a cached
// block too); a Reader derived from it fails as well, while closing the
// derived one leaves the parent reading; a guard's error stops reads
// until it clears.
func TestReaderClose(t *testing.T) {
	data := make([]byte, 4*BlockSize)
	for b := range uint64(4) {
		Seal(data[b*BlockSize:(b+1)*BlockSize], b, SaltNode)
	}
	v := &Validator{Kind: "test", Salt: SaltNode}
	reads := func(r *Reader) map[string]error {
		buf := make([]byte, BlockSize)
		_, errRead := r.Read(1, v)
		return map[string]error{
			"Read":      errRead,
			"ReadInto":  r.ReadInto(2, buf, v),
			"ReadRaw":   r.ReadRaw(3, buf),
			"ReadAhead": NewReadAhead(r, 4).ReadInto(0, buf, v),
		}
	}
	all := func(what string, r *Reader, want error) {
		t.Helper()
		for name, err := range reads(r) {
			if !errors.Is(err, want) && !(want == nil && err == nil) {
				t.Errorf("%s: %s: %v, want %v", what, name, err, want)
			}
		}
	}
	parent := NewReader(bytes.NewReader(data), int64(len(data)))
	child := parent.Derive(nil, int64(len(data)))
	all("open parent", parent, nil) // block 1 is cached now
	all("open child", child, nil)
	child.Close()
	all("closed child", child, ErrClosed)
	all("parent of a closed child", parent, nil)
	if parent.Closed() || !child.Closed() {
		t.Fatalf("Closed: parent %v, child %v", parent.Closed(), child.Closed())
	}
	other := parent.Derive(nil, int64(len(data)))
	parent.Close()
	parent.Close() // harmless
	all("closed parent", parent, ErrClosed)
	all("child of a closed parent", other, ErrClosed)

	stale := errors.New("stale")
	var guardErr error
	g := NewReader(bytes.NewReader(data), int64(len(data)))
	g.Guard(func() error { return guardErr })
	gc := g.Derive(nil, int64(len(data)))
	all("guard passing", gc, nil)
	guardErr = stale
	all("guard failing", g, stale)
	all("child of a failing guard", gc, stale)
	guardErr = nil
	all("guard passing again", g, nil)
}
