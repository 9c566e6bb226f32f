package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/tptest"
)

// format + message build a pool that thin_check accepts and thin_dump
// shows as the messages say; a failing message changes nothing.
func TestFormatAndMessages(t *testing.T) {
	img := filepath.Join(t.TempDir(), "meta.img")
	run := func(want int, c *command, args ...string) string {
		t.Helper()
		code, out, errs := queryRun(c, args...)
		if code != want {
			t.Fatalf("%s %v: exit %d, want %d\n%s%s", c.name, args, code, want, out, errs)
		}
		return errs
	}
	run(exitUsage, formatCommand, img) // no --nr-data-blocks
	run(exitUsage, formatCommand, "--nr-data-blocks", "10", "--data-block-size", "100", img)
	run(exitOK, formatCommand, "--size", "8M", "--nr-data-blocks", "1000", "--data-block-size", "256", img)
	run(exitFail, formatCommand, "--nr-data-blocks", "1000", img) // already a pool
	run(exitOK, messageCommand, "-q", img, "create_thin", "1", "map", "1", "10", "5", "set_transaction_id", "0", "7")
	run(exitOK, messageCommand, "-q", img, "create_snap", "2", "1", "map_to", "2", "100", "9", "unmap", "1", "12", "14")
	before, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// A failing message in a batch leaves the pool as it was.
	errs := run(exitFail, messageCommand, img, "create_thin", "3", "delete", "9")
	if !strings.Contains(errs, "no such thin device") {
		t.Fatalf("unexpected message: %s", errs)
	}
	run(exitFail, messageCommand, img, "create_thin", "16777216")
	run(exitUsage, messageCommand, img, "create_thin")
	run(exitUsage, messageCommand, img, "frobnicate", "1")
	after, _ := os.ReadFile(img)
	if !bytes.Equal(before, after) {
		t.Fatal("failed messages changed the image")
	}
	tptest.CheckClean(t, img)
	want := `<superblock uuid="" time="1" transaction="7" flags="0" version="2" data_block_size="256" nr_data_blocks="1000">
  <device dev_id="1" mapped_blocks="3" transaction="0" creation_time="0" snap_time="1">
    <range_mapping origin_begin="10" data_begin="0" length="2" time="0"/>
    <single_mapping origin_block="14" data_block="4" time="0"/>
  </device>
  <device dev_id="2" mapped_blocks="6" transaction="7" creation_time="1" snap_time="1">
    <range_mapping origin_begin="10" data_begin="0" length="5" time="0"/>
    <single_mapping origin_block="100" data_block="9" time="1"/>
  </device>
</superblock>
`
	if got := string(tptest.MustRun(t, "thin_dump", img).Stdout); got != want {
		t.Fatalf("thin_dump:\n%s\nwant:\n%s", got, want)
	}

	// needs_check: writes are refused until a clean check clears it.
	run(exitOK, messageCommand, "-q", img, "set_needs_check")
	run(exitFail, messageCommand, img, "create_thin", "5")
	run(exitOK, checkCommand, "-q", "--clear-needs-check-flag", img)
	run(exitOK, messageCommand, "-q", img, "create_thin", "5", "delete", "5")
	tptest.CheckClean(t, img)
}

// A write to a pool that fails its check is refused with the finding.
func TestMessageRefusesDamagedPool(t *testing.T) {
	img := filepath.Join(t.TempDir(), "meta.img")
	if code, _, errs := queryRun(formatCommand, "--size", "4M", "--nr-data-blocks", "100", img); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := queryRun(messageCommand, "-q", img, "create_thin", "1", "map", "1", "0", "10"); code != 0 {
		t.Fatal(errs)
	}
	// Damage the device's mapping leaf (its checksum no longer matches).
	data, _ := os.ReadFile(img)
	damaged := false
	for b := 1; b*4096 < len(data); b++ {
		blk := data[b*4096 : (b+1)*4096]
		// a leaf with 10 entries of value size 8: the device's mapping tree
		if blk[4] == 2 && blk[16] == 10 && blk[24] == 8 {
			blk[100] ^= 0xff
			damaged = true
		}
	}
	if !damaged {
		t.Fatal("mapping leaf not found")
	}
	os.WriteFile(img, data, 0o644)
	code, _, errs := queryRun(messageCommand, img, "create_thin", "2")
	if code != exitFail || !strings.Contains(errs, "checksum") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	after, _ := os.ReadFile(img)
	if !bytes.Equal(after, data) {
		t.Fatal("refused write changed the image")
	}
}

// The sequence of issue 8: a remap with a metadata snapshot held made
// thin_check 1.1.0 fail ("metadata snap: unexpected thin ids", exit 64),
// and map_to onto the block a virtual block already maps left that data
// block one reference too many (1.1.0: fatal). Both checkers of both
// generations pass the results, live and -m.
func TestMessageRemapWithHeldSnapshot(t *testing.T) {
	img := filepath.Join(t.TempDir(), "rp.bin")
	for _, args := range [][]string{
		{"--nr-data-blocks", "1000", "--size", "4M", img},
		{"-q", img, "create_thin", "0", "map", "0", "0", "10"},
		{"-q", img, "reserve_metadata_snap"},
		{"-q", img, "map_to", "0", "5", "100"},
	} {
		c := messageCommand
		if args[0] == "--nr-data-blocks" {
			c = formatCommand
		}
		if code, out, errs := queryRun(c, args...); code != exitOK {
			t.Fatalf("%s %v: exit %d\n%s%s", c.name, args, code, out, errs)
		}
	}
	tptest.CheckClean(t, img)
	tptest.CheckClean(t, img, "-m")
	if code, out, errs := queryRun(messageCommand, "-q", img, "map_to", "0", "6", "6", "map_to", "0", "5", "100"); code != exitOK {
		t.Fatalf("map_to onto the same blocks: exit %d\n%s%s", code, out, errs)
	}
	tptest.CheckClean(t, img)
	tptest.CheckClean(t, img, "-m")
	// A thin mapping one data block at two virtual blocks is refused: the
	// kernel never writes it, and 1.1.0 counts references as if no thin
	// did (with one device it expects a count of 1, and fails).
	before, _ := os.ReadFile(img)
	code, _, errs := queryRun(messageCommand, img, "map_to", "0", "7", "6")
	if code != exitFail || !strings.Contains(errs, "already maps that data block") {
		t.Fatalf("map_to of a block the thin maps elsewhere: exit %d: %s", code, errs)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Fatal("the refused map_to changed the image")
	}
	if code, _, errs := queryRun(messageCommand, "-q", img, "create_thin", "1", "map_to", "1", "7", "6"); code != exitOK {
		t.Fatalf("map_to of another thin's block: %s", errs)
	}
	tptest.CheckClean(t, img)
}
