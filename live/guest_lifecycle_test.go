package live

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/transaction"
)

// A pool on thinmeta-formatted metadata: thins created, activated and
// written with patterns, read back, deactivated; the pool deactivated and
// activated again on the existing (checked) metadata, with the data
// intact; status fields against dmsetup and against what was done. The
// host then checks the metadata with both thin_check generations and
// thinmeta (region 0, which run-oracle checks too).
func TestGuestLifecycle(t *testing.T) {
	const metaBytes, dataBytes = 8 << 20, 32 << 20
	s := newScenario(t, regionLifecycle, metaBytes, dataBytes)
	p := s.pool(CreateOptions{LowWater: 16})
	if err := p.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	if err := p.CreateThin(2); err != nil {
		t.Fatal(err)
	}
	if err := p.CreateThin(2); !errors.Is(err, ErrExists) {
		t.Fatalf("second create_thin 2: %v", err)
	}
	if err := p.SetTransactionID(0, 5); err != nil {
		t.Fatal(err)
	}
	err := p.SetTransactionID(0, 6)
	var te *TransactionError
	if !errors.As(err, &te) || te.Got != 5 || te.Want != 0 || !errors.Is(err, ErrTransaction) {
		t.Fatalf("stale set_transaction_id: %v", err)
	}

	t1, err := p.ActivateThin("r0-thin1", 1, 64*blockSize)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := p.ActivateThin("r0-thin2", 2, 1<<30/512) // 1 GiB, more than the pool: thin
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ActivateThin("r0-thin1", 1, 8); !errors.Is(err, ErrExists) {
		t.Fatalf("second activation under one name: %v", err)
	}
	if err := p.DeleteThin(1); !errors.Is(err, ErrBusy) {
		t.Fatalf("delete of an active thin: %v", err)
	}
	n1, err := t1.Path()
	if err != nil {
		t.Fatal(err)
	}
	n2, err := t2.Path()
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := openDirect(t, n1), openDirect(t, n2)
	written1 := []int{0, 1, 2, 7, 40, 63}
	written2 := []int{5, 1000, 16000}
	for _, b := range written1 {
		if err := d1.write(b, 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range written2 {
		if err := d2.write(b, 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := d1.write(7, 3); err != nil { // an overwrite: no new block
		t.Fatal(err)
	}

	// Status: the raw text equals dmsetup's, and the fields equal what
	// was done.
	ps, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	_, raw, err := s.ctl.Status(p.Name(), false)
	if err != nil {
		t.Fatal(err)
	}
	dmline := strings.TrimSpace(dmsetup(t, "status", p.Name()))
	ours := strings.TrimSpace(fmt.Sprintf("%d %d thin-pool %s", raw[0].Start, raw[0].Length, raw[0].Params))
	if dmline != ours {
		t.Fatalf("dmsetup status %q, ours %q", dmline, ours)
	}
	fromDmsetup, err := ParsePoolStatus(strings.SplitN(dmline, " ", 4)[3])
	if err != nil {
		t.Fatal(err)
	}
	want := PoolStatus{TransactionID: 5, UsedMetadataBlocks: ps.UsedMetadataBlocks, TotalMetadataBlocks: metaBytes / MetadataBlockSize,
		UsedDataBlocks: uint64(len(written1) + len(written2)), TotalDataBlocks: dataBytes / blockBytes,
		Mode: ReadWrite, Discard: ps.Discard, MetadataLowWater: min(1024, metaBytes/MetadataBlockSize/4)}
	if fmt.Sprint(ps) != fmt.Sprint(want) || fmt.Sprint(fromDmsetup) != fmt.Sprint(want) {
		t.Fatalf("pool status\n ours    %+v\n dmsetup %+v\n want    %+v", ps, fromDmsetup, want)
	}
	if ps.UsedMetadataBlocks == 0 || ps.Discard == IgnoreDiscard {
		t.Fatalf("pool status %+v", ps)
	}
	for _, c := range []struct {
		th      *Thin
		written []int
	}{{t1, written1}, {t2, written2}} {
		ts, err := c.th.Status()
		if err != nil {
			t.Fatal(err)
		}
		dmline := strings.TrimSpace(dmsetup(t, "status", c.th.Name))
		last := c.written[len(c.written)-1]
		want := ThinStatus{MappedSectors: uint64(len(c.written)) * blockSize, HighestSector: uint64(last+1)*blockSize - 1, HasMapped: true}
		if ts != want || !strings.HasSuffix(dmline, fmt.Sprintf(" thin %d %d", want.MappedSectors, want.HighestSector)) {
			t.Fatalf("%s: status %+v, dmsetup %q, want %+v", c.th.Name, ts, dmline, want)
		}
	}
	if th := mustThins(t, p); len(th) != 2 || th[0].ID+th[1].ID != 3 {
		t.Fatalf("thins %+v", th)
	}
	// The table reads back as it was written.
	if dt := strings.TrimSpace(dmsetup(t, "table", p.Name())); !strings.HasSuffix(dt, " thin-pool "+p.Table().String()) {
		t.Fatalf("dmsetup table %q, ours %q", dt, p.Table().String())
	}

	// The held root in the status is the one the superblock records.
	root, err := p.ReserveMetadataSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := OpenDevice(p.MetadataPath(), DeviceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := superblock.Read(transaction.NewReader(dev, dev.Size()), superblock.Location, superblock.IncompatBlobs)
	dev.Close()
	if err != nil || sb.HeldRoot != root {
		t.Fatalf("superblock held root %v (%v), status %d", sb, err, root)
	}
	if err := p.ReleaseMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}

	// Deactivate everything, then bring the pool back on its existing
	// metadata (checked first) and read the data again.
	d1.f.Close()
	if err := t1.Deactivate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Deactivate(); !errors.Is(err, ErrBusy) {
		t.Fatalf("deactivate with an active thin: %v", err)
	}
	d2.f.Close()
	if err := t2.Deactivate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Deactivate(); err != nil {
		t.Fatal(err)
	}
	p, err = Create(s.ctl, "r0-pool", CreateOptions{MetadataDevice: s.meta, DataDevice: s.data, LowWater: 16})
	if err != nil {
		t.Fatal(err)
	}
	if p.Table().BlockSize != blockSize {
		t.Fatalf("block size from the metadata: %d", p.Table().BlockSize)
	}
	t1, err = p.ActivateThin("r0-thin1", 1, 64*blockSize)
	if err != nil {
		t.Fatal(err)
	}
	n1, _ = t1.Path()
	d1 = openDirect(t, n1)
	for b := range 64 {
		want := 0
		for _, w := range written1 {
			if w == b {
				want = 1
			}
		}
		if b == 7 {
			want = 3
		}
		if got, err := d1.read(b); err != nil || got != want {
			t.Fatalf("thin 1 block %d after reactivation: gen %d %v, want %d", b, got, err, want)
		}
	}
	d1.f.Close()
	if err := t1.Deactivate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Deactivate(); err != nil {
		t.Fatal(err)
	}
	s.announce(metaBytes, "")
}
