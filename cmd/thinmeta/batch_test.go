package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/internal/tptest"
)

// The dumps of a pool with thin 1 mapping virtual blocks 0-4 and an empty
// thin 2, and of its metadata snapshot taken after the first three
// mappings, written by hand from what the messages mean (the kernel's
// reserve_metadata_snap holds the changes before it, none after; a
// snapshot's space-map slots are zero, so nr_data_blocks is 0).
const (
	batchLive = `<superblock uuid="" time="0" transaction="0" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">
  <device dev_id="1" mapped_blocks="5" transaction="0" creation_time="0" snap_time="0">
    <range_mapping origin_begin="0" data_begin="0" length="5" time="0"/>
  </device>
  <device dev_id="2" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">
  </device>
</superblock>
`
	batchSnap = `<superblock uuid="" time="0" transaction="0" flags="0" version="2" data_block_size="128" nr_data_blocks="0">
  <device dev_id="1" mapped_blocks="3" transaction="0" creation_time="0" snap_time="0">
    <range_mapping origin_begin="0" data_begin="0" length="3" time="0"/>
  </device>
</superblock>
`
)

// A batch with reserve_metadata_snap is one transaction: when a later
// message fails ("create_thin 1 reserve_metadata_snap create_thin 1"),
// nothing is written, not even the messages before the reservation, and
// both generations of thin_dump see the pool as it was; when all succeed,
// the live pool and the snapshot hold what the messages say, as both
// generations of thin_dump read them. (Before ec2789b the reservation
// committed the messages before it, so the failed batch left thin 1.)
func TestMessageBatchWithReserveIsAtomic(t *testing.T) {
	img := filepath.Join(t.TempDir(), "batch.img")
	if code, out, errs := queryRun(formatCommand, "--nr-data-blocks", "1000", "--size", "4M", img); code != exitOK {
		t.Fatalf("format: exit %d\n%s%s", code, out, errs)
	}
	before, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	dumps := func() [2][]byte {
		var d [2][]byte
		for i, g := range tptest.Gens {
			d[i] = tptest.MustRunGen(t, g, "thin_dump", img).Stdout
		}
		return d
	}
	was := dumps()
	code, _, errs := queryRun(messageCommand, img, "create_thin", "1", "reserve_metadata_snap", "create_thin", "1")
	if code != exitFail {
		t.Fatalf("a batch creating thin 1 twice: exit %d\n%s", code, errs)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Fatal("the failed batch changed the image")
	}
	if now := dumps(); !bytes.Equal(now[0], was[0]) || !bytes.Equal(now[1], was[1]) {
		t.Fatalf("thin_dump after the failed batch:\n%s\n%s\nbefore:\n%s\n%s", now[0], now[1], was[0], was[1])
	}
	for _, g := range tptest.Gens {
		if r := tptest.RunGen(t, g, "thin_dump", "-m", img); r.Code == 0 {
			t.Fatalf("thin_dump -m (%s) after the failed batch found a metadata snapshot:\n%s", g, r.Stdout)
		}
	}

	if code, out, errs := queryRun(messageCommand, "-q", img, "create_thin", "1", "map", "1", "0", "3",
		"reserve_metadata_snap", "create_thin", "2", "map", "1", "3", "2"); code != exitOK {
		t.Fatalf("the batch: exit %d\n%s%s", code, out, errs)
	}
	tptest.CheckClean(t, img)
	tptest.CheckClean(t, img, "-m")
	if got := tptest.MustRun(t, "thin_dump", img).Stdout; string(got) != batchLive {
		t.Fatalf("thin_dump 0.9.0:\n%s\nwant:\n%s", got, batchLive)
	}
	if got := tptest.MustRun(t, "thin_dump", "-m", img).Stdout; string(got) != batchSnap {
		t.Fatalf("thin_dump -m 0.9.0:\n%s\nwant:\n%s", got, batchSnap)
	}
	tptest.SameDump(t, "thin_dump 1.1.0", tptest.MustRunGen(t, tptest.V110, "thin_dump", img).Stdout, []byte(batchLive))
	tptest.SameDump(t, "thin_dump -m 1.1.0", tptest.MustRunGen(t, tptest.V110, "thin_dump", "-m", img).Stdout, []byte(batchSnap))
}
