package thin_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// A metadata-snapshot view has no space maps (the kernel zeroes the
// copy's roots): asking for one says so with ErrNoSpaceMaps. (Before, it
// read block 0 as a space-map index and failed with a checksum error.)
func TestSnapshotViewHasNoSpaceMaps(t *testing.T) {
	d := memdev.New(1 << 20)
	md, err := thin.Format(d, d.Size(), &thin.FormatOptions{NrDataBlocks: 100})
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, md.CreateThin(1))
	mustDo(t, md.Commit())
	mustDo(t, md.ReserveMetadataSnapshot())
	mustDo(t, md.Commit())
	p, err := thin.NewPool(d, d.Size())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DataSpaceMap(); err != nil {
		t.Fatalf("live view: %v", err)
	}
	if _, err := p.MetadataSpaceMap(); err != nil {
		t.Fatalf("live view: %v", err)
	}
	s, err := p.MetadataSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DataSpaceMap(); !errors.Is(err, thin.ErrNoSpaceMaps) {
		t.Fatalf("snapshot view's data space map: %v", err)
	}
	if _, err := s.MetadataSpaceMap(); !errors.Is(err, thin.ErrNoSpaceMaps) {
		t.Fatalf("snapshot view's metadata space map: %v", err)
	}
}

// ReserveMetadataSnapshot is part of the transaction: it writes nothing
// by itself, so a batch that fails after it (creating thin 1 twice) and
// is aborted leaves the image byte for byte as it was, and neither
// generation of thin_dump finds thin 1 or a snapshot; a batch that
// succeeds commits the snapshot of the changes before the reservation
// with those after, in one commit. (Before, it committed the changes made
// before it, then again after.)
func TestReserveMetadataSnapshotInTransaction(t *testing.T) {
	d := memdev.New(4 << 20)
	md, err := thin.Format(d, d.Size(), &thin.FormatOptions{NrDataBlocks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(d.Bytes())
	mustDo(t, md.CreateThin(1))
	mustDo(t, md.ReserveMetadataSnapshot())
	if !bytes.Equal(d.Bytes(), before) {
		t.Fatal("ReserveMetadataSnapshot wrote to the device")
	}
	if err := md.CreateThin(1); !errors.Is(err, thin.ErrExists) {
		t.Fatalf("creating thin 1 twice: %v", err)
	}
	mustDo(t, md.Abort())
	if !bytes.Equal(d.Bytes(), before) {
		t.Fatal("the aborted batch changed the device")
	}
	img := filepath.Join(t.TempDir(), "meta.img")
	mustDo(t, os.WriteFile(img, d.Bytes(), 0o644))
	for _, g := range tptest.Gens {
		if out := tptest.MustRunGen(t, g, "thin_dump", img).Stdout; bytes.Contains(out, []byte("<device")) {
			t.Fatalf("thin_dump %s after the aborted batch:\n%s", g, out)
		}
		if r := tptest.RunGen(t, g, "thin_dump", "-m", img); r.Code == 0 {
			t.Fatalf("thin_dump -m %s after the aborted batch found a snapshot:\n%s", g, r.Stdout)
		}
	}

	mustDo(t, md.CreateThin(1))
	mustDo(t, md.MapRange(1, 0, 3))
	mustDo(t, md.ReserveMetadataSnapshot())
	mustDo(t, md.CreateThin(2))
	mustDo(t, md.MapRange(1, 3, 2))
	if !bytes.Equal(d.Bytes(), before) {
		t.Fatal("the batch wrote before its commit")
	}
	mustDo(t, md.Commit())
	mustDo(t, os.WriteFile(img, d.Bytes(), 0o644))
	tptest.CheckClean(t, img)
	tptest.CheckClean(t, img, "-m")
	// Written by hand from what the calls mean.
	live := `<superblock uuid="" time="0" transaction="0" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">
  <device dev_id="1" mapped_blocks="5" transaction="0" creation_time="0" snap_time="0">
    <range_mapping origin_begin="0" data_begin="0" length="5" time="0"/>
  </device>
  <device dev_id="2" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">
  </device>
</superblock>
`
	snap := `<superblock uuid="" time="0" transaction="0" flags="0" version="2" data_block_size="128" nr_data_blocks="0">
  <device dev_id="1" mapped_blocks="3" transaction="0" creation_time="0" snap_time="0">
    <range_mapping origin_begin="0" data_begin="0" length="3" time="0"/>
  </device>
</superblock>
`
	if got := tptest.MustRun(t, "thin_dump", img).Stdout; string(got) != live {
		t.Fatalf("thin_dump 0.9.0:\n%s\nwant:\n%s", got, live)
	}
	if got := tptest.MustRun(t, "thin_dump", "-m", img).Stdout; string(got) != snap {
		t.Fatalf("thin_dump -m 0.9.0:\n%s\nwant:\n%s", got, snap)
	}
	tptest.SameDump(t, "thin_dump 1.1.0", tptest.MustRunGen(t, tptest.V110, "thin_dump", img).Stdout, []byte(live))
	tptest.SameDump(t, "thin_dump -m 1.1.0", tptest.MustRunGen(t, tptest.V110, "thin_dump", "-m", img).Stdout, []byte(snap))
}

// The stock path: Metadata.Committed, thin.Open of the same file and a
// metadata-snapshot view stay their commit through 200 commits that
// delete, create, map and unmap: dump of each equals thin_dump 0.9.0 (and
// 1.1.0) of a copy of the file made when the view was opened, and
// check.Pool finds nothing wrong in them.
func TestStockViewsKeepTheirCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meta.img")
	md, err := thin.CreateMetadata(path, &thin.FormatOptions{NrDataBlocks: 1 << 16, Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for id := range uint64(4) {
		mustDo(t, md.CreateThin(id))
		mustDo(t, md.MapRange(id, 0, 50+id*40))
	}
	mustDo(t, md.ReserveMetadataSnapshot())
	mustDo(t, md.Commit())
	cp := filepath.Join(dir, "copy.img")
	img, err := os.ReadFile(path)
	mustDo(t, err)
	mustDo(t, os.WriteFile(cp, img, 0o644))
	var want, wantSnap [2][]byte
	for i, g := range tptest.Gens {
		want[i] = tptest.MustRunGen(t, g, "thin_dump", cp).Stdout
		wantSnap[i] = tptest.MustRunGen(t, g, "thin_dump", "-m", cp).Stdout
	}

	committed, err := md.Committed()
	mustDo(t, err)
	opened, err := thin.Open(path, nil)
	mustDo(t, err)
	snap, err := opened.MetadataSnapshot()
	mustDo(t, err)

	rng := rand.New(rand.NewPCG(4, 4))
	next := uint64(4)
	for c := range 200 {
		ids := []uint64{}
		for d, err := range md.View().DeviceRoots() {
			mustDo(t, err)
			ids = append(ids, d.ID)
		}
		id := ids[rng.IntN(len(ids))]
		switch rng.IntN(4) {
		case 0:
			mustDo(t, md.Delete(id))
			mustDo(t, md.CreateThin(next))
			mustDo(t, md.MapRange(next, 0, uint64(1+rng.IntN(80))))
			next++
		case 1:
			_, err := md.Unmap(id, uint64(rng.IntN(100)), uint64(100+rng.IntN(100)))
			mustDo(t, err)
		case 2:
			mustDo(t, md.CreateSnapshot(next, id))
			next++
		default:
			mustDo(t, md.MapRange(id, uint64(200+rng.IntN(400)), uint64(1+rng.IntN(30))))
		}
		if c == 100 {
			mustDo(t, md.ReleaseMetadataSnapshot())
		}
		mustDo(t, md.Commit())
	}
	for _, v := range []struct {
		name string
		p    *thin.Pool
		want [2][]byte
	}{{"Committed", committed, want}, {"thin.Open", opened, want}, {"its metadata snapshot", snap, wantSnap}} {
		var got bytes.Buffer
		mustDo(t, dump.Dump(context.Background(), &got, v.p, dump.Options{}))
		if !bytes.Equal(got.Bytes(), v.want[0]) {
			t.Fatalf("%s after 200 commits:\n%s\nthin_dump 0.9.0 of its commit:\n%s", v.name, got.Bytes(), v.want[0])
		}
		tptest.SameDump(t, v.name+" vs thin_dump 1.1.0", got.Bytes(), v.want[1])
		var fs []check.Finding
		if sum, _ := check.Pool(context.Background(), v.p, check.Options{}, func(f check.Finding) { fs = append(fs, f) }); !sum.OK(false) {
			t.Fatalf("check of %s: %v", v.name, fs)
		}
	}
	mustDo(t, snap.Close())
	mustDo(t, opened.Close())
	mustDo(t, committed.Close())
	if n := md.Manager().OpenPins(); n != 0 {
		t.Fatalf("%d pins open after the views were closed", n)
	}
	mustDo(t, md.Close())
}

// Metadata.View reads the transaction in progress through one reader:
// check.Pool finds nothing wrong with it and dump of it equals thin_dump
// (0.9.0, and 1.1.0 as read canonically) of the same transaction once
// committed; after the next change its reads fail with
// ErrTransactionChanged rather than answering from a half-changed
// transaction. (Before, check.Pool reported "block number mismatch" and
// dump failed: both read through the committed reader.)
func TestUncommittedViewReadsTheTransaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.img")
	md, err := thin.CreateMetadata(path, &thin.FormatOptions{NrDataBlocks: 5000, Size: 8 << 20})
	mustDo(t, err)
	for id := range uint64(3) {
		mustDo(t, md.CreateThin(id))
		mustDo(t, md.MapRange(id, 10*id, 300))
	}
	mustDo(t, md.Commit())
	// The transaction: a snapshot, a delete, new mappings, an unmap.
	mustDo(t, md.CreateSnapshot(3, 0))
	mustDo(t, md.Delete(1))
	mustDo(t, md.MapRange(3, 1000, 40))
	_, err = md.Unmap(2, 50, 120)
	mustDo(t, err)
	mustDo(t, md.ReserveMetadataSnapshot())
	mustDo(t, md.SetTransactionID(0, 7))

	v := md.View()
	var fs []check.Finding
	if sum, _ := check.Pool(context.Background(), v, check.Options{}, func(f check.Finding) { fs = append(fs, f) }); !sum.OK(false) {
		t.Fatalf("check of the uncommitted view: %v", fs)
	}
	var got, gotSnap bytes.Buffer
	mustDo(t, dump.Dump(context.Background(), &got, v, dump.Options{}))
	sv, err := v.MetadataSnapshot()
	mustDo(t, err)
	mustDo(t, dump.Dump(context.Background(), &gotSnap, sv, dump.Options{}))

	mustDo(t, md.Commit())
	if err := drain(v.Devices()); !errors.Is(err, thin.ErrTransactionChanged) {
		t.Fatalf("the view after Commit: %v", err)
	}
	if want := tptest.MustRun(t, "thin_dump", path).Stdout; !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("dump of the uncommitted view:\n%s\nthin_dump 0.9.0 of the commit:\n%s", got.Bytes(), want)
	}
	if want := tptest.MustRun(t, "thin_dump", "-m", path).Stdout; !bytes.Equal(gotSnap.Bytes(), want) {
		t.Fatalf("dump of the uncommitted view's snapshot:\n%s\nthin_dump -m 0.9.0 of the commit:\n%s", gotSnap.Bytes(), want)
	}
	tptest.SameDump(t, "thin_dump 1.1.0", tptest.MustRunGen(t, tptest.V110, "thin_dump", path).Stdout, got.Bytes())
	tptest.CheckClean(t, path)

	// A view taken, then any change: its reads fail.
	v = md.View()
	mustDo(t, md.CreateThin(9))
	if _, err := v.Device(0); !errors.Is(err, thin.ErrTransactionChanged) {
		t.Fatalf("the view after a change: %v", err)
	}
	mustDo(t, md.Close())
}
