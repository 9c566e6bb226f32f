package live

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// writer writes generations to blocks [0, n) of a thin, round and round,
// recording for each block the last generation whose write completed and
// the one in flight.
type writer struct {
	d    *directIO
	n    int
	mu   sync.Mutex
	done []int // last completed generation per block
	busy map[int]int
	err  error
	stop chan struct{}
	wg   sync.WaitGroup
	gen  int
}

func startWriter(d *directIO, n int) *writer {
	w := &writer{d: d, n: n, done: make([]int, n), busy: map[int]int{}, stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			b := i % n
			w.mu.Lock()
			w.gen++
			g := w.gen
			w.busy[b] = g
			w.mu.Unlock()
			err := d.write(b, g)
			w.mu.Lock()
			delete(w.busy, b)
			if err != nil {
				w.err = err
				w.mu.Unlock()
				return
			}
			w.done[b] = g
			w.mu.Unlock()
		}
	}()
	return w
}

// state returns a copy of the completed generations and the writes in
// flight.
func (w *writer) state() ([]int, map[int]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	busy := map[int]int{}
	for k, v := range w.busy {
		busy[k] = v
	}
	return append([]int(nil), w.done...), busy
}

func (w *writer) finish() error {
	close(w.stop)
	w.wg.Wait()
	return w.err
}

// A snapshot of an origin that a writer keeps writing: the snapshot holds
// exactly the origin's content at the snapshot point (each block as its
// last write before the call left it, or as the one write in flight during
// the call left it), the origin every write. A metadata snapshot taken
// during the writes is dumped with thinmeta and kept held: the host
// compares the dump with thin_dump -m of the metadata after deactivation,
// and checks it with both thin_check generations.
func TestGuestSnapshotUnderWrites(t *testing.T) {
	const metaBytes, dataBytes, blocks = 8 << 20, 32 << 20, 24
	s := newScenario(t, regionSnapshotWrites, metaBytes, dataBytes)
	p := s.pool(CreateOptions{})
	if err := p.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	origin, err := p.ActivateThin("r1-origin", 1, blocks*blockSize)
	if err != nil {
		t.Fatal(err)
	}
	node, _ := origin.Path()
	d := openDirect(t, node)
	w := startWriter(d, blocks)
	time.Sleep(300 * time.Millisecond)

	// The metadata snapshot, dumped while the writer runs, and kept.
	if _, err := p.ReserveMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}
	var dumped bytes.Buffer
	if err := p.ReadHeld(func(snap *thin.Pool) error { return dump.Dump(context.Background(), &dumped, snap, dump.Options{}) }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)

	before, _ := w.state()
	if err := p.Snapshot(2, 1, nil); err != nil {
		t.Fatal(err)
	}
	after, busyAfter := w.state()
	time.Sleep(300 * time.Millisecond)
	final, err := func() ([]int, error) { err := w.finish(); done, _ := w.state(); return done, err }()
	if err != nil {
		t.Fatalf("writer: %v", err)
	}
	if suspended(t, s.ctl, origin.Name) {
		t.Fatal("origin left suspended")
	}

	// The snapshot is the origin at one point of the writer's sequence:
	// writes are numbered 1, 2, ... and write g went to block (g-1) mod
	// blocks, so a cut C gives each block the largest g <= C of its own.
	// Every write completed before the call must be in (C at least their
	// maximum), none begun after it returned (C at most the last begun).
	snap, err := p.ActivateThin("r1-snap", 2, blocks*blockSize)
	if err != nil {
		t.Fatal(err)
	}
	sn, _ := snap.Path()
	ds := openDirect(t, sn)
	got := make([]int, blocks)
	cut := 0
	for b := range blocks {
		if got[b], err = ds.read(b); err != nil {
			t.Fatal(err)
		}
		cut = max(cut, got[b])
	}
	lo, hi := 0, 0
	for b := range blocks {
		lo, hi = max(lo, before[b]), max(hi, after[b], busyAfter[b])
	}
	if cut < lo || cut > hi {
		t.Fatalf("snapshot at write %d, but writes up to %d completed before the call and none after %d began before it returned", cut, lo, hi)
	}
	changed := 0
	for b := range blocks {
		want := 0
		if cut >= b+1 {
			want = cut - ((cut-1-b)%blocks+blocks)%blocks
		}
		if got[b] != want {
			t.Errorf("snapshot block %d: generation %d, want %d (the snapshot is at write %d)", b, got[b], want, cut)
		}
		if final[b] != got[b] {
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("the origin was not written after the snapshot: the test shows nothing")
	}
	t.Logf("snapshot at write %d (completed before the call: %d; begun before it returned: %d); %d blocks changed after", cut, lo, hi, changed)
	// The origin: every last write.
	for b := range blocks {
		if got, err := d.read(b); err != nil || got != final[b] {
			t.Fatalf("origin block %d: generation %d %v, want %d", b, got, err, final[b])
		}
	}
	d.f.Close()
	ds.f.Close()
	if err := snap.Deactivate(); err != nil {
		t.Fatal(err)
	}
	if err := origin.Deactivate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Deactivate(); err != nil {
		t.Fatal(err)
	}
	writeDump(t, 0, dumped.Bytes())
	s.announce(metaBytes, "held=1 dump_slot=0")
}

// Every error path of a snapshot leaves the origin resumed: create_snap of
// an id that exists (the kernel's EEXIST), of an origin that does not exist
// (ENODATA, nothing suspended), and on a pool out of metadata space.
func TestGuestSnapshotErrors(t *testing.T) {
	const metaBytes, dataBytes = 8 << 20, 32 << 20
	s := newScenario(t, regionSnapshotErrors, metaBytes, dataBytes)
	p := s.pool(CreateOptions{})
	for _, id := range []uint64{1, 2} {
		if err := p.CreateThin(id); err != nil {
			t.Fatal(err)
		}
	}
	origin, err := p.ActivateThin("r2-origin", 1, 8*blockSize)
	if err != nil {
		t.Fatal(err)
	}
	other, err := p.ActivateThin("r2-other", 2, 8*blockSize)
	if err != nil {
		t.Fatal(err)
	}
	node, _ := origin.Path()
	d := openDirect(t, node)
	if err := d.write(0, 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		id, origin uint64
		want       error
	}{
		{"existing id", 2, 1, ErrExists},
		{"missing origin", 3, 99, ErrNoThin},
		{"snapshot onto itself", 2, 2, nil}, // refused before the kernel is asked
	} {
		err := p.Snapshot(c.id, c.origin, nil)
		if c.want != nil && !errors.Is(err, c.want) || err == nil {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
		for _, n := range []string{origin.Name, other.Name} {
			if suspended(t, s.ctl, n) {
				t.Fatalf("%s: %s left suspended", c.name, n)
			}
		}
		within(t, 20*time.Second, c.name+": write to the origin", func() error { return d.write(1, 2) })
	}
	d.f.Close()
	for _, th := range []*Thin{origin, other} {
		if err := th.Deactivate(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Deactivate(); err != nil {
		t.Fatal(err)
	}
	s.announce(metaBytes, "")
}
