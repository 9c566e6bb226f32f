package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/tptest"
)

// Sizes that lie, from the command line: ranges that run past 2^64 and
// data devices the metadata cannot describe are refused at once (exit 2
// when the arguments alone show it, 1 when the pool does), in little
// memory, and leave the pool as it was. Before, "map 100
// 18446744073709551615 1" reported success and mapped nothing,
// resize_data 2^40 and format --nr-data-blocks 2^40 --size 64M ran past
// 30 s and 4 GB.
func TestLyingSizes(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "meta.img")
	if r := runProcess(t, nil, "format", "--size", "64M", "--nr-data-blocks", "1000", img); r.code != 0 {
		t.Fatal(r.stderr)
	}
	for _, c := range []struct {
		code int
		args []string
	}{
		{exitUsage, []string{"message", img, "create_thin", "100", "map", "100", "18446744073709551614", "3"}},
		{exitUsage, []string{"message", img, "create_thin", "100", "map", "100", "2", "18446744073709551615"}},
		{exitFail, []string{"message", img, "create_thin", "100", "map", "100", "1", "18446744073709551615"}},
		{exitUsage, []string{"message", img, "create_thin", "100", "unmap", "100", "5", "4"}},
		{exitUsage, []string{"message", img, "create_thin", "100", "map_to", "100", "0", "1099511627776"}},
		{exitUsage, []string{"message", img, "resize_data", "18446744073709551615"}},
		{exitUsage, []string{"message", img, "resize_data", "1099511627776"}},
		{exitFail, []string{"message", img, "resize_data", "1000000000"}},
		{exitUsage, []string{"message", img, "resize_metadata", "18446744073709551615"}},
		{exitFail, []string{"message", img, "resize_metadata", "16385"}},
		{exitUsage, []string{"format", "--nr-data-blocks", "1099511627776", "--size", "64M", filepath.Join(dir, "new.img")}},
		{exitUsage, []string{"format", "--nr-data-blocks", "18446744073709551615", "--size", "64M", filepath.Join(dir, "new.img")}},
		{exitUsage, []string{"format", "--nr-data-blocks", "265656961", "--size", "64M", filepath.Join(dir, "new.img")}},
		{exitUsage, []string{"format", "-f", "--nr-data-blocks", "265656961", img}},
		{exitFail, []string{"message", img, "create_thin", "100", "map_to", "100", "0", "1000"}},
	} {
		before, _ := os.ReadFile(img)
		start := time.Now()
		r := runProcess(t, nil, c.args...)
		took := time.Since(start)
		t.Logf("%s: exit %d in %v, peak RSS %.1f MiB: %s", strings.Join(c.args, " "), r.code, took, float64(r.rss)/(1<<20), strings.SplitN(r.stderr, "\n", 2)[0])
		if r.code != c.code {
			t.Errorf("%v: exit %d, want %d\n%s", c.args, r.code, c.code, r.stderr)
		}
		if r.rss == 0 || r.rss > rssBound || took > 10*time.Second {
			t.Errorf("%v: peak RSS %.1f MiB, %v", c.args, float64(r.rss)/(1<<20), took)
		}
		if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
			t.Fatalf("%v changed the pool", c.args)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "new.img")); err == nil {
		t.Error("a refused format created its file")
	}
	// The last virtual block is a block like any other.
	if r := runProcess(t, nil, "message", "-q", img, "create_thin", "100", "map", "100", "18446744073709551615", "1"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r := runProcess(t, nil, "dump", img)
	if !strings.Contains(r.stdout, `mapped_blocks="1"`) || !strings.Contains(r.stdout, `<single_mapping origin_block="18446744073709551615" data_block="0" time="0"/>`) {
		t.Fatalf("map of the last block:\n%s", r.stdout)
	}
}

// Mappings at the top of the key space (the last virtual blocks before
// 2^64): dump, delta, rmap and ls print what thin-provisioning-tools 0.9.0
// prints, byte for byte (thin_rmap's end of a run there wraps to 0, ours
// too), and unmap reaches them.
func TestTopOfKeySpace(t *testing.T) {
	img := filepath.Join(t.TempDir(), "meta.img")
	for _, a := range [][]string{
		{"format", "--size", "8M", "--nr-data-blocks", "1000", img},
		{"message", "-q", img, "create_thin", "1", "map", "1", "18446744073709551613", "3", "create_snap", "2", "1",
			"map", "2", "18446744073709551615", "1", "create_thin", "3", "map", "3", "18446744073709551610", "6", "unmap", "3", "18446744073709551611", "18446744073709551613"},
	} {
		if r := runProcess(t, nil, a...); r.code != 0 {
			t.Fatalf("%v: %s", a, r.stderr)
		}
	}
	for _, c := range [][]string{
		{"thin_dump"},
		{"thin_rmap", "--region", "0..1000"},
		{"thin_delta", "--thin1", "1", "--thin2", "2"},
		{"thin_delta", "--thin1", "3", "--thin2", "1", "--verbose"},
		{"thin_ls", "-o", "DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS"},
	} {
		want := tptest.MustRun(t, c[0], append(c[1:], img)...).Stdout
		r := runProcess(t, nil, append(append([]string{strings.TrimPrefix(c[0], "thin_")}, c[1:]...), img)...)
		if r.code != 0 || r.stdout != string(want) {
			t.Errorf("%v: exit %d\n%s\n%s: %s", c, r.code, r.stdout, c[0], want)
		}
	}
	tptest.CheckClean(t, img)
}
