package check_test

import (
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/transaction"
)

// switchingReaderAt reads old until after reads of its reads, then new: a
// pool a writer that ignores the locks commits to while it is checked.
type switchingReaderAt struct {
	old, new io.ReaderAt
	after    int64
	reads    atomic.Int64
}

func (s *switchingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if s.reads.Add(1) > s.after {
		return s.new.ReadAt(p, off)
	}
	return s.old.ReadAt(p, off)
}

// A check of a pool that changes while it is read (here: three commits that
// delete devices and create others, reusing the blocks of the old trees)
// ends with an error wrapping thin.ErrStale and reports no finding, however
// far it had gone when the pool changed; the same reads of the unchanged
// pool check clean. A check of the metadata snapshot, which those commits
// leave held, is not stale: it checks clean through the change.
func TestCheckStale(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"gen-deep", "gen-snapshots"} {
		oldImg := makeGenBase(t, base).img
		newImg := oldImg + ".new"
		data, err := os.ReadFile(oldImg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(newImg, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rogueCommits(t, newImg)
		oldF, _ := os.Open(oldImg)
		newF, _ := os.Open(newImg)
		defer oldF.Close()
		defer newF.Close()
		size := int64(len(data))
		run := func(o optionSet, after int64) (check.Summary, []check.Finding, error, int64) {
			r := &switchingReaderAt{old: oldF, new: newF, after: after}
			var got []check.Finding
			sum, err := check.Device(context.Background(), r, size, o.opts, func(f check.Finding) { got = append(got, f) })
			return sum, got, err, r.reads.Load()
		}
		opts := []optionSet{optPlain}
		if base == "gen-snapshots" {
			opts = append(opts, optSnap)
		}
		for _, o := range opts {
			for _, after := range []int64{2, 10, 40, 200, 1000} {
				sum, got, err, reads := run(o, after)
				if reads <= after {
					if after < 40 {
						t.Fatalf("%s %s: the check made only %d reads", base, o.name, reads)
					}
					continue
				}
				if o.name == optSnap.name {
					if err != nil || len(got) != 0 || !sum.OK(false) {
						t.Errorf("%s %s, live pool changed after %d reads: %v, %d findings (%+v); want a clean check",
							base, o.name, after, err, len(got), got[:min(len(got), 3)])
					}
					continue
				}
				if !errors.Is(err, thin.ErrStale) || len(got) != 0 || sum.Fatal+sum.NonFatal != 0 {
					t.Errorf("%s %s, pool changed after %d reads: error %v, %d findings reported (%+v), summary %d fatal %d non-fatal; want ErrStale and none",
						base, o.name, after, err, len(got), got[:min(len(got), 3)], sum.Fatal, sum.NonFatal)
				}
			}
			sum, got, err, _ := run(o, 1<<40)
			if err != nil || len(got) != 0 || !sum.OK(false) {
				t.Fatalf("%s %s, unchanged pool: %v, %v", base, o.name, err, got)
			}
		}
	}
}

// rogueCommits changes the pool in img as a writer that ignores the locks
// would: every device deleted and another created and mapped, in three
// commits.
func rogueCommits(t *testing.T, img string) {
	t.Helper()
	p, err := thin.Open(img, &thin.OpenOptions{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for d, err := range p.Devices() {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	p.Close()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	md, err := thin.NewMetadata(transaction.FileDevice{File: f}, st.Size(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(3) {
		for k, id := range ids {
			if k%3 == int(i) {
				if err := md.Delete(id); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := md.CreateThin(1000 + i); err != nil {
			t.Fatal(err)
		}
		if err := md.MapRange(1000+i, 0, 500); err != nil {
			t.Fatal(err)
		}
		if err := md.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := md.Close(); err != nil {
		t.Fatal(err)
	}
}
