package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The four commands that take superblock overrides (dump, dump --repair,
// restore, repair) read them with one flag type: a value that is not a
// number of the option's width is the same usage error, exit 2, in each;
// a data block size no pool can have is refused by the three that write
// a pool and printed as given by dump (as thin_dump does).
func TestOverrideFlagsAlike(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "pool.img")
	if code, _, errs := cli("format", "--nr-data-blocks", "100", "--size", "4M", img); code != 0 {
		t.Fatalf("format: %s", errs)
	}
	xmlPath := filepath.Join(dir, "pool.xml")
	code, xml, errs := cli("dump", img)
	if code != 0 {
		t.Fatalf("dump: %s", errs)
	}
	os.WriteFile(xmlPath, []byte(xml), 0o644)
	out := filepath.Join(dir, "out.img")
	os.WriteFile(out, make([]byte, 4<<20), 0o644)
	commands := map[string][]string{
		"dump":          {"dump", img},
		"dump --repair": {"dump", "--repair", img},
		"restore":       {"restore", "-i", xmlPath, "-o", out},
		"repair":        {"repair", "-i", img, "-o", out, "-f"},
	}
	bad := []struct{ flag, value, msg string }{
		{"--transaction-id", "x", `invalid value "x" for flag -transaction-id: not a number of at most 64 bits: "x"`},
		{"--transaction-id", "18446744073709551616", "not a number of at most 64 bits"},
		{"--data-block-size", "4294967296", `invalid value "4294967296" for flag -data-block-size: not a number of at most 32 bits`},
		{"--nr-data-blocks", "-1", `invalid value "-1" for flag -nr-data-blocks: not a number of at most 64 bits`},
	}
	for name, args := range commands {
		for _, b := range bad {
			code, _, errs := cli(append(append([]string{}, args...), b.flag, b.value)...)
			if code != 2 || !strings.Contains(errs, b.msg) {
				t.Errorf("%s %s %s: exit %d, %q; want exit 2 and ...%s...", name, b.flag, b.value, code, errs, b.msg)
			}
		}
		code, stdout, errs := cli(append(append([]string{}, args...), "--data-block-size", "100")...)
		if name == "dump" {
			if code != 0 || !strings.Contains(stdout, `data_block_size="100"`) {
				t.Errorf("dump --data-block-size 100: exit %d, %q", code, errs)
			}
			continue
		}
		if code != 2 || !strings.Contains(errs, "data block size 100") {
			t.Errorf("%s --data-block-size 100: exit %d, %q; want exit 2, data block size 100", name, code, errs)
		}
	}
}
