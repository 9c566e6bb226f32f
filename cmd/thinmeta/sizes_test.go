package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
