package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/thinmeta/thinmeta/pack"
	"github.com/thinmeta/thinmeta/thin"
)

// input is an opened metadata image: a device or file, or the unpacked
// contents of a packed image.
type input struct {
	io.ReaderAt
	size   int64
	closer func() error
}

func (in *input) Close() error {
	if in.closer == nil {
		return nil
	}
	return in.closer()
}

// memLimit is the largest packed image unpacked into memory; larger ones go
// to an unlinked temporary file.
const memLimit = 1 << 30

// openInput opens path for reading. A thin_metadata_pack file is unpacked,
// and an LZ4 frame decompressed, transparently. A block device is opened
// exclusively unless shared.
func openInput(path string, shared bool) (*input, error) {
	f, size, err := thin.OpenFile(path, shared)
	if err != nil {
		return nil, err
	}
	var magic [8]byte
	if n, _ := f.ReadAt(magic[:], 0); n == 8 && pack.IsPacked(magic[:]) {
		defer f.Close()
		return unpackInput(f)
	}
	if isLZ4(magic[:]) {
		defer f.Close()
		return lz4Input(f)
	}
	return &input{ReaderAt: f, size: size, closer: f.Close}, nil
}

func unpackInput(f *os.File) (*input, error) {
	h, err := pack.ReadHeader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	size := int64(h.NrBlocks) * 4096
	if size <= memLimit {
		buf := &memImage{b: make([]byte, size)}
		if _, err := pack.Unpack(f, buf); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
		return &input{ReaderAt: bytes.NewReader(buf.b), size: size}, nil
	}
	tmp, err := os.CreateTemp("", "thinmeta-unpacked-*")
	if err != nil {
		return nil, err
	}
	os.Remove(tmp.Name())
	if _, err := pack.Unpack(f, tmp); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return &input{ReaderAt: tmp, size: size, closer: tmp.Close}, nil
}

// memImage is an in-memory io.WriterAt of fixed size, safe for the
// concurrent writes of pack.Unpack.
type memImage struct {
	mu sync.Mutex
	b  []byte
}

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, fmt.Errorf("write beyond image end")
	}
	return copy(m.b[off:], p), nil
}

// openPool opens a metadata image read-only as a pool. shared opens a block
// device without exclusive access (for metadata-snapshot reads).
func openPool(path string, shared bool) (*thin.Pool, error) {
	in, err := openInput(path, shared)
	if err != nil {
		return nil, err
	}
	p, err := thin.NewPool(in, in.size)
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	thin.SetCloser(p, in)
	return p, nil
}
