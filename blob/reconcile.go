package blob

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
)

// Entry is a volume manager's record of one thin: its id and its
// identity, what the manager expects the thin's blob to hold (padded with
// zeros to the blob size).
type Entry struct {
	ID       uint64
	Identity []byte
}

// Mismatch is a thin whose blob is not the identity the list gives it.
type Mismatch struct {
	ID       uint64
	Identity []byte // from the list
	Blob     []byte // from the pool
}

// Report is the outcome of Reconcile, each part in id order.
type Report struct {
	// Orphans are in the pool but not in the list: thins the manager lost
	// track of (their space is leaked until they are deleted).
	Orphans []Thin
	// Missing are in the list but not in the pool: records of thins that
	// do not exist (never created, or deleted).
	Missing []Entry
	// Mismatches are in both, with a blob other than the identity.
	Mismatches []Mismatch
	// Matched counts the thins in both, with the identity as blob.
	Matched uint64
}

// Clean reports whether the list and the pool agree.
func (r *Report) Clean() bool {
	return len(r.Orphans) == 0 && len(r.Missing) == 0 && len(r.Mismatches) == 0
}

// Reconcile compares a manager's list of thins with the pool. The list may
// be in any order (it is not modified) but must not name an id twice
// (ErrDuplicate); an identity longer than the blob size is refused
// (ErrBlobSize). The pool is streamed, in one pass over its thins; memory
// grows with the list and the findings only.
func (p *Pool) Reconcile(list []Entry) (Report, error) {
	n := p.BlobSize()
	want := slices.Clone(list)
	slices.SortFunc(want, func(a, b Entry) int { return cmp.Compare(a.ID, b.ID) })
	for i, e := range want {
		if i > 0 && want[i-1].ID == e.ID {
			return Report{}, fmt.Errorf("thin %d: %w", e.ID, ErrDuplicate)
		}
		if len(e.Identity) > n {
			return Report{}, fmt.Errorf("%w: the identity of thin %d, %d bytes, is longer than the pool's blobs (%d bytes)", ErrBlobSize, e.ID, len(e.Identity), n)
		}
	}
	var r Report
	for t, err := range p.Thins() {
		if err != nil {
			return Report{}, err
		}
		for len(want) > 0 && want[0].ID < t.ID {
			r.Missing = append(r.Missing, want[0])
			want = want[1:]
		}
		if len(want) == 0 || want[0].ID > t.ID {
			r.Orphans = append(r.Orphans, t.Clone())
			continue
		}
		e := want[0]
		want = want[1:]
		if bytes.Equal(t.Blob[:len(e.Identity)], e.Identity) && allZero(t.Blob[len(e.Identity):]) {
			r.Matched++
			continue
		}
		r.Mismatches = append(r.Mismatches, Mismatch{ID: t.ID, Identity: e.Identity, Blob: bytes.Clone(t.Blob)})
	}
	r.Missing = append(r.Missing, want...)
	return r, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
