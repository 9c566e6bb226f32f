package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/thinmeta/thinmeta/internal/tptest"
)

// queryRun runs one command with captured output.
func queryRun(c *command, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, isTerminal: func(*os.File) bool { return false }}
	code = c.run(e, args)
	return code, out.String(), errb.String()
}

// queryCase is one invocation of a thin_* tool and the thinmeta command
// that must behave the same.
type queryCase struct {
	tool string
	args []string // options, shared by both (the image is appended)
	cmd  *command
}

var queryCases = []queryCase{
	{"thin_ls", nil, lsCommand},
	{"thin_ls", []string{"-m"}, lsCommand},
	{"thin_ls", []string{"-o", "DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,MAPPED_SECTORS,EXCLUSIVE_SECTORS,SHARED_SECTORS,MAPPED_BYTES,EXCLUSIVE_BYTES,SHARED_BYTES,MAPPED,EXCLUSIVE,SHARED,TRANSACTION,CREATE_TIME,SNAP_TIME"}, lsCommand},
	{"thin_ls", []string{"--no-headers", "--format", "EXCLUSIVE,DEV", "-m"}, lsCommand},
	{"thin_ls", []string{"--format=SHARED_BYTES,", "--no-headers"}, lsCommand},
	{"thin_ls", []string{"-o", ""}, lsCommand},
	{"thin_rmap", []string{"--region", "0..100000000"}, rmapCommand},
	{"thin_rmap", []string{"--region", "10..20", "--region=5000..5500", "--region", "15..30"}, rmapCommand},
	{"thin_delta", []string{"--thin1", "1", "--thin2", "2"}, deltaCommand},
	{"thin_delta", []string{"--snap1", "2", "--snap2", "1", "--verbose", "-m"}, deltaCommand},
	{"thin_delta", []string{"--snap1", "1", "--thin2", "3", "--metadata-snap"}, deltaCommand},
	{"thin_delta", []string{"--snap1", "1", "--thin2", "77"}, deltaCommand},
}

// Each query command on every fixture gives thin_*'s standard output byte
// for byte, fails exactly where the tool fails, and leaves the image as it
// was. thinmeta reads the
// packed fixture directly; the tools read the unpacked image.
func TestQueryCommandsFixtures(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		t.Run(tptest.Name(f), func(t *testing.T) {
			img := tptest.Unpack(t, f)
			before, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			for _, qc := range queryCases {
				want := tptest.Run(t, qc.tool, append(append([]string(nil), qc.args...), img)...)
				for _, in := range []string{img, f} {
					code, out, errs := queryRun(qc.cmd, append(append([]string(nil), qc.args...), in)...)
					if (code == 0) != (want.Code == 0) || code == exitUsage {
						t.Fatalf("%s %v: tool exit %d (%s), thinmeta %s exit %d (%s)", qc.tool, qc.args, want.Code, bytes.TrimSpace(want.Stderr), qc.cmd.name, code, errs)
					}
					if out != string(want.Stdout) {
						t.Fatalf("%s %v on %s: output differs\n tool:\n%s\n thinmeta:\n%s", qc.tool, qc.args, in, want.Stdout, out)
					}
				}
			}
			// The query commands are read-only.
			if after, err := os.ReadFile(img); err != nil || !bytes.Equal(before, after) {
				t.Errorf("the image changed (%v)", err)
			}
		})
	}
}

// With a block number, -m must name the block the metadata snapshot is at.
func TestDeltaMetadataSnapBlock(t *testing.T) {
	var f string
	for _, p := range tptest.Fixtures(t) {
		if tptest.Name(p) == "tmeta_with_metadata_snap" {
			f = p
		}
	}
	if f == "" {
		t.Skip("fixture tmeta_with_metadata_snap missing")
	}
	img := tptest.Unpack(t, f)
	for _, m := range []string{"-m6", "-m7", "--metadata-snap=6", "--metadata-snap=5"} {
		args := []string{"--thin1", "1", "--thin2", "2", m, img}
		want := tptest.Run(t, "thin_delta", args...)
		code, out, errs := queryRun(deltaCommand, args...)
		if (code == 0) != (want.Code == 0) || out != string(want.Stdout) {
			t.Errorf("%s: tool exit %d, thinmeta exit %d (%s); same output: %v", m, want.Code, code, errs, out == string(want.Stdout))
		}
	}
}

// Bad command lines are usage errors (exit 2) with a message, and print
// nothing on standard output.
func TestQueryUsageErrors(t *testing.T) {
	img := "/nonexistent.img"
	cases := []struct {
		cmd  *command
		args []string
	}{
		{lsCommand, nil},
		{lsCommand, []string{"-o", "DEV,FOO", img}},
		{lsCommand, []string{"-o", ",DEV", img}},
		{lsCommand, []string{"--bogus", img}},
		{lsCommand, []string{img, img}},
		{rmapCommand, []string{img}},
		{rmapCommand, []string{"--region", "5..5", img}},
		{rmapCommand, []string{"--region", "5-9", img}},
		{rmapCommand, []string{"--region", "1..2"}},
		{deltaCommand, []string{"--thin1", "1", img}},
		{deltaCommand, []string{"--thin2", "1", img}},
		{deltaCommand, []string{"--thin1", "x", "--thin2", "1", img}},
		{deltaCommand, []string{"--thin1", "1", "--thin2", "2", "-mx", img}},
		{deltaCommand, []string{"--thin1", "1", "--thin2", "2"}},
	}
	for _, tc := range cases {
		code, out, errs := queryRun(tc.cmd, tc.args...)
		if code != exitUsage || out != "" || errs == "" {
			t.Errorf("%s %v: exit %d, stdout %q, stderr %q; want exit 2 and a message", tc.cmd.name, tc.args, code, out, errs)
		}
	}
	for _, c := range []*command{lsCommand, rmapCommand, deltaCommand} {
		code, out, _ := queryRun(c, "--help")
		if code != exitOK || out != c.usage {
			t.Errorf("%s --help: exit %d", c.name, code)
		}
	}
	code, _, errs := queryRun(lsCommand, img)
	if code != exitFail || errs == "" {
		t.Errorf("ls of a missing file: exit %d, stderr %q", code, errs)
	}
}
