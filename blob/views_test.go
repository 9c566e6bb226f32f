package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// frozen is what a view must keep showing: its thins, count and dump, read
// from a private copy of the file's bytes at the moment the view was
// opened (an independent reading of that commit).
type frozen struct {
	thins []blob.Thin
	count uint64
	dump  []byte
}

func freeze(t *testing.T, path string) frozen {
	t.Helper()
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := blob.NewPool(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	return read(t, p)
}

func read(t *testing.T, p *blob.Pool) frozen {
	t.Helper()
	var f frozen
	for th, err := range p.Thins() {
		if err != nil {
			t.Fatalf("Thins: %v", err)
		}
		f.thins = append(f.thins, th.Clone())
	}
	f.count = p.Count()
	var b bytes.Buffer
	if err := dump.Dump(context.Background(), &b, p.View(), dump.Options{}); err != nil {
		t.Fatalf("dump: %v", err)
	}
	f.dump = b.Bytes()
	return f
}

func (f frozen) same(t *testing.T, what string, p *blob.Pool) {
	t.Helper()
	g := read(t, p)
	if g.count != uint64(len(g.thins)) {
		t.Fatalf("%s: Count %d, Thins yields %d", what, g.count, len(g.thins))
	}
	eq := func(a, b blob.Thin) bool {
		return a.ID == b.ID && a.Details == b.Details && bytes.Equal(a.Blob, b.Blob)
	}
	if g.count != f.count || !slices.EqualFunc(g.thins, f.thins, eq) || !bytes.Equal(g.dump, f.dump) {
		t.Fatalf("%s moved from its commit:\n%s\nwas:\n%s", what, g.dump, f.dump)
	}
}

// A view stays exactly the commit it was opened on, however many commits
// follow, until it is closed: Writer.Committed, blob.Open of the same file
// in this process while the writer holds it (its Committed view) and a
// metadata-snapshot view taken from one, through 200 commits of SetBlob,
// deletes and recreates. Thins and Count agree, and all equal a reading of
// a copy of the file's bytes made when the view was opened. Closing the
// views releases every pin. (Before, the writer reused blocks the views
// read: Thins yielded 6 thins while Count said 300, or failed with
// "unexpected value size".)
func TestViewsKeepTheirCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.img")
	w, err := blob.Create(path, &thin.FormatOptions{NrDataBlocks: 1000, BlobSize: 64, IndexBytes: 8, Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for i := range 6 {
		id, err := w.NewThin([]byte(fmt.Sprintf("thin-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	mustDo(t, w.Metadata().ReserveMetadataSnapshot())
	mustDo(t, w.Commit())
	want := freeze(t, path)

	committed, err := w.Committed()
	mustDo(t, err)
	opened, err := blob.Open(path, nil)
	mustDo(t, err)
	sv, err := committed.View().MetadataSnapshot()
	mustDo(t, err)
	snap, err := blob.FromView(sv)
	mustDo(t, err)
	wantSnap := read(t, snap)
	if got := w.Metadata().Manager().OpenPins(); got != 2 {
		t.Fatalf("%d pins open, want 2 (Committed, blob.Open)", got)
	}

	rng := rand.New(rand.NewPCG(9, 9))
	churn := func(w *blob.Writer, n int) {
		for c := range n {
			for range 1 + rng.IntN(3) {
				id := ids[rng.IntN(len(ids))]
				switch rng.IntN(4) {
				case 0:
					mustDo(t, w.Delete(id))
					nid, err := w.NewThin([]byte(fmt.Sprintf("re-%d", c)))
					mustDo(t, err)
					ids[slices.Index(ids, id)] = nid
				default:
					mustDo(t, w.SetBlob(id, []byte(fmt.Sprintf("blob %d %d", c, rng.Uint64()))))
				}
			}
			for range rng.IntN(3) {
				id, err := w.NewThin([]byte(fmt.Sprintf("new-%d", c)))
				mustDo(t, err)
				ids = append(ids, id)
			}
			if c == n/2 && w.Metadata().Superblock().HeldRoot != 0 {
				// The snapshot view keeps what the released snapshot held.
				mustDo(t, w.Metadata().ReleaseMetadataSnapshot())
			}
			mustDo(t, w.Commit())
		}
	}
	churn(w, 100)
	want.same(t, "Committed", committed)
	want.same(t, "blob.Open", opened)
	wantSnap.same(t, "the metadata-snapshot view", snap)
	churn(w, 100)
	want.same(t, "Committed", committed)
	want.same(t, "blob.Open", opened)
	wantSnap.same(t, "the metadata-snapshot view", snap)
	// A snapshot view ends with the view it was taken from.
	mustDo(t, committed.Close())
	var err2 error
	for _, err := range snap.Thins() {
		err2 = err
	}
	if !errors.Is(err2, blob.ErrClosed) {
		t.Fatalf("the snapshot view after its parent closed: %v", err2)
	}
	mustDo(t, snap.Close())
	mustDo(t, opened.Close())
	if got := w.Metadata().Manager().OpenPins(); got != 0 {
		t.Fatalf("%d pins open after every view was closed", got)
	}

	// A view opened by path with no writer open holds the file: a writer
	// is refused (the lock) until it is closed, and it outlives nothing.
	mustDo(t, w.Close())
	want = freeze(t, path)
	early, err := blob.Open(path, nil)
	mustDo(t, err)
	if _, err := blob.OpenWriter(path, nil); !errors.Is(err, thin.ErrLocked) {
		t.Fatalf("a writer while a view of the file is open: %v", err)
	}
	want.same(t, "blob.Open with no writer", early)
	mustDo(t, early.Close())
	w, err = blob.OpenWriter(path, nil)
	mustDo(t, err)
	mustDo(t, w.Close())
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
