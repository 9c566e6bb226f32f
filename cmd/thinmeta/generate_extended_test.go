package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/tptest"
)

const genExtendedSpec = "metadata-format=extended thins=3 mappings=300-1500 snapshots=5 shape=tree discard=0.05 deletions=1 metadata-snap=true duplicate-keys=0.3 blob-size=100 index-bytes=24"

// An extended pool from "thinmeta generate": "thinmeta dump" prints what
// --expect and --expect-snap say (the record's extended XML); "thinmeta
// restore" of that XML writes a pool that dumps identically and checks
// clean; "thinmeta find" finds each device by its name; the lz4 output
// is the same image; a second run writes the same bytes; thin_check and
// thin_dump 0.9.0 refuse the pool.
func TestGenerateExtended(t *testing.T) {
	tptest.Need(t, "thin_check")
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	run := func(args ...string) string {
		t.Helper()
		args = append([]string{"--spec", genExtendedSpec, "--seed", "8"}, args...)
		code, stdout, errs := queryRun(generateCommand, args...)
		if code != 0 {
			t.Fatalf("generate %v: exit %d\n%s%s", args, code, stdout, errs)
		}
		return stdout
	}
	run("-q", "--expect", out("expect.xml"), "--expect-snap", out("expect-snap.xml"), out("a.img"))
	run("-q", out("a.lz4"))
	run("-q", out("b.img"))
	img := out("a.img")
	raw := packReadFile(t, img)
	if !bytes.Equal(raw, packReadFile(t, out("b.img"))) {
		t.Fatal("a second run wrote another image")
	}
	expect := packReadFile(t, out("expect.xml"))
	if !bytes.Contains(expect, []byte(` blob_size="100" index_bytes="24" next_thin_id="`)) || !bytes.Contains(expect, []byte(` blob="7468696e2d`)) {
		t.Fatalf("--expect is not the extended form:\n%.400s", expect)
	}
	for _, in := range []string{img, out("a.lz4")} {
		code, got, errs := queryRun(dumpCommand, in)
		if code != 0 || got != string(expect) {
			t.Fatalf("dump %s: exit %d (%s), differs from --expect: %v", filepath.Base(in), code, errs, got != string(expect))
		}
		code, got, errs = queryRun(dumpCommand, "-m", in)
		if code != 0 || got != string(packReadFile(t, out("expect-snap.xml"))) {
			t.Fatalf("dump -m %s: exit %d (%s), differs from --expect-snap", filepath.Base(in), code, errs)
		}
		if code, _, errs := queryRun(checkCommand, in); code != 0 {
			t.Fatalf("check %s: exit %d: %s", filepath.Base(in), code, errs)
		}
	}
	// Restore the XML into a fresh file: the same dump.
	restored := out("restored.img")
	if err := os.WriteFile(restored, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(restored, int64(len(raw))); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := restoreRun("", "-i", out("expect.xml"), "-o", restored); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, errs)
	}
	if code, got, errs := queryRun(dumpCommand, restored); code != 0 || got != string(expect) {
		t.Fatalf("dump of the restored pool: exit %d (%s), differs from the XML restored: %v", code, errs, got != string(expect))
	}
	if code, _, errs := queryRun(checkCommand, restored); code != 0 {
		t.Fatalf("check of the restored pool: exit %d: %s", code, errs)
	}
	// "thinmeta blob find" finds each device by its name (duplicate
	// names find several).
	var rec *gen.Record
	{
		s, err := gen.ParseSpec(genExtendedSpec)
		if err != nil {
			t.Fatal(err)
		}
		if rec, err = gen.GenerateFile(out("c.img"), s, 8); err != nil {
			t.Fatal(err)
		}
	}
	st, err := rec.Final()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range st.Devices {
		name := string(bytes.TrimRight(d.Blob[:24], "\x00"))
		code, got, errs := queryRun(blobCommand, "find", img, name)
		if code != 0 || !strings.Contains("\n"+got, "\n"+strconv.FormatUint(d.ID, 10)+" ") {
			t.Errorf("find %q: exit %d (%s), no thin %d in:\n%s", name, code, errs, d.ID, got)
		}
	}
	for _, g := range tptest.Gens {
		for _, tool := range []string{"thin_check", "thin_dump"} {
			if r := tptest.RunGen(t, g, tool, img); r.Code == 0 {
				t.Errorf("%s %s accepted an extended pool", tool, g)
			}
		}
	}
	packNoTemps(t, dir)
}

// Settings of the extended format need --metadata-format extended.
func TestGenerateExtendedUsage(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	for _, args := range [][]string{
		{"--blob-size", "8", img}, {"--spec", "ids=wide", img}, {"--duplicate-keys", "0.5", img},
		{"--metadata-format", "extended", "--blob-size", "2000", img},
		{"--metadata-format", "extended", "--blob-size", "8", "--index-bytes", "9", img},
		{"--metadata-format", "extended", "--ids", "sequential", img},
		{"--metadata-format", "v3", img},
	} {
		if code, _, errs := queryRun(generateCommand, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, errs)
		}
	}
	if _, err := os.Stat(img); err == nil {
		t.Fatal("a usage error wrote the output")
	}
	code, out, errs := queryRun(generateCommand, "-v", "--metadata-format", "extended", "--ids", "allocate", "--mappings", "10", img)
	if code != 0 || !strings.Contains(out, "extended: 64-byte blobs (named), index of 32 bytes, ids allocate") {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
}

// --damage applies to extended pools: the report's verdict is fatal
// (thin_check refuses the pool whatever it holds) and its findings are
// "thinmeta check"'s.
func TestGenerateExtendedDamage(t *testing.T) {
	tptest.Need(t, "thin_check")
	dir := t.TempDir()
	for _, k := range gen.DamageKinds() {
		img := filepath.Join(dir, k.String()+".img")
		code, out, errs := queryRun(generateCommand, "--spec", "metadata-format=extended thins=2 mappings=2000 snapshots=3 shape=fan rewrite=0.01 target=snapshot metadata-snap=true",
			"--damage", k.String()+":seed=4", img)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", k, code, errs)
		}
		if !strings.Contains(out, "thin_check 0.9.0: fatal") {
			t.Errorf("%v: the report's verdict is not fatal:\n%s", k, out)
		}
		tptest.CheckRejects(t, img, "--ignore-non-fatal-errors")
		findings := strings.Count(out, "  finding: ")
		ccode, _, cerr := queryRun(checkCommand, img)
		var lines []string
		for _, l := range strings.Split(cerr, "\n") {
			if strings.Contains(l, ": ") {
				lines = append(lines, l)
			}
		}
		if ccode != exitFail || len(lines) != findings || findings == 0 {
			t.Errorf("%v: check exit %d, %d findings, the report has %d:\n%s\n%s", k, ccode, len(lines), findings, cerr, out)
		}
	}
}
