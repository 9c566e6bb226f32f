package check_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/transaction"
)

// extendedPool builds an extended pool with indexed blobs (two thins share
// a key) and returns its image.
func extendedPool(t *testing.T) []byte {
	t.Helper()
	dev := memdev.New(1024 * 4096)
	md, err := thin.Format(dev, dev.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 1000, Variant: thin.Extended, BlobSize: 64, IndexBytes: 16})
	if err != nil {
		t.Fatal(err)
	}
	blob := func(name string) []byte { b := make([]byte, 64); copy(b, name); return b }
	for i, name := range []string{"root", "home", "home", "swap", ""} {
		id, err := md.AllocateID()
		if err != nil {
			t.Fatal(err)
		}
		if err := md.CreateThinWithBlob(id, blob(name)); err != nil {
			t.Fatal(err)
		}
		if _, err := md.Map(id, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	return dev.Bytes()
}

func checkBytes(t *testing.T, img []byte) (check.Summary, []check.Finding) {
	t.Helper()
	var fs []check.Finding
	sum, _ := check.Device(context.Background(), bytes.NewReader(img), int64(len(img)), check.Options{}, func(f check.Finding) { fs = append(fs, f) })
	return sum, fs
}

func hasFindingErr(fs []check.Finding, target error) bool {
	for _, f := range fs {
		if errors.Is(f.Err, target) {
			return true
		}
	}
	return false
}

// The extended format's own invariants: counters and the blob index.
func TestCheckExtended(t *testing.T) {
	img := extendedPool(t)
	if sum, fs := checkBytes(t, img); !sum.OK(false) {
		t.Fatalf("clean extended pool: %v", fs)
	}
	resealSuper := func(img []byte, edit func(*superblock.Superblock)) []byte {
		out := bytes.Clone(img)
		sb := superblock.Decode(out)
		edit(&sb)
		sb.Encode(out[:transaction.BlockSize])
		superblock.Validator.Prepare(out[:transaction.BlockSize], 0)
		return out
	}
	for _, tc := range []struct {
		name string
		img  []byte
		want error
	}{
		{"thin count", resealSuper(img, func(s *superblock.Superblock) { s.NrThins++ }), check.ErrExtendedCounters},
		{"next id at a used id", resealSuper(img, func(s *superblock.Superblock) { s.NextThinID = 2 }), check.ErrExtendedCounters},
		{"index without width", resealSuper(img, func(s *superblock.Superblock) { s.IndexBytes = 0 }), check.ErrBlobIndex},
		{"index entry hash", editIndexLeaf(t, img, func(n btree.Node) {
			v := n.Value(0)
			binary.LittleEndian.PutUint64(v[8:], binary.LittleEndian.Uint64(v[8:])^1)
		}), check.ErrBlobIndex},
		{"index entry removed", editIndexLeaf(t, img, func(n btree.Node) {
			// Drop the last entry (and its key): the thin is missing.
			n.SetNrEntries(n.NrEntries() - 1)
		}), check.ErrBlobIndex},
		{"index entry for no thin", editIndexLeaf(t, img, func(n btree.Node) {
			binary.LittleEndian.PutUint64(n.Value(0), 99)
		}), check.ErrBlobIndex},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, fs := checkBytes(t, tc.img)
			if sum.OK(false) || !hasFindingErr(fs, tc.want) {
				t.Fatalf("want %v, got %+v %v", tc.want, sum, fs)
			}
		})
	}
}

// editIndexLeaf edits the blob index's root leaf and reseals it.
func editIndexLeaf(t *testing.T, img []byte, edit func(btree.Node)) []byte {
	t.Helper()
	out := bytes.Clone(img)
	sb := superblock.Decode(out)
	b := sb.BlobIndexRoot
	n := btree.Node(out[b*transaction.BlockSize : (b+1)*transaction.BlockSize])
	if !n.IsLeaf() || n.NrEntries() < 3 {
		t.Fatalf("index root is not a leaf with entries")
	}
	edit(n)
	btree.Validator.Prepare(n, b)
	return out
}
