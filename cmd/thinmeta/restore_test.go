package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
)

// restoreRun runs the restore command with captured output and stdin.
func restoreRun(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, stdin: strings.NewReader(stdin), isTerminal: func(*os.File) bool { return false }}
	code = restoreCommand.run(e, args)
	return code, out.String(), errb.String()
}

// restorePool writes a random pool's XML and an empty output file.
func restorePool(t *testing.T) (xml []byte, xmlPath, img string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	p := genpool.Generate(rng, genpool.Spec{Devices: 6, MinMappings: 100, MaxMappings: 3000,
		MeanRun: 4, Sparsity: 3, SnapshotFraction: 0.4, RewriteFraction: 0.2})
	var b bytes.Buffer
	if err := p.WriteXML(&b); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	xmlPath, img = filepath.Join(dir, "pool.xml"), filepath.Join(dir, "meta.img")
	if err := os.WriteFile(xmlPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := genpool.CreateSparse(img, int64(p.MetadataBlocks())*4096); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), xmlPath, img
}

// thinmeta restore writes an image that thin_check accepts and thin_dump
// dumps back to the input; from a file or standard input, with the long
// option names too.
func TestRestoreCommand(t *testing.T) {
	xml, xmlPath, img := restorePool(t)
	for _, args := range [][]string{
		{"-i", xmlPath, "-o", img},
		{"--input", "-", "--output", img, "-q"},
	} {
		code, out, errs := restoreRun(string(xml), args...)
		if code != 0 || out != "" || errs != "" {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		tptest.CheckClean(t, img)
		if got := tptest.MustRun(t, "thin_dump", img).Stdout; !bytes.Equal(got, xml) {
			t.Fatalf("%v: thin_dump of the restored image differs from the input", args)
		}
	}
}

// The superblock overrides act as thin_restore's.
func TestRestoreOverrides(t *testing.T) {
	_, xmlPath, img := restorePool(t)
	code, _, errs := restoreRun("", "-i", xmlPath, "-o", img, "--transaction-id", "424242",
		"--data-block-size", "256", "--nr-data-blocks", "9999999")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	head, _, _ := strings.Cut(string(tptest.MustRun(t, "thin_dump", img).Stdout), "\n")
	for _, want := range []string{`transaction="424242"`, `data_block_size="256"`, `nr_data_blocks="9999999"`} {
		if !strings.Contains(head, want) {
			t.Errorf("superblock %s lacks %s", head, want)
		}
	}
}

// Usage errors exit 2; bad input, a missing or small output exit 1 with a
// message naming the problem (and the line of the input at fault).
func TestRestoreErrors(t *testing.T) {
	_, xmlPath, img := restorePool(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.xml")
	os.WriteFile(bad, []byte("<superblock uuid=\"\" time=\"1\" transaction=\"1\" data_block_size=\"128\" nr_data_blocks=\"10\">\n"+
		"<device dev_id=\"1\" mapped_blocks=\"1\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n"+
		"<single_mapping origin_block=\"0\" data_block=\"10\" time=\"0\"/>\n</device>\n</superblock>\n"), 0o644)
	small := filepath.Join(dir, "small.img")
	genpool.CreateSparse(small, 16*4096)
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-o", img}, 2, "no input file given (-i)"},
		{[]string{"-i", xmlPath}, 2, "no output file given (-o)"},
		{[]string{"-i", xmlPath, "-o", img, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"-i", xmlPath, "-o", img, "--data-block-size", "100"}, 2, "data block size 100"},
		{[]string{"-i", xmlPath, "-o", img, "--data-block-size", "x"}, 2, `invalid value "x" for flag -data-block-size: not a number of at most 32 bits`},
		{[]string{"-i", xmlPath, "-o", img, "--nr-data-blocks", "-1"}, 2, `invalid value "-1" for flag -nr-data-blocks`},
		{[]string{"-i", xmlPath, "-o", img, "--transaction-id", "18446744073709551616"}, 2, "invalid value \"18446744073709551616\" for flag -transaction-id: not a number of at most 64 bits"},
		{[]string{"-i", xmlPath, "-o", img, "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"-i", filepath.Join(dir, "none.xml"), "-o", img}, 1, "no such file"},
		{[]string{"-i", xmlPath, "-o", filepath.Join(dir, "none.img")}, 1, "must be an existing file or a block device"},
		{[]string{"-i", bad, "-o", img}, 1, "bad.xml: line 3: mapping beyond the end of the data device"},
		{[]string{"-i", xmlPath, "-o", small}, 1, "metadata device is too small"},
		{[]string{"-i", xmlPath, "-o", img, "--nr-data-blocks", "1"}, 1, "nr_data_blocks 1"},
	}
	if code, _, errs := restoreRun("", "-i", xmlPath, "-o", img); code != 0 {
		t.Fatalf("restore: %s", errs)
	}
	for _, tc := range tests {
		code, _, errs := restoreRun("", tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) || !strings.HasPrefix(errs, "thinmeta restore: ") {
			t.Errorf("%v: exit %d, %q; want exit %d and ...%s...", tc.args, code, errs, tc.code, tc.msg)
		}
	}
	// The failed restores over a good pool left none.
	tptest.CheckRejects(t, img)
}

func TestRestoreHelp(t *testing.T) {
	code, out, _ := restoreRun("", "-h")
	if code != 0 || !strings.HasPrefix(out, "Usage: thinmeta restore") || !strings.Contains(out, "--nr-data-blocks") {
		t.Errorf("exit %d, %q", code, out)
	}
	var b bytes.Buffer
	newEnv().usage(&b)
	if !strings.Contains(b.String(), "restore ") {
		t.Error("restore is not listed in the usage")
	}
}

// Input refused at its <superblock> tag leaves OUTPUT as it was.
func TestRestoreBadSuperblockKeepsOutput(t *testing.T) {
	xml, xmlPath, img := restorePool(t)
	if code, _, errs := restoreRun("", "-i", xmlPath, "-o", img); code != 0 {
		t.Fatalf("restore: %s", errs)
	}
	bad := strings.Replace(string(xml), `data_block_size="`, `data_block_size="7`, 1)
	code, _, errs := restoreRun(bad, "-i", "-", "-o", img)
	if code != 1 || !strings.Contains(errs, "standard input: line 1: invalid data block size") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	tptest.CheckClean(t, img)
}

// What "thinmeta help restore" says of the version and mapped_blocks is
// what restore does: INPUT's version (1 if it names none) and
// mapped_blocks counted from the mappings, as thin_restore 0.9.0 writes
// them; and what it says of thin_restore 1.x is what 1.1.0 does (version 2
// always, INPUT's mapped_blocks kept, which its own thin_check rejects).
func TestRestoreVersionAndMappedBlocks(t *testing.T) {
	_, help, _ := restoreRun("", "-h")
	flat := strings.Join(strings.Fields(help), " ")
	for _, claim := range []string{"flags and version of INPUT's <superblock> (version 1 if it names none;",
		"as given except mapped_blocks, which is counted from the device's mappings",
		"thin_restore 1.x writes version 2 whatever INPUT says and keeps INPUT's mapped_blocks"} {
		if !strings.Contains(flat, claim) {
			t.Fatalf("help lacks %q", claim)
		}
	}
	dir := t.TempDir()
	for _, tc := range []struct{ attr, version string }{{"", "1"}, {`version="1" `, "1"}, {`version="2" `, "2"}} {
		xml := `<superblock uuid="" time="3" transaction="9" ` + tc.attr + `data_block_size="128" nr_data_blocks="500">
  <device dev_id="4" mapped_blocks="77" transaction="1" creation_time="2" snap_time="3">
    <range_mapping origin_begin="0" data_begin="10" length="20" time="1"/>
    <single_mapping origin_block="40" data_block="99" time="3"/>
  </device>
</superblock>
`
		in := filepath.Join(dir, "in.xml")
		if err := os.WriteFile(in, []byte(xml), 0o644); err != nil {
			t.Fatal(err)
		}
		ours, theirs := filepath.Join(dir, "ours.img"), filepath.Join(dir, "theirs.img")
		for _, img := range []string{ours, theirs} {
			os.Remove(img)
			if err := genpool.CreateSparse(img, 1024*4096); err != nil {
				t.Fatal(err)
			}
		}
		if code, _, errs := restoreRun("", "-i", in, "-o", ours); code != 0 {
			t.Fatalf("restore: %s", errs)
		}
		tptest.CheckClean(t, ours)
		head := string(tptest.MustRun(t, "thin_dump", ours).Stdout)
		if !strings.Contains(head, `version="`+tc.version+`"`) || !strings.Contains(head, `dev_id="4" mapped_blocks="21"`) {
			t.Fatalf("%q: thin_dump of our image:\n%s", tc.attr, head)
		}
		tptest.MustRunGen(t, tptest.V110, "thin_restore", "-i", in, "-o", theirs)
		head = string(tptest.MustRun(t, "thin_dump", theirs).Stdout)
		if !strings.Contains(head, `version="2"`) || !strings.Contains(head, `dev_id="4" mapped_blocks="77"`) {
			t.Fatalf("%q: thin_dump of thin_restore 1.1.0's image:\n%s", tc.attr, head)
		}
		if r := tptest.RunGen(t, tptest.V110, "thin_check", theirs); r.Code == 0 {
			t.Fatalf("thin_check 1.1.0 accepts thin_restore 1.1.0's image with a wrong mapped_blocks")
		}
	}
}
