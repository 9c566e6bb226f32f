//go:build linux

package devfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// foreignLock locks path as another process would (flock on an open file
// description of its own, not known to this process's writers).
func foreignLock(t *testing.T, path string, how int) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func newFile(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Readers share; a writer excludes readers and writers; the refusal is
// ErrLocked (also ErrBusy) naming the path.
func TestLockModes(t *testing.T) {
	p := newFile(t, t.TempDir(), "meta")
	sh := foreignLock(t, p, unix.LOCK_SH)
	r, _, err := OpenRead(p, nil)
	if err != nil {
		t.Fatalf("a reader beside a reader: %v", err)
	}
	r.Close()
	if _, _, err := OpenWrite(p, nil); !errors.Is(err, ErrLocked) || !errors.Is(err, ErrBusy) {
		t.Fatalf("a writer beside a reader: %v, want ErrLocked", err)
	}
	sh.Close()
	foreignLock(t, p, unix.LOCK_EX)
	if _, _, err := OpenRead(p, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("a reader beside a writer: %v, want ErrLocked", err)
	} else if want := p + ": "; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Fatalf("the error does not name the path: %v", err)
	}
}

// In one process, a reader may open a file its own writer holds (the
// writer's lock already excludes other processes); once the writer is
// closed, the reader takes the lock again.
func TestOwnWriter(t *testing.T) {
	p := newFile(t, t.TempDir(), "meta")
	w, _, err := OpenWrite(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := OpenRead(p, nil)
	if err != nil {
		t.Fatalf("a reader beside this process's writer: %v", err)
	}
	r.Close()
	w.Close()
	r, _, err = OpenRead(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	other, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := unix.Flock(int(other.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Fatalf("a writer beside the reader: %v; the reader holds no lock", err)
	}
}

// A writer waiting for the lock of a file that is replaced meanwhile (by
// rename) starts again on the new file: it never works on an unlinked
// pool. Replace itself waits for the old file's lock.
func TestWaitAcrossReplace(t *testing.T) {
	dir := t.TempDir()
	p := newFile(t, dir, "meta")
	holder := foreignLock(t, p, unix.LOCK_SH)
	got := make(chan *os.File, 1)
	go func() {
		dev, _, err := OpenWrite(p, &Options{Wait: true})
		if err != nil {
			t.Error(err)
		}
		got <- dev.File
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-got:
		t.Fatal("the writer did not wait for the reader")
	default:
	}
	tmp := newFile(t, dir, "new")
	if err := Replace(tmp, p, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("Replace over a locked file: %v, want ErrLocked", err)
	}
	if err := os.Rename(tmp, p); err != nil { // a replacer that did not wait
		t.Fatal(err)
	}
	holder.Close()
	f := <-got
	defer f.Close()
	st, _ := os.Stat(p)
	fst, _ := f.Stat()
	if !os.SameFile(st, fst) {
		t.Fatal("the waiting writer holds the replaced (unlinked) file")
	}
}

// A FIFO is refused before it is opened, so nothing blocks on it.
func TestFIFORefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 2)
	go func() { _, _, err := OpenRead(p, nil); done <- err }()
	go func() { _, _, err := OpenWrite(p, nil); done <- err }()
	for range 2 {
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotDevice) {
				t.Fatalf("a FIFO: %v, want ErrNotDevice", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("opening a FIFO blocked")
		}
	}
}

// SameFile: one regular file by two names (a hard link) is the same file;
// two nodes of one block device are the same device (os.SameFile says
// they differ); nodes of two block devices, and a character device with a
// block device's numbers, are not. CheckNotSame uses it. Nodes are only
// made and stat'ed, never opened.
func TestSameFile(t *testing.T) {
	dir := t.TempDir()
	a := newFile(t, dir, "a")
	link := filepath.Join(dir, "link")
	if err := os.Link(a, link); err != nil {
		t.Fatal(err)
	}
	b := newFile(t, dir, "b")
	mk := func(name string, mode uint32, dev int) string {
		p := filepath.Join(dir, name)
		if err := unix.Mknod(p, mode|0o600, dev); err != nil {
			t.Skipf("mknod (needs root): %v", err)
		}
		return p
	}
	loop0, loop1 := int(unix.Mkdev(7, 0)), int(unix.Mkdev(7, 1))
	blk1, blk2 := mk("blk1", unix.S_IFBLK, loop0), mk("blk2", unix.S_IFBLK, loop0)
	other := mk("other", unix.S_IFBLK, loop1)
	chr := mk("chr", unix.S_IFCHR, loop0)
	stat := func(p string) os.FileInfo {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tc := range []struct {
		x, y string
		same bool
	}{
		{a, link, true}, {a, b, false}, {blk1, blk2, true}, {blk1, blk1, true},
		{blk1, other, false}, {blk1, chr, false}, {a, blk1, false},
	} {
		if got := SameFile(stat(tc.x), stat(tc.y)); got != tc.same {
			t.Errorf("SameFile(%s, %s) = %v, want %v", filepath.Base(tc.x), filepath.Base(tc.y), got, tc.same)
		}
	}
	f, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := CheckNotSame(link, f); !errors.Is(err, ErrSameFile) {
		t.Errorf("CheckNotSame(hard link): %v, want ErrSameFile", err)
	}
	if err := CheckNotSame(b, f); err != nil {
		t.Errorf("CheckNotSame(another file): %v", err)
	}
}
