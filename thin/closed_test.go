package thin_test

import (
	"errors"
	"iter"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
)

// drain returns the first error an iterator yields.
func drain[T any](s iter.Seq2[T, error]) error {
	for _, err := range s {
		if err != nil {
			return err
		}
	}
	return nil
}

// closedCalls is, for a type, a call of each method that returns an error
// (all must return ErrClosed once the value is closed), and the methods
// without one (accessors), by name. coverAll fails when the type has a
// method the table does not name: a new method must be added here.
type closedCalls[T any] struct {
	calls     map[string]func(T) error
	accessors []string
}

func (c closedCalls[T]) coverAll(t *testing.T, x T) {
	t.Helper()
	typ := reflect.TypeOf(x)
	for i := range typ.NumMethod() {
		name := typ.Method(i).Name
		if _, ok := c.calls[name]; !ok && !slices.Contains(c.accessors, name) {
			t.Errorf("%s.%s is not in the table of methods after Close", typ, name)
		}
	}
}

func (c closedCalls[T]) allClosed(t *testing.T, what string, x T) {
	t.Helper()
	for name, call := range c.calls {
		if err := call(x); !errors.Is(err, thin.ErrClosed) {
			t.Errorf("%s: %s after Close: %v, want ErrClosed", what, name, err)
		}
	}
}

func treeClosed(tr btree.Tree) error {
	_, _, err := tr.Lookup(0)
	return err
}

var poolCalls = closedCalls[*thin.Pool]{
	calls: map[string]func(*thin.Pool) error{
		"Close": func(p *thin.Pool) error {
			if err := p.Close(); err != nil {
				return err
			}
			return thin.ErrClosed // idempotent: a second Close returns nil
		},
		"FindByKey":        func(p *thin.Pool) error { return drain(p.FindByKey([]byte{1})) },
		"MetadataSnapshot": func(p *thin.Pool) error { _, err := p.MetadataSnapshot(); return err },
		"SnapshotAt":       func(p *thin.Pool) error { _, err := p.SnapshotAt(0); return err },
		"Devices":          func(p *thin.Pool) error { return drain(p.Devices()) },
		"Device":           func(p *thin.Pool) error { _, err := p.Device(1); return err },
		"DeviceRoots":      func(p *thin.Pool) error { return drain(p.DeviceRoots()) },
		"Root":             func(p *thin.Pool) error { _, err := p.Root(1); return err },
		"Lookup":           func(p *thin.Pool) error { _, _, err := p.Lookup(1, 0); return err },
		"Mappings":         func(p *thin.Pool) error { return drain(p.Mappings(1, 0, 100)) },
		"Runs":             func(p *thin.Pool) error { return drain(p.Runs(1, 0, 100)) },
		"DataSpaceMap":     func(p *thin.Pool) error { _, err := p.DataSpaceMap(); return err },
		"Stale":            func(p *thin.Pool) error { return p.Stale() },
		"MetadataSpaceMap": func(p *thin.Pool) error { _, err := p.MetadataSpaceMap(); return err },
		// Trees and the reader are handed out, and fail when read.
		"MappingTree": func(p *thin.Pool) error { return treeClosed(p.MappingTree()) },
		"DetailsTree": func(p *thin.Pool) error { return treeClosed(p.DetailsTree()) },
		"DeviceTree":  func(p *thin.Pool) error { return treeClosed(p.DeviceTree(1)) },
		"Reader": func(p *thin.Pool) error {
			_, err := p.Reader().Read(0, superblock.Validator)
			return err
		},
	},
	accessors: []string{"Superblock", "LiveSuperblock", "IsSnapshot", "HasMetadataSnapshot",
		"Variant", "BlobSize", "DetailsSize", "NrDataBlocks"},
}

var metadataCalls = closedCalls[*thin.Metadata]{
	calls: map[string]func(*thin.Metadata) error{
		"Close": func(m *thin.Metadata) error {
			if err := m.Close(); err != nil {
				return err
			}
			return thin.ErrClosed
		},
		"CreateThinFromTree":      func(m *thin.Metadata) error { return m.CreateThinFromTree(9, 1, 0) },
		"AllocateID":              func(m *thin.Metadata) error { _, err := m.AllocateID(); return err },
		"CreateThinWithBlob":      func(m *thin.Metadata) error { return m.CreateThinWithBlob(9, nil) },
		"CreateSnapshotWithBlob":  func(m *thin.Metadata) error { return m.CreateSnapshotWithBlob(9, 1, nil) },
		"Blob":                    func(m *thin.Metadata) error { _, err := m.Blob(1); return err },
		"SetBlob":                 func(m *thin.Metadata) error { return m.SetBlob(1, nil) },
		"ClearBlob":               func(m *thin.Metadata) error { return m.ClearBlob(1) },
		"Commit":                  func(m *thin.Metadata) error { return m.Commit() },
		"Abort":                   func(m *thin.Metadata) error { return m.Abort() },
		"ReleaseMetadataSnapshot": func(m *thin.Metadata) error { return m.ReleaseMetadataSnapshot() },
		"ReserveMetadataSnapshot": func(m *thin.Metadata) error { return m.ReserveMetadataSnapshot() },
		"ResizeData":              func(m *thin.Metadata) error { return m.ResizeData(1 << 20) },
		"ResizeMetadata":          func(m *thin.Metadata) error { return m.ResizeMetadata(300) },
		"Convert": func(m *thin.Metadata) error {
			return m.Convert(thin.ConvertOptions{Variant: thin.Extended, BlobSize: 8})
		},
		"Details":            func(m *thin.Metadata) error { _, err := m.Details(1); return err },
		"SetDetails":         func(m *thin.Metadata) error { return m.SetDetails(1, thin.Details{}) },
		"CreateThin":         func(m *thin.Metadata) error { return m.CreateThin(9) },
		"CreateSnapshot":     func(m *thin.Metadata) error { return m.CreateSnapshot(9, 1) },
		"Delete":             func(m *thin.Metadata) error { return m.Delete(1) },
		"MapTo":              func(m *thin.Metadata) error { return m.MapTo(1, 50, 500) },
		"Map":                func(m *thin.Metadata) error { _, err := m.Map(1, 50); return err },
		"MapRange":           func(m *thin.Metadata) error { return m.MapRange(1, 50, 5) },
		"Unmap":              func(m *thin.Metadata) error { _, err := m.Unmap(1, 0, 5); return err },
		"Lookup":             func(m *thin.Metadata) error { _, _, err := m.Lookup(1, 0); return err },
		"FreeMetadataBlocks": func(m *thin.Metadata) error { _, err := m.FreeMetadataBlocks(); return err },
		"FreeDataBlocks":     func(m *thin.Metadata) error { _, err := m.FreeDataBlocks(); return err },
		"SetTransactionID":   func(m *thin.Metadata) error { return m.SetTransactionID(m.TransactionID(), 5) },
		"Committed":          func(m *thin.Metadata) error { _, err := m.Committed(); return err },
		// A view taken after Close is closed.
		"View": func(m *thin.Metadata) error { return drain(m.View().Devices()) },
		// No error result: does nothing after Close.
		"SetNeedsCheck": func(m *thin.Metadata) error {
			was := m.NeedsCheck()
			m.SetNeedsCheck(!was)
			if m.NeedsCheck() != was {
				return errors.New("SetNeedsCheck changed the flag after Close")
			}
			return thin.ErrClosed
		},
	},
	accessors: []string{"Variant", "BlobSize", "NextID", "NrThins", "Manager", "Superblock", "Time",
		"TransactionID", "NeedsCheck", "DataSpaceMap", "MetadataSpaceMap"},
}

// closedPool makes a pool with thin 1 (ten mappings) and a metadata
// snapshot, committed, in a file.
func closedPool(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.img")
	md, err := thin.CreateMetadata(path, &thin.FormatOptions{NrDataBlocks: 1000, Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, md.CreateThin(1))
	mustDo(t, md.MapRange(1, 0, 10))
	mustDo(t, md.ReserveMetadataSnapshot())
	mustDo(t, md.Commit())
	mustDo(t, md.Close())
	return path
}

// After Close, every method of Metadata and Pool that can fail returns
// ErrClosed (iterators yield it, trees and readers handed out fail when
// read), a second Close returns nil, and views taken from a writer end
// with it as their documentation says: View and Committed views (and
// thin.Open of the file the writer holds) fail with ErrClosed once the
// writer is closed, and a metadata-snapshot view once the view it came
// from is. The table of methods covers every exported
// method. (Before, w.Close(); w.NewThin(...) returned id 1 and a second
// Close failed.)
func TestErrClosedAfterClose(t *testing.T) {
	path := closedPool(t)
	md, err := thin.OpenMetadata(path, nil)
	mustDo(t, err)
	metadataCalls.coverAll(t, md)
	view := md.View()
	poolCalls.coverAll(t, view)
	committed, err := md.Committed()
	mustDo(t, err)
	snapOfCommitted, err := committed.MetadataSnapshot()
	mustDo(t, err)
	held, err := thin.Open(path, nil) // the writer's Committed view
	mustDo(t, err)
	// Each works before.
	for _, p := range []*thin.Pool{view, committed, snapOfCommitted, held} {
		if err := drain(p.Mappings(1, 0, 100)); err != nil {
			t.Fatal(err)
		}
	}
	mustDo(t, md.Close())
	metadataCalls.allClosed(t, "Metadata", md)
	poolCalls.allClosed(t, "View after the writer closed", view)
	poolCalls.allClosed(t, "Committed after the writer closed", committed)
	poolCalls.allClosed(t, "a snapshot of Committed after the writer closed", snapOfCommitted)
	poolCalls.allClosed(t, "thin.Open of the held file after the writer closed", held)
	// With no writer, Open's view is its own.
	opened, err := thin.Open(path, nil)
	mustDo(t, err)
	snapOfOpened, err := opened.MetadataSnapshot()
	mustDo(t, err)
	if err := drain(snapOfOpened.Mappings(1, 0, 100)); err != nil {
		t.Fatal(err)
	}
	mustDo(t, opened.Close())
	poolCalls.allClosed(t, "thin.Open's view", opened)
	poolCalls.allClosed(t, "a snapshot view after its parent closed", snapOfOpened)
}
