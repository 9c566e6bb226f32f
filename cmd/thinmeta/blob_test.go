package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
)

// cliRun runs a command and fails the test on an unexpected exit code.
func cliRun(t *testing.T, want int, c *command, args ...string) (stdout, stderr string) {
	t.Helper()
	code, out, errs := queryRun(c, args...)
	if code != want {
		t.Fatalf("%s %v: exit %d, want %d\n%s%s", c.name, args, code, want, out, errs)
	}
	return out, errs
}

// The blob verbs on an extended pool: ids handed out by the pool or
// chosen, never reused; blobs as text or hex; list, find, count and get;
// reconcile; a conversion to stock that thin_check accepts and thin_dump
// shows as the verbs left it, and back. Failing verbs change nothing.
func TestBlobVerbs(t *testing.T) {
	img := filepath.Join(t.TempDir(), "meta.img")
	nv := "--no-verify" // package check does not know extended pools yet
	cliRun(t, exitUsage, formatCommand, "--size", "8M", "--nr-data-blocks", "1000", "--blob-size", "16", img)
	cliRun(t, exitUsage, formatCommand, "--size", "8M", "--nr-data-blocks", "1000", "--extended", img)
	cliRun(t, exitUsage, formatCommand, "--size", "8M", "--nr-data-blocks", "1000", "--extended", "--blob-size", "0", img)
	cliRun(t, exitUsage, formatCommand, "--size", "8M", "--nr-data-blocks", "1000", "--extended", "--blob-size", "8", "--index-bytes", "9", img)
	cliRun(t, exitOK, formatCommand, "--size", "8M", "--nr-data-blocks", "1000", "--extended", "--blob-size", "16", "--index-bytes", "8", img)
	tptest.CheckRejects(t, img)

	id := func(args ...string) string {
		t.Helper()
		out, _ := cliRun(t, exitOK, blobCommand, append([]string{args[0], nv}, args[1:]...)...)
		return strings.TrimSpace(out)
	}
	if got := id("create", img, "vm-root"); got != "0" {
		t.Fatalf("first id %s", got)
	}
	if got := id("create", "--id", "1099511627776", img, "vm-home"); got != "1099511627776" {
		t.Fatalf("chosen id %s", got)
	}
	if got := id("snap", img, "0", "vm-root@1"); got != "1099511627777" {
		t.Fatalf("snapshot id %s", got)
	}
	if got := id("create", "--hex", img, "ff0001"); got != "1099511627778" {
		t.Fatalf("id %s", got)
	}
	cliRun(t, exitOK, blobCommand, "set", nv, img, "1099511627778", "vm-tmp")
	cliRun(t, exitOK, blobCommand, "delete", nv, img, "1099511627778")
	before, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// Refused: an id used before, a blob too long, a missing thin, bad
	// arguments. None changes the pool.
	cliRun(t, exitFail, blobCommand, "create", nv, "--id", "1099511627778", img)
	cliRun(t, exitFail, blobCommand, "create", nv, "--id", "5", img)
	cliRun(t, exitFail, blobCommand, "create", nv, img, "seventeen bytes!!")
	cliRun(t, exitFail, blobCommand, "set", nv, img, "77", "x")
	cliRun(t, exitUsage, blobCommand, "set", nv, img, "0")
	cliRun(t, exitUsage, blobCommand, "create", nv, "--hex", img, "xyz")
	cliRun(t, exitUsage, blobCommand, "frob", img)
	cliRun(t, exitUsage, blobCommand, "list", "--id", "3", img)
	cliRun(t, exitUsage, blobCommand, "find", img, "a key longer than eight bytes")
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Fatal("refused verbs changed the pool")
	}

	list := `0 0 0 1 "vm-root"
1099511627776 0 0 0 "vm-home"
1099511627777 0 1 1 "vm-root@1"
`
	if out, _ := cliRun(t, exitOK, blobCommand, "list", img); out != list {
		t.Fatalf("list:\n%s\nwant:\n%s", out, list)
	}
	if out, _ := cliRun(t, exitOK, blobCommand, "find", img, "vm-root"); out != "0 0 0 1 \"vm-root\"\n" {
		t.Fatalf("find: %q", out)
	}
	if out, _ := cliRun(t, exitOK, blobCommand, "find", "--hex", img, "766d2d686f6d65"); out != "1099511627776 0 0 0 766d2d686f6d65\n" {
		t.Fatalf("find --hex: %q", out)
	}
	if out, _ := cliRun(t, exitOK, blobCommand, "count", "-v", img); out != "3 thins, blob size 16, index width 8, next id 1099511627779\n" {
		t.Fatalf("count: %q", out)
	}
	if out, _ := cliRun(t, exitOK, blobCommand, "get", img, "1099511627777"); out != "\"vm-root@1\"\n" {
		t.Fatalf("get: %q", out)
	}
	if out, _ := cliRun(t, exitOK, blobCommand, "get", "--raw", img, "0"); out != "vm-root\x00\x00\x00\x00\x00\x00\x00\x00\x00" {
		t.Fatalf("get --raw: %q", out)
	}
	cliRun(t, exitFail, blobCommand, "get", img, "5")
	cliRun(t, exitOK, blobCommand, "clear", nv, img, "1099511627777")

	listFile := filepath.Join(t.TempDir(), "list")
	os.WriteFile(listFile, []byte("# the manager's view\n0 vm-root\n1099511627776 vm-HOME\n42 lost\n"), 0o644)
	out, errs := cliRun(t, exitFail, reconcileCommand, "--list", listFile, img)
	want := "missing 42 \"lost\"\nmismatch 1099511627776 \"vm-HOME\" \"vm-home\"\norphan 1099511627777 \"\"\n"
	if out != want || !strings.Contains(errs, "1 matched, 1 orphan(s), 1 missing, 1 mismatch(es)") {
		t.Fatalf("reconcile:\n%s%s\nwant:\n%s", out, errs, want)
	}
	os.WriteFile(listFile, []byte("0 766d2d726f6f74\n1099511627776 766d2d686f6d65\n1099511627777 \n"), 0o644)
	cliRun(t, exitOK, reconcileCommand, "-q", "--hex", "--list", listFile, img)
	os.WriteFile(listFile, []byte("0 a\n0 b\n"), 0o644)
	cliRun(t, exitUsage, reconcileCommand, "--list", listFile, img)

	// To stock: refused without --renumber; then thin_check accepts it.
	cliRun(t, exitUsage, convertCommand, img)
	cliRun(t, exitUsage, convertCommand, "--to", "stock", "--blob-size", "3", img)
	cliRun(t, exitFail, convertCommand, nv, "--to", "stock", img)
	out, _ = cliRun(t, exitOK, convertCommand, nv, "-q", "--to", "stock", "--renumber", img)
	if out != "1099511627776 1\n1099511627777 2\n" {
		t.Fatalf("renumbered: %q", out)
	}
	tptest.CheckClean(t, img)
	wantDump := `<superblock uuid="" time="1" transaction="0" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">
  <device dev_id="0" mapped_blocks="0" transaction="0" creation_time="0" snap_time="1">
  </device>
  <device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">
  </device>
  <device dev_id="2" mapped_blocks="0" transaction="0" creation_time="1" snap_time="1">
  </device>
</superblock>
`
	if got := string(tptest.MustRun(t, "thin_dump", img).Stdout); got != wantDump {
		t.Fatalf("thin_dump:\n%s\nwant:\n%s", got, wantDump)
	}
	cliRun(t, exitFail, blobCommand, "list", img) // a stock pool
	cliRun(t, exitFail, blobCommand, "create", nv, img)
	cliRun(t, exitUsage, convertCommand, "--to", "extended", img)
	cliRun(t, exitUsage, convertCommand, "--to", "extended", "--blob-size", "1323", img)
	cliRun(t, exitOK, convertCommand, "-q", "--to", "extended", "--blob-size", "32", "--index-bytes", "4", img)
	if out, _ := cliRun(t, exitOK, blobCommand, "count", "-v", img); out != "3 thins, blob size 32, index width 4, next id 3\n" {
		t.Fatalf("count after the upgrade: %q", out)
	}
}

// Writes check the pool first: a damaged extended pool is refused and
// left as it was; a sound one is written. (The second part needs package
// check to know the extended format.)
func TestBlobVerifiesBeforeWriting(t *testing.T) {
	dir := t.TempDir()
	img, bad := filepath.Join(dir, "meta.img"), filepath.Join(dir, "bad.img")
	cliRun(t, exitOK, formatCommand, "--size", "4M", "--nr-data-blocks", "100", "--extended", "--blob-size", "40", img)
	cliRun(t, exitOK, blobCommand, "create", "--no-verify", "-q", img, "a")
	// Damage the device-details leaf: its checksum no longer matches.
	p, err := thin.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := p.Superblock().DeviceDetailsRoot
	p.Close()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	data[leaf*4096+100] ^= 1
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"blob", "create", bad, "b"}, {"blob", "set", bad, "0", "b"}, {"convert", "--to", "stock", bad}} {
		c := blobCommand
		if args[0] == "convert" {
			c = convertCommand
		}
		if code, _, errs := queryRun(c, args[1:]...); code != exitFail || !strings.Contains(errs, "check") {
			t.Fatalf("%v on a damaged pool: exit %d\n%s", args, code, errs)
		}
		if now, _ := os.ReadFile(bad); !bytes.Equal(now, data) {
			t.Fatalf("%v changed a damaged pool", args)
		}
	}
	code, _, errs := queryRun(blobCommand, "create", img, "b")
	if code != exitOK {
		if strings.Contains(errs, "expected 24") {
			t.Skipf("package check does not know extended pools yet: %s", errs)
		}
		t.Fatalf("create on a sound extended pool: exit %d\n%s", code, errs)
	}
}
