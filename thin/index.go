package thin

import (
	"fmt"
	"hash/fnv"
	"iter"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/transaction"
)

// The blob index of an extended pool maps a hash of a thin's key (the first
// IndexBytes bytes of its blob) to the thin's id. It is a B-tree keyed by
// the 64-bit FNV-1a hash; colliding keys (two thins with the same key, or a
// rare hash collision) take the next free keys, as in a linear-probing hash
// table, so each value records its home hash as well as the thin id. A key
// of all zeros is not indexed.

// IndexValueSize is the value size of the blob index: thin id and home
// hash.
const IndexValueSize = 16

var indexVT = &btree.ValueType{Size: IndexValueSize}

// KeyHash returns the index hash of a key and whether the key is indexed
// (all-zero keys are not).
func KeyHash(key []byte) (uint64, bool) {
	zero := true
	for _, c := range key {
		if c != 0 {
			zero = false
			break
		}
	}
	if zero {
		return 0, false
	}
	h := fnv.New64a()
	h.Write(key)
	return h.Sum64(), true
}

func (m *Metadata) indexTree() btree.Tree {
	return btree.Tree{R: m.tm, Root: m.indexRoot, ValueSize: IndexValueSize}
}

func (m *Metadata) key(blob []byte) (uint64, bool) {
	if m.indexRoot == 0 || m.indexBytes == 0 {
		return 0, false
	}
	return KeyHash(blob[:m.indexBytes])
}

// indexAdd indexes thin id under its blob's key.
func (m *Metadata) indexAdd(id uint64, blob []byte) error {
	h, ok := m.key(blob)
	if !ok {
		return nil
	}
	for k, n := h, 0; ; k, n = k+1, n+1 {
		if n > 1<<20 {
			return transaction.Corruptf(m.indexRoot, btree.Kind, btree.ErrDepth, "blob index probe chain too long")
		}
		_, found, err := m.indexTree().Lookup(k)
		if err != nil {
			return err
		}
		if !found {
			m.indexRoot, _, err = btree.Insert(m.tm, m.indexRoot, indexVT, k, encodeIndexValue(id, h))
			return err
		}
	}
}

// between reports whether x lies in the cyclic interval (a, b].
func between(x, a, b uint64) bool {
	if a <= b {
		return a < x && x <= b
	}
	return a < x || x <= b
}

// indexRemove removes thin id, indexed under its blob's key.
func (m *Metadata) indexRemove(id uint64, blob []byte) error {
	h, ok := m.key(blob)
	if !ok {
		return nil
	}
	k := h
	for n := 0; ; k, n = k+1, n+1 {
		v, found, err := m.indexTree().Lookup(k)
		if err != nil {
			return err
		}
		if !found || n > 1<<20 {
			return transaction.Corruptf(m.indexRoot, btree.Kind, ErrIndexMissing, "thin %d is not in the blob index", id)
		}
		if vid, _ := DecodeIndexValue(v); vid == id {
			break
		}
	}
	// Remove slot k, then pull later entries of the run back into the hole
	// where their home allows, so every entry stays reachable from its home.
	var err error
	if m.indexRoot, _, err = btree.Remove(m.tm, m.indexRoot, indexVT, k); err != nil {
		return err
	}
	hole := k
	for j := k + 1; ; j++ {
		v, found, err := m.indexTree().Lookup(j)
		if err != nil {
			return err
		}
		if !found {
			return nil
		}
		vid, home := DecodeIndexValue(v)
		if between(home, hole, j) {
			continue // its home is after the hole: it must stay
		}
		if m.indexRoot, _, err = btree.Remove(m.tm, m.indexRoot, indexVT, j); err != nil {
			return err
		}
		if m.indexRoot, _, err = btree.Insert(m.tm, m.indexRoot, indexVT, hole, encodeIndexValue(vid, home)); err != nil {
			return err
		}
		hole = j
	}
}

// FindByKey yields the devices whose blob starts with key (which must be
// IndexBytes long), using the blob index.
func (p *Pool) FindByKey(key []byte) iter.Seq2[Device, error] {
	return func(yield func(Device, error) bool) {
		sb := p.sb
		if !sb.Extended() || sb.BlobIndexRoot == 0 || sb.IndexBytes == 0 {
			yield(Device{}, fmt.Errorf("thinmeta: pool has no blob index: %w", ErrNotExtended))
			return
		}
		if len(key) != int(sb.IndexBytes) {
			yield(Device{}, fmt.Errorf("thinmeta: key of %d bytes, the index uses %d: %w", len(key), sb.IndexBytes, ErrBlobSize))
			return
		}
		h, ok := KeyHash(key)
		if !ok {
			return
		}
		t := btree.Tree{R: p.src, Root: sb.BlobIndexRoot, ValueSize: IndexValueSize}
		for k, n := h, 0; n < 1<<20; k, n = k+1, n+1 {
			v, found, err := t.Lookup(k)
			if err != nil {
				yield(Device{}, err)
				return
			}
			if !found {
				return
			}
			id, home := DecodeIndexValue(v)
			if home != h {
				continue
			}
			d, err := p.Device(id)
			if err != nil {
				yield(Device{}, fmt.Errorf("thinmeta: blob index names thin %d: %w", id, err))
				return
			}
			if string(d.Blob[:len(key)]) == string(key) && !yield(d, nil) {
				return
			}
		}
	}
}
