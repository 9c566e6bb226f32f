// Package blobindex is the blob index of an extended pool, shared by the
// packages that write it (thin, thin/restore) and those that read or
// damage it (blob, thin/check, gen).
//
// The index maps a hash of a thin's key (the first IndexBytes bytes of its
// blob) to the thin's id. It is a B-tree keyed by the 64-bit FNV-1a hash;
// colliding keys (two thins with the same key, or a rare hash collision)
// take the next free keys, as in a linear-probing hash table, so each value
// records its home hash as well as the thin id. A key of all zeros is not
// indexed (docs/EXTENSION.md).
//
// Layering: blobindex needs btree and transaction; it is internal so that
// its helpers are not part of the public API.
package blobindex

import (
	"errors"
	"fmt"
	"hash/fnv"
	"iter"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/transaction"
)

// VT is the value type of the index (its values hold no references).
var VT = &btree.ValueType{Size: ValueSize}

// MaxProbe bounds a probe run: a longer one means a damaged index.
const MaxProbe = 1 << 20

// ErrMissing means a thin is missing from the blob index.
var ErrMissing = errors.New("thin missing from the blob index")

// Hash returns the index hash of a key and whether the key is indexed
// (all-zero keys are not).
func Hash(key []byte) (uint64, bool) {
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

// Tree returns the index tree at root, read through r.
func Tree(r btree.BlockReader, root uint64) btree.Tree {
	return btree.Tree{R: r, Root: root, ValueSize: ValueSize}
}

// Add indexes thin id under hash h in the index at root and returns the
// new root.
func Add(tm *transaction.Manager, root, id, h uint64) (uint64, error) {
	for k, n := h, 0; ; k, n = k+1, n+1 {
		if n > MaxProbe {
			return root, transaction.Corruptf(root, btree.Kind, btree.ErrDepth, "blob index probe chain too long")
		}
		_, found, err := Tree(tm, root).Lookup(k)
		if err != nil {
			return root, err
		}
		if !found {
			root, _, err = btree.Insert(tm, root, VT, k, encodeValue(id, h))
			return root, err
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

// Remove removes thin id, indexed under hash h, from the index at root and
// returns the new root.
func Remove(tm *transaction.Manager, root, id, h uint64) (uint64, error) {
	k := h
	for n := 0; ; k, n = k+1, n+1 {
		v, found, err := Tree(tm, root).Lookup(k)
		if err != nil {
			return root, err
		}
		if !found || n > MaxProbe {
			return root, transaction.Corruptf(root, btree.Kind, ErrMissing, "thin %d is not in the blob index", id)
		}
		if vid, _ := DecodeValue(v); vid == id {
			break
		}
	}
	// Remove slot k, then pull later entries of the run back into the hole
	// where their home allows, so every entry stays reachable from its home.
	var err error
	if root, _, err = btree.Remove(tm, root, VT, k); err != nil {
		return root, err
	}
	hole := k
	for j := k + 1; ; j++ {
		v, found, err := Tree(tm, root).Lookup(j)
		if err != nil {
			return root, err
		}
		if !found {
			return root, nil
		}
		vid, home := DecodeValue(v)
		if between(home, hole, j) {
			continue // its home is after the hole: it must stay
		}
		if root, _, err = btree.Remove(tm, root, VT, j); err != nil {
			return root, err
		}
		if root, _, err = btree.Insert(tm, root, VT, hole, encodeValue(vid, home)); err != nil {
			return root, err
		}
		hole = j
	}
}

// Lookup yields the ids indexed under hash h in the index at root, read
// through r: the candidates whose key may be the one hashed (the caller
// compares the keys).
func Lookup(r btree.BlockReader, root, h uint64) iter.Seq2[uint64, error] {
	return func(yield func(uint64, error) bool) {
		t := Tree(r, root)
		for k, n := h, 0; n < MaxProbe; k, n = k+1, n+1 {
			v, found, err := t.Lookup(k)
			if err != nil {
				yield(0, err)
				return
			}
			if !found {
				return
			}
			id, home := DecodeValue(v)
			if home == h && !yield(id, nil) {
				return
			}
		}
	}
}

// Build builds a new index in a pool being built with manager tm: thins
// yields each thin's id and blob, and the first indexBytes bytes of each
// blob are its key. It returns the root of the index.
func Build(tm *transaction.Manager, indexBytes int, thins iter.Seq2[uint64, []byte]) (uint64, error) {
	root, err := btree.Empty(tm, VT)
	if err != nil {
		return 0, err
	}
	for id, blob := range thins {
		if len(blob) < indexBytes {
			return 0, fmt.Errorf("blob of thin %d has %d bytes, the index uses %d", id, len(blob), indexBytes)
		}
		h, ok := Hash(blob[:indexBytes])
		if !ok {
			continue
		}
		if root, err = Add(tm, root, id, h); err != nil {
			return 0, err
		}
	}
	return root, nil
}
