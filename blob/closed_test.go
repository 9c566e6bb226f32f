package blob_test

import (
	"errors"
	"iter"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/thin"
)

func drain[T any](s iter.Seq2[T, error]) error {
	for _, err := range s {
		if err != nil {
			return err
		}
	}
	return nil
}

// closedTable lists, for a type, a call of each method that can fail (all
// must return ErrClosed once the value is closed) and the accessors
// without an error result; covers fails when the type has a method the
// table does not name.
type closedTable[T any] struct {
	calls     map[string]func(T) error
	accessors []string
}

func (c closedTable[T]) covers(t *testing.T, x T) {
	t.Helper()
	typ := reflect.TypeOf(x)
	for i := range typ.NumMethod() {
		name := typ.Method(i).Name
		if _, ok := c.calls[name]; !ok && !slices.Contains(c.accessors, name) {
			t.Errorf("%s.%s is not in the table of methods after Close", typ, name)
		}
	}
}

func (c closedTable[T]) allClosed(t *testing.T, what string, x T) {
	t.Helper()
	for name, call := range c.calls {
		if err := call(x); !errors.Is(err, blob.ErrClosed) {
			t.Errorf("%s: %s after Close: %v, want ErrClosed", what, name, err)
		}
	}
}

var writerCalls = closedTable[*blob.Writer]{
	calls: map[string]func(*blob.Writer) error{
		"Close": func(w *blob.Writer) error {
			if err := w.Close(); err != nil {
				return err
			}
			return blob.ErrClosed // idempotent
		},
		"Commit":             func(w *blob.Writer) error { return w.Commit() },
		"Abort":              func(w *blob.Writer) error { return w.Abort() },
		"Committed":          func(w *blob.Writer) error { _, err := w.Committed(); return err },
		"AllocateID":         func(w *blob.Writer) error { _, err := w.AllocateID(); return err },
		"CreateThin":         func(w *blob.Writer) error { return w.CreateThin(w.NextID(), nil) },
		"NewThin":            func(w *blob.Writer) error { _, err := w.NewThin(nil); return err },
		"CreateSnapshot":     func(w *blob.Writer) error { return w.CreateSnapshot(w.NextID(), 0, nil) },
		"NewSnapshot":        func(w *blob.Writer) error { _, err := w.NewSnapshot(0, nil); return err },
		"Thin":               func(w *blob.Writer) error { _, err := w.Thin(0); return err },
		"Blob":               func(w *blob.Writer) error { _, err := w.Blob(0); return err },
		"FreeMetadataBlocks": func(w *blob.Writer) error { _, err := w.FreeMetadataBlocks(); return err },
		"SetBlob":            func(w *blob.Writer) error { return w.SetBlob(0, []byte("x")) },
		"ClearBlob":          func(w *blob.Writer) error { return w.ClearBlob(0) },
		"Delete":             func(w *blob.Writer) error { return w.Delete(0) },
		// The metadata it wraps is closed with it.
		"Metadata": func(w *blob.Writer) error { return w.Metadata().CreateThin(w.NextID()) },
	},
	accessors: []string{"BlobSize", "Count", "NextID"},
}

var blobPoolCalls = closedTable[*blob.Pool]{
	calls: map[string]func(*blob.Pool) error{
		"Close": func(p *blob.Pool) error {
			if err := p.Close(); err != nil {
				return err
			}
			return blob.ErrClosed
		},
		"Thin":      func(p *blob.Pool) error { _, err := p.Thin(0); return err },
		"Thins":     func(p *blob.Pool) error { return drain(p.Thins()) },
		"ThinsIn":   func(p *blob.Pool) error { return drain(p.ThinsIn(0, 10)) },
		"Find":      func(p *blob.Pool) error { return drain(p.Find([]byte("a"))) },
		"Reconcile": func(p *blob.Pool) error { _, err := p.Reconcile(nil); return err },
		// The view it wraps is closed with it.
		"View": func(p *blob.Pool) error { return drain(p.View().Devices()) },
	},
	accessors: []string{"BlobSize", "IndexBytes", "NextID", "Count"},
}

// After Close every method of Writer and Pool that can fail returns
// ErrClosed, Close is idempotent, and Committed views end with their
// Writer (as does blob.Open of the file the Writer holds) while blob.Open
// with no writer is a view of its own. The tables cover every exported
// method. (Before, w.Close(); w.NewThin(...) returned id 1 and nil.)
func TestErrClosedAfterCloseBlob(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.img")
	w, err := blob.Create(path, &thin.FormatOptions{NrDataBlocks: 100, BlobSize: 16, IndexBytes: 4, Size: 4 << 20})
	mustDo(t, err)
	_, err = w.NewThin([]byte("a"))
	mustDo(t, err)
	mustDo(t, w.Commit())
	writerCalls.covers(t, w)
	committed, err := w.Committed()
	mustDo(t, err)
	blobPoolCalls.covers(t, committed)
	// blob.Open while the writer holds the file: its Committed view.
	held, err := blob.Open(path, nil)
	mustDo(t, err)
	for _, p := range []*blob.Pool{committed, held} {
		if err := drain(p.Thins()); err != nil {
			t.Fatal(err)
		}
	}
	mustDo(t, w.Close())
	writerCalls.allClosed(t, "Writer", w)
	blobPoolCalls.allClosed(t, "Committed after the writer closed", committed)
	blobPoolCalls.allClosed(t, "blob.Open of a held file after the writer closed", held)
	// With no writer, blob.Open's view is its own.
	opened, err := blob.Open(path, nil)
	mustDo(t, err)
	if err := drain(opened.Find([]byte("a"))); err != nil {
		t.Fatalf("blob.Open's view: %v", err)
	}
	mustDo(t, opened.Close())
	blobPoolCalls.allClosed(t, "blob.Open's view", opened)
}

// Closing the Writer's Metadata closes the Writer too: its methods return
// ErrClosed, and its own Close is then harmless.
func TestClosingMetadataClosesWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.img")
	w, err := blob.Create(path, &thin.FormatOptions{NrDataBlocks: 100, BlobSize: 16, Size: 4 << 20})
	mustDo(t, err)
	mustDo(t, w.Metadata().Close())
	writerCalls.allClosed(t, "Writer after its Metadata closed", w)
}
