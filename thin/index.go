package thin

import (
	"fmt"
	"iter"

	"github.com/thinmeta/thinmeta/internal/blobindex"
)

// The blob index of an extended pool maps a hash of a thin's key (the first
// IndexBytes bytes of its blob) to the thin's id; internal/blobindex holds
// its layout and probing.

func (m *Metadata) key(blob []byte) (uint64, bool) {
	if m.indexRoot == 0 || m.indexBytes == 0 {
		return 0, false
	}
	return blobindex.Hash(blob[:m.indexBytes])
}

// indexAdd indexes thin id under its blob's key.
func (m *Metadata) indexAdd(id uint64, blob []byte) error {
	h, ok := m.key(blob)
	if !ok {
		return nil
	}
	var err error
	m.indexRoot, err = blobindex.Add(m.tm, m.indexRoot, id, h)
	return err
}

// indexRemove removes thin id, indexed under its blob's key.
func (m *Metadata) indexRemove(id uint64, blob []byte) error {
	h, ok := m.key(blob)
	if !ok {
		return nil
	}
	var err error
	m.indexRoot, err = blobindex.Remove(m.tm, m.indexRoot, id, h)
	return err
}

// FindByKey yields the devices whose blob starts with key (which must be
// IndexBytes long), using the blob index.
func (p *Pool) FindByKey(key []byte) iter.Seq2[Device, error] {
	return func(yield func(Device, error) bool) {
		if err := p.usable(); err != nil {
			yield(Device{}, err)
			return
		}
		sb := p.sb
		if !sb.Extended() || sb.BlobIndexRoot == 0 || sb.IndexBytes == 0 {
			yield(Device{}, fmt.Errorf("pool has no blob index: %w", ErrNotExtended))
			return
		}
		if len(key) != int(sb.IndexBytes) {
			yield(Device{}, fmt.Errorf("%w: a key of %d bytes, where the index's keys have exactly %d", ErrBlobSize, len(key), sb.IndexBytes))
			return
		}
		h, ok := blobindex.Hash(key)
		if !ok {
			return
		}
		for id, err := range blobindex.Lookup(p.r, sb.BlobIndexRoot, h) {
			if err != nil {
				yield(Device{}, p.staleOr(err))
				return
			}
			d, err := p.Device(id)
			if err != nil {
				yield(Device{}, fmt.Errorf("blob index names thin %d: %w", id, err))
				return
			}
			if string(d.Blob[:len(key)]) == string(key) && !yield(d, nil) {
				return
			}
		}
	}
}
