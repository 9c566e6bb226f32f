package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// cli runs a whole command line as main does, with captured output.
func cli(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), isTerminal: func(*os.File) bool { return false }}
	code = e.run(args)
	return code, out.String(), errb.String()
}

// Every verb given the wrong number of arguments shows its synopsis as
// the help gives it: required arguments bare, optional ones in one pair
// of brackets. The synopses are written out here, from the help text.
func TestVerbSynopses(t *testing.T) {
	cases := []struct {
		cmd      string // the command (and subcommand) the verb is of
		synopsis string
		help     string // where the synopsis must appear
		few      []string
		many     []string
	}{
		{"blob", "create [--id ID] METADATA [BLOB]", blobCommand.usage, nil, []string{"m", "b", "c"}},
		{"blob", "snap [--id ID] METADATA ORIGIN [BLOB]", blobCommand.usage, []string{"m"}, []string{"m", "1", "b", "c"}},
		{"blob", "set METADATA ID BLOB", blobCommand.usage, []string{"m", "0"}, []string{"m", "0", "b", "c"}},
		{"blob", "clear METADATA ID", blobCommand.usage, []string{"m"}, []string{"m", "0", "1"}},
		{"blob", "delete METADATA ID", blobCommand.usage, []string{"m"}, []string{"m", "0", "1"}},
		{"blob", "get [--raw] METADATA ID", blobCommand.usage, []string{"m"}, []string{"m", "0", "1"}},
		{"blob", "list METADATA", blobCommand.usage, nil, []string{"m", "x"}},
		{"blob", "find METADATA KEY", blobCommand.usage, []string{"m"}, []string{"m", "k", "x"}},
		{"blob", "count METADATA", blobCommand.usage, nil, []string{"m", "x"}},
		{"pool thin", "create POOL ID", poolThin.usage, []string{"p"}, []string{"p", "1", "x"}},
		{"pool thin", "delete POOL ID", poolThin.usage, []string{"p"}, []string{"p", "1", "x"}},
		{"pool thin", "activate POOL ID NAME SIZE", poolThin.usage, []string{"p", "1", "n"}, []string{"p", "1", "n", "1M", "x"}},
		{"pool thin", "deactivate POOL NAME", poolThin.usage, []string{"p"}, []string{"p", "n", "x"}},
		{"pool thin", "list POOL", poolThin.usage, nil, []string{"p", "x"}},
	}
	for _, tc := range cases {
		verb, _, _ := strings.Cut(tc.synopsis, " ")
		if !strings.Contains(tc.help, tc.synopsis) {
			t.Errorf("%s help does not show %q", tc.cmd, tc.synopsis)
		}
		want := "thinmeta " + tc.cmd + ": wrong number of arguments for " + verb + "\n" +
			"Usage: thinmeta " + tc.cmd + " " + tc.synopsis + "\n" +
			"Run \"thinmeta help " + tc.cmd + "\" for more.\n"
		for _, args := range [][]string{tc.few, tc.many} {
			line := append(append(strings.Fields(tc.cmd), verb), args...)
			code, out, errs := cli(line...)
			if code != exitUsage || out != "" || errs != want {
				t.Errorf("thinmeta %s: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", strings.Join(line, " "), code, out, errs, want)
			}
		}
	}
	// Every verb of blob and pool thin is in the table.
	n := map[string]int{}
	for _, tc := range cases {
		n[tc.cmd]++
	}
	if n["blob"] != len(blobVerbs) || n["pool thin"] != len(poolThinActions) {
		t.Errorf("verbs not covered: %v of %d blob, %d pool thin", n, len(blobVerbs), len(poolThinActions))
	}

	// Messages: each synopsis is the help's, and a short one names it.
	for name, synopsis := range messageSynopses {
		if !strings.Contains(messageCommand.usage, "  "+synopsis+" ") {
			t.Errorf("message help does not show %q", synopsis)
		}
		if !strings.Contains(synopsis, " ") {
			continue
		}
		code, _, errs := cli("message", "m", name)
		if code != exitUsage || !strings.Contains(errs, ": "+synopsis+"\n") {
			t.Errorf("message %s: exit %d, %q", name, code, errs)
		}
	}
	for _, want := range []string{"create_snap ID ORIGIN", "map_to ID VBLOCK DATA_BLOCK", "set_transaction_id CUR NEW", "reserve_metadata_snap"} {
		if got := messageSynopses[strings.Fields(want)[0]]; got != want {
			t.Errorf("synopsis %q, want %q", got, want)
		}
	}
}

// help of something that does not exist is an error (exit 2), not the
// general help; help of a pool subcommand is that subcommand's.
func TestHelpOfUnknown(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string // the start of stdout
	}{
		{[]string{"help"}, exitOK, "Usage: thinmeta [--wait] COMMAND"},
		{[]string{"help", "blob"}, exitOK, "Usage: thinmeta blob VERB"},
		{[]string{"help", "pool", "thin"}, exitOK, "Usage: thinmeta pool thin create POOL ID"},
		{[]string{"pool", "help", "thin"}, exitOK, "Usage: thinmeta pool thin create POOL ID"},
		{[]string{"blob", "help", "find"}, exitOK, "Usage: thinmeta blob VERB"},
		{[]string{"help", "bloob"}, exitUsage, ""},
		{[]string{"--help", "bloob"}, exitUsage, ""},
		{[]string{"help", "pool", "bogus"}, exitUsage, ""},
		{[]string{"help", "blob", "create", "x"}, exitUsage, ""},
		{[]string{"pool", "help", "bogus"}, exitUsage, ""},
		{[]string{"blob", "help", "bogus"}, exitUsage, ""},
	} {
		code, out, errs := cli(tc.args...)
		if code != tc.code || !strings.HasPrefix(out, tc.out) || tc.out == "" && out != "" {
			t.Errorf("thinmeta %v: exit %d, stdout %.40q, stderr %q", tc.args, code, out, errs)
		}
		if tc.code != exitOK && !strings.Contains(errs, "no ") {
			t.Errorf("thinmeta %v: stderr %q does not say what is missing", tc.args, errs)
		}
	}
}

// generate takes its output with -o, as the README and thin_restore
// users write it, or as the last argument; not both.
func TestGenerateOutputOption(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	if code, _, errs := cli("generate", "-q", "--seed", "3", "-o", a); code != exitOK {
		t.Fatalf("generate -o: exit %d: %s", code, errs)
	}
	if code, _, errs := cli("generate", "-q", "--seed", "3", b); code != exitOK {
		t.Fatalf("generate OUTPUT: exit %d: %s", code, errs)
	}
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	if len(x) == 0 || !bytes.Equal(x, y) {
		t.Fatalf("-o and the argument wrote different pools (%d, %d bytes)", len(x), len(y))
	}
	if code, _, _ := cli("generate", "-q", "-o", filepath.Join(dir, "c.img"), filepath.Join(dir, "d.img")); code != exitUsage {
		t.Fatalf("two outputs: exit %d", code)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("thinmeta generate [spec options] [--damage KIND] -o OUT")) {
		t.Fatal("README no longer shows generate -o; keep this test and the README together")
	}
}

// reconcile exits as diff: 0 agree, 1 differ, 2 trouble; blob find as
// grep: 0 found, 1 no match, 2 trouble.
func TestReconcileAndFindExitStatus(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "meta.img")
	if code, _, errs := cli("format", "--size", "8M", "--nr-data-blocks", "1000", "--extended", "--blob-size", "16", "--index-bytes", "8", img); code != exitOK {
		t.Fatalf("format: %d %s", code, errs)
	}
	if code, _, errs := cli("blob", "create", "--no-verify", "-q", img, "vm-root"); code != exitOK {
		t.Fatalf("create: %d %s", code, errs)
	}
	list := filepath.Join(dir, "list")
	os.WriteFile(list, []byte("0 vm-root\n"), 0o644)
	bad := filepath.Join(dir, "garbage.img")
	os.WriteFile(bad, bytes.Repeat([]byte{0xa5}, 1<<20), 0o644)
	stock := filepath.Join(dir, "stock.img")
	if code, _, errs := cli("format", "--size", "8M", "--nr-data-blocks", "1000", stock); code != exitOK {
		t.Fatalf("format: %d %s", code, errs)
	}
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("0 vm-other\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"reconcile", "-q", "--list", list, img}, 0},
		{[]string{"reconcile", "-q", "--list", other, img}, 1},
		{[]string{"reconcile", "-q", "--list", list, bad}, 2},
		{[]string{"reconcile", "-q", "--list", list, stock}, 2},
		{[]string{"reconcile", "-q", "--list", list, filepath.Join(dir, "missing.img")}, 2},
		{[]string{"reconcile", "-q", "--list", filepath.Join(dir, "nolist"), img}, 2},
		{[]string{"blob", "find", img, "vm-root"}, 0},
		{[]string{"blob", "find", img, "vm-none"}, 1},
		{[]string{"blob", "find", bad, "vm-root"}, 2},
		{[]string{"blob", "find", stock, "vm-root"}, 2},
		{[]string{"blob", "find", filepath.Join(dir, "missing.img"), "vm-root"}, 2},
	} {
		code, out, errs := cli(tc.args...)
		if code != tc.code {
			t.Errorf("thinmeta %v: exit %d, want %d\n%s%s", tc.args, code, tc.code, out, errs)
		}
		if tc.code == 1 && tc.args[0] == "blob" && (out != "" || errs != "") {
			t.Errorf("find without a match printed %q %q", out, errs)
		}
	}
}

// format on a file that does not exist says how to create it.
func TestFormatMissingFileHint(t *testing.T) {
	p := filepath.Join(t.TempDir(), "new.img")
	code, _, errs := cli("format", "--nr-data-blocks", "100", p)
	if code != exitUsage || !strings.Contains(errs, "--size") {
		t.Fatalf("exit %d: %q", code, errs)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("the refused format made the file: %v", err)
	}
	if code, _, errs := cli("format", "--size", "4M", "--nr-data-blocks", "100", p); code != exitOK {
		t.Fatalf("with --size: exit %d: %s", code, errs)
	}
}

// The CLI names itself once in front of an error, whatever the library
// wrapped: each failing command's first line of error output starts with
// "thinmeta COMMAND:" and says "thinmeta" nowhere else, and no piece of
// context comes twice.
func TestErrorPrefixOnce(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full.img")
	if code, _, errs := cli("format", "--size", "1M", "--nr-data-blocks", "4", full); code != exitOK {
		t.Fatalf("format: %s", errs)
	}
	garbage := filepath.Join(dir, "garbage.img")
	os.WriteFile(garbage, bytes.Repeat([]byte{0x5a}, 1<<20), 0o644)
	zero := filepath.Join(dir, "zero.img")
	os.WriteFile(zero, make([]byte, 1<<20), 0o644)
	badPack := filepath.Join(dir, "bad.pack")
	os.WriteFile(badPack, []byte("not a pack file at all"), 0o644)
	missing := filepath.Join(dir, "missing.img")
	xml := filepath.Join(dir, "pool.xml")
	var x strings.Builder
	x.WriteString(`<superblock uuid="" time="0" transaction="1" data_block_size="128" nr_data_blocks="100000">` + "\n")
	for i := range 100 { // a leaf each: more than 16 metadata blocks hold
		fmt.Fprintf(&x, `<device dev_id="%d" mapped_blocks="1" transaction="0" creation_time="0" snap_time="0">`+"\n", i)
		fmt.Fprintf(&x, `<single_mapping origin_block="0" data_block="%d" time="0"/>`+"\n</device>\n", i)
	}
	x.WriteString("</superblock>\n")
	os.WriteFile(xml, []byte(x.String()), 0o644)
	tiny := filepath.Join(dir, "tiny.img")
	os.WriteFile(tiny, make([]byte, 16*4096), 0o644)
	for _, args := range [][]string{
		{"message", "--no-verify", full, "create_thin", "1", "map", "1", "0", "5"},
		{"message", "--no-verify", full, "create_snap", "2", "9"},
		{"message", "--no-verify", full, "delete", "9"},
		{"message", "--no-verify", full, "resize_data", "2"},
		{"dump", garbage},
		{"dump", missing},
		{"ls", zero},
		{"unpack", "-i", badPack, "-o", filepath.Join(dir, "out.img")},
		{"restore", "-i", xml, "-o", tiny},
		{"blob", "list", full},
		{"blob", "create", "--no-verify", full},
		{"reconcile", "--list", xml, zero},
		{"convert", "--no-verify", "--to", "stock", full},
	} {
		code, out, errs := cli(args...)
		if code == exitOK {
			t.Errorf("thinmeta %v did not fail: %s", args, out)
			continue
		}
		first, _, _ := strings.Cut(errs, "\n")
		// Hints quote commands to run ("thinmeta convert ..."): not prefixes.
		unquoted := regexp.MustCompile(`"[^"]*"`).ReplaceAllString(first, `""`)
		if !strings.HasPrefix(first, "thinmeta "+args[0]+": ") || strings.Count(unquoted, "thinmeta") != 1 {
			t.Errorf("thinmeta %v: %q", args, first)
		}
		if w, ok := repeatedContext(first); ok {
			t.Errorf("thinmeta %v: %q says %q twice", args, first, w)
		}
	}
}

// repeatedContext reports a one-word piece of context said twice in an
// error line ("a: restore: b: restore: c").
func repeatedContext(line string) (string, bool) {
	seen := map[string]bool{}
	for _, s := range strings.Split(line, ": ") {
		if w := strings.Fields(s); len(w) == 1 {
			if seen[w[0]] {
				return w[0], true
			}
			seen[w[0]] = true
		}
	}
	return "", false
}
