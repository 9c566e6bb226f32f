package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/dm"
)

// runCLI runs "thinmeta pool ..." in-process (args start with "pool").
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), isTerminal: func(*os.File) bool { return false }}
	c := lookup(args[0])
	return c.run(e, args[1:]), out.String(), errb.String()
}

// Usage errors exit 2 before any device is touched; help exits 0; a
// missing device-mapper exits 1 with the reason.
func TestPoolUsage(t *testing.T) {
	opened := 0
	openControl = func() (*dm.Control, error) {
		opened++
		return nil, errors.New("open /dev/mapper/control: no device-mapper here")
	}
	defer func() { openControl = dm.Open }()

	for _, args := range [][]string{
		{"pool"},
		{"pool", "bogus"},
		{"pool", "create", "p"},
		{"pool", "create", "--metadata", "/dev/a", "--data", "/dev/b", "p"}, // no block size
		{"pool", "create", "--metadata", "/dev/a", "--data", "/dev/b", "--block-size", "128", "--features", "fast", "p"},
		{"pool", "create", "--metadata", "/dev/a", "--data", "/dev/b", "--block-size", "128"},
		{"pool", "activate", "--data", "/dev/b", "p"},
		{"pool", "deactivate"},
		{"pool", "status", "a", "b"},
		{"pool", "list", "x"},
		{"pool", "thin"},
		{"pool", "thin", "create", "p"},
		{"pool", "thin", "create", "p", "16777216"},
		{"pool", "thin", "create", "p", "x"},
		{"pool", "thin", "activate", "p", "1", "t1", "1000"}, // not a multiple of 512
		{"pool", "thin", "frob", "p", "1"},
		{"pool", "snap", "p", "1"},
		{"pool", "snap", "p", "16777216", "1"},
		{"pool", "set-transaction-id", "p", "1"},
		{"pool", "set-transaction-id", "p", "a", "2"},
		{"pool", "recover"},
		{"pool", "read", "p"},
		{"pool", "read", "p", "frob"},
		{"pool", "read", "--held", "--release", "p", "dump"},
		{"pool", "read", "--release", "p", "dump"},
		{"pool", "read", "p", "dump", "-f", "yaml"},
		{"pool", "read", "p", "delta", "--thin1", "1"},
		{"pool", "wait"},
		{"pool", "wait", "--timeout", "soon", "p"},
		{"pool", "grow", "p"},
		{"pool", "grow", "--metadata", "--data-blocks", "9", "p"},
	} {
		code, _, stderr := runCLI(args...)
		if code != exitUsage || stderr == "" {
			t.Errorf("%q: exit %d, stderr %q; want usage error", args, code, stderr)
		}
	}
	if opened != 0 {
		t.Fatalf("usage errors opened the control device %d times", opened)
	}

	// Help, for the command and each subcommand.
	code, out, _ := runCLI("pool", "--help")
	if code != exitOK || !strings.Contains(out, "Subcommands:") || lookup("pool") != poolCommand {
		t.Fatalf("pool --help: %d %q", code, out)
	}
	for _, s := range poolSubcommands() {
		for _, args := range [][]string{{"pool", s.name, "-h"}, {"pool", "help", s.name}} {
			code, out, _ := runCLI(args...)
			if code != exitOK || !strings.HasPrefix(out, "Usage: thinmeta pool "+s.name) || !strings.Contains(out, "Exit status:") {
				t.Errorf("%q: exit %d, %q", args, code, out)
			}
		}
		if !strings.Contains(poolCommand.usage, "  "+s.name) {
			t.Errorf("pool help does not list %s", s.name)
		}
	}

	// Without device-mapper: exit 1 and the reason.
	for _, args := range [][]string{{"pool", "list"}, {"pool", "status", "p"}, {"pool", "snap", "p", "2", "1"}} {
		code, _, stderr := runCLI(args...)
		if code != exitFail || !strings.Contains(stderr, "no device-mapper here") {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
	}
}
