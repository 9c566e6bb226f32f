package live

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/ls"
	"github.com/thinmeta/thinmeta/transaction"
)

// The page-cache pitfall on the real kernel: a buffered reader of an active
// pool's metadata device is served its old cached superblock after the
// kernel committed a new one, while the O_DIRECT device reads the new one.
// Then the held-root cases: a reader that crashed leaves its snapshot
// held; Read refuses with the way out, ReadHeld reads it, ReleaseStale
// takes it over, and release with none held says so.
func TestGuestReads(t *testing.T) {
	const metaBytes, dataBytes = 8 << 20, 32 << 20
	s := newScenario(t, regionReads, metaBytes, dataBytes)
	p := s.pool(CreateOptions{})
	if err := p.CreateThin(1); err != nil {
		t.Fatal(err)
	}

	buffered, err := os.Open(p.MetadataPath())
	if err != nil {
		t.Fatal(err)
	}
	defer buffered.Close()
	old := make([]byte, MetadataBlockSize)
	if _, err := buffered.ReadAt(old, 0); err != nil {
		t.Fatal(err)
	}
	if err := p.CreateThin(2); err != nil { // commits a new superblock
		t.Fatal(err)
	}
	if err := p.SetTransactionID(0, 9); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Status(); err != nil { // a status commits too
		t.Fatal(err)
	}
	again := make([]byte, MetadataBlockSize)
	if _, err := buffered.ReadAt(again, 0); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDevice(p.MetadataPath(), DeviceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fresh := make([]byte, MetadataBlockSize)
	if _, err := d.ReadAt(fresh, 0); err != nil {
		t.Fatal(err)
	}
	decode := func(b []byte) superblock.Superblock { return superblock.Decode(b) }
	if !bytes.Equal(again, old) {
		t.Fatalf("the buffered read was not stale (transaction %d): the pitfall did not show", decode(again).TransactionID)
	}
	if got := decode(fresh).TransactionID; got != 9 || decode(old).TransactionID != 0 {
		t.Fatalf("direct read: transaction %d, want 9 (cached copy: %d)", got, decode(old).TransactionID)
	}
	t.Logf("buffered read: transaction %d (stale); O_DIRECT read: %d", decode(again).TransactionID, decode(fresh).TransactionID)
	// A metadata read through Read sees both thins.
	if err := p.Read(nil, func(snap *thin.Pool) error {
		r, err := ls.List(context.Background(), snap, ls.Options{})
		if err != nil {
			return err
		}
		if len(r.Devices) != 2 {
			t.Errorf("ls of the snapshot: %d devices", len(r.Devices))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// A reader that crashed between reserve and release.
	root, err := p.ReserveMetadataSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CreateThin(3); err != nil {
		t.Fatal(err)
	}
	ps, _ := p.Status()
	if ps.HeldRoot != root {
		t.Fatalf("status held root %d, reserved %d", ps.HeldRoot, root)
	}
	err = p.Read(nil, func(*thin.Pool) error { return nil })
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "--release") {
		t.Fatalf("Read with a held root: %v", err)
	}
	var n int
	if err := p.ReadHeld(func(snap *thin.Pool) error {
		for _, err := range snap.Devices() {
			if err != nil {
				return err
			}
			n++
		}
		return nil
	}); err != nil || n != 2 {
		t.Fatalf("ReadHeld: %d devices, %v (the held snapshot has 2)", n, err)
	}
	if err := p.Read(&ReadOptions{ReleaseStale: true}, func(snap *thin.Pool) error {
		n = 0
		for _, err := range snap.Devices() {
			if err != nil {
				return err
			}
			n++
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Read releasing the stale root: %d devices, %v", n, err)
	}
	if ps, _ := p.Status(); ps.HeldRoot != 0 {
		t.Fatalf("Read left a held root %d", ps.HeldRoot)
	}
	if err := p.ReleaseMetadataSnapshot(); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("release with none held: %v", err)
	}
	if err := p.ReadHeld(func(*thin.Pool) error { return nil }); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("ReadHeld with none held: %v", err)
	}
	// Read releases when fn fails, and when it panics.
	boom := errors.New("boom")
	if err := p.Read(nil, func(*thin.Pool) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Read of a failing fn: %v", err)
	}
	func() {
		defer func() { recover() }()
		p.Read(nil, func(*thin.Pool) error { panic("reader bug") })
	}()
	if ps, _ := p.Status(); ps.HeldRoot != 0 {
		t.Fatalf("a failing or panicking reader left a held root %d", ps.HeldRoot)
	}
	if err := p.Deactivate(); err != nil {
		t.Fatal(err)
	}
	s.announce(metaBytes, "")
}

// Bad input is refused before the kernel is asked, with errors that say
// what is wrong: an existing name, a block size the kernel refuses, a
// block size other than the metadata's, metadata that fails its check,
// needs_check, extended metadata, too-small data, ids above 2^24-1, the
// metadata device of an active pool.
func TestGuestBadInput(t *testing.T) {
	const metaBytes, dataBytes = 4 << 20, 8 << 20
	s := newScenario(t, regionBadInput, metaBytes, dataBytes)
	p := s.pool(CreateOptions{})
	base := CreateOptions{MetadataDevice: s.meta, DataDevice: s.data}
	try := func(name string, opts CreateOptions, want error, text string) {
		t.Helper()
		q, err := Create(s.ctl, name, opts)
		if err == nil {
			q.Deactivate()
		}
		if !errors.Is(err, want) || !strings.Contains(err.Error(), text) {
			t.Errorf("%s: %v, want %v mentioning %q", name, err, want, text)
		}
		if _, err := s.ctl.Info(name); err == nil && name != p.Name() {
			t.Errorf("%s: a device was left behind", name)
		}
	}
	try(p.Name(), base, ErrExists, p.Name())
	try("bad-held", base, ErrBusy, s.meta) // the active pool holds the metadata device
	if err := p.CreateThin(1 << 24); !errors.Is(err, ErrBadID) {
		t.Errorf("create_thin 2^24: %v", err)
	}
	if _, err := p.ActivateThin("bad-thin", 1<<24, 8); !errors.Is(err, ErrBadID) {
		t.Errorf("activate 2^24: %v", err)
	}
	if err := p.Deactivate(); err != nil {
		t.Fatal(err)
	}
	bad := base
	bad.BlockSize = 100
	try("bad-bs", bad, ErrBlockSize, "128")
	bad.BlockSize = 256
	try("bad-bs2", bad, ErrBlockSize, "metadata has 128")
	bad = base
	bad.DataBlocks = dataBytes/blockBytes + 1
	try("bad-small", bad, ErrTooSmall, "smaller")

	// needs_check, then extended, then damaged metadata, all written with
	// thinmeta on the (inactive) metadata device.
	rewrite := func(f func(md *thin.Metadata)) {
		d, err := OpenDevice(s.meta, DeviceOptions{Write: true, Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		md, err := thin.NewMetadata(d, d.Size(), &thin.WriteOptions{Force: true})
		if err != nil {
			t.Fatal(err)
		}
		f(md)
		if err := md.Commit(); err != nil {
			t.Fatal(err)
		}
		md.Close()
	}
	rewrite(func(md *thin.Metadata) { md.SetNeedsCheck(true) })
	try("bad-needs-check", base, ErrNeedsCheck, "needs_check")
	forced := base
	forced.Force = true
	if q, err := Create(s.ctl, "forced", forced); err != nil {
		t.Errorf("forced needs_check: %v", err)
	} else {
		if st, _ := q.Status(); !st.NeedsCheck || st.Mode != ReadOnly {
			t.Errorf("forced needs_check pool: %+v", st)
		}
		q.Deactivate()
	}
	rewrite(func(md *thin.Metadata) {
		md.SetNeedsCheck(false)
		if err := md.Convert(thin.ConvertOptions{Variant: thin.Extended, BlobSize: 16}); err != nil {
			t.Fatal(err)
		}
	})
	try("bad-extended", base, ErrExtended, "thinmeta convert --to stock")
	// Damage: a stock pool again, whose device-details root is zeroed.
	if err := formatMetadata(s.meta, blockSize, dataBytes/blockBytes, 0); err != nil {
		t.Fatal(err)
	}
	{
		d, err := OpenDevice(s.meta, DeviceOptions{Write: true, Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		sb, err := superblock.Read(transaction.NewReader(d, d.Size()), superblock.Location, superblock.IncompatBlobs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.WriteAt(make([]byte, MetadataBlockSize), int64(sb.DeviceDetailsRoot)*MetadataBlockSize); err != nil {
			t.Fatal(err)
		}
		d.Close()
	}
	try("bad-damaged", base, ErrCheckFailed, "fails its check")
	if _, err := s.ctl.Info("bad-damaged"); err == nil {
		t.Fatal("damaged pool activated")
	}
}
