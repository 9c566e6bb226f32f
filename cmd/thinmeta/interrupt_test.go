package main

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
)

// fakeTTY, set in the environment of a thinmeta process run by a test,
// makes it take its standard error for a terminal and draw the progress
// line at once and at every report, each draw 20 ms late: a long command
// is then still running when the test sees its first line.
const fakeTTY = "THINMETA_TEST_FAKE_TTY"

func init() {
	if os.Getenv(asCLI) == "1" && os.Getenv(fakeTTY) == "1" {
		isTerminal = func(f *os.File) bool { return f == os.Stderr }
		progressDelay, progressInterval = 0, 0
		progressClock = func() time.Time {
			time.Sleep(20 * time.Millisecond)
			return time.Now()
		}
	}
}

// longPool restores a pool of 400,000 mappings with thin_restore 0.9.0;
// it returns the image and its XML.
func longPool(t *testing.T) (img, xml string) {
	t.Helper()
	p := genpool.Generate(rand.New(rand.NewPCG(3, 9)), genpool.Spec{Devices: 20, MinMappings: 20000, MaxMappings: 20000,
		MeanRun: 3, Sparsity: 2, SnapshotFraction: 0.3, RewriteFraction: 0.2})
	return genpool.Restore(t, p)
}

// The long commands draw their progress line from the library's reports
// on a terminal, and never on a standard error that is not one, nor
// with -q (nor, for dump, when the output is the terminal).
func TestLongCommandProgressLine(t *testing.T) {
	img, xml := longPool(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "restored")
	if err := genpool.CreateSparse(out, 64<<20); err != nil {
		t.Fatal(err)
	}
	saved := [3]any{progressDelay, progressInterval, progressClock}
	progressDelay, progressInterval = 0, 0
	defer func() {
		progressDelay, progressInterval, progressClock = saved[0].(time.Duration), saved[1].(time.Duration), saved[2].(func() time.Time)
	}()
	for _, tc := range []struct {
		args []string
		line string // what the line says at the end
	}{
		{[]string{"check", img}, "check: 100%"},
		{[]string{"dump", "-o", filepath.Join(dir, "dump.xml"), img}, "dump: 100%"},
		{[]string{"ls", "-o", "DEV,EXCLUSIVE_BLOCKS", img}, "ls: 100%"},
		{[]string{"restore", "-i", xml, "-o", out}, "restore: 100%"},
	} {
		for _, mode := range []string{"terminal", "not a terminal", "quiet", "stdout terminal"} {
			if mode == "quiet" && tc.args[0] == "ls" || mode == "stdout terminal" && tc.args[0] != "dump" {
				continue
			}
			stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
			if err != nil {
				t.Fatal(err)
			}
			args := tc.args
			if mode == "quiet" {
				args = append([]string{args[0], "-q"}, args[1:]...)
			}
			if mode == "stdout terminal" {
				args = []string{"dump", img}
			}
			e := &env{stdout: stdout, stderr: stderr, stdin: strings.NewReader(""), isTerminal: func(f *os.File) bool {
				return mode == "terminal" && f == stderr || mode == "stdout terminal"
			}}
			code := lookup(args[0]).run(e, args[1:])
			stderr.Close()
			stdout.Close()
			got, _ := os.ReadFile(stderr.Name())
			if code != exitOK {
				t.Fatalf("%v (%s): exit %d: %s", args, mode, code, got)
			}
			want := ""
			if mode == "terminal" {
				// Drawn at every report; erased at the end.
				want = "\r" + tc.line + "\r" + strings.Repeat(" ", len(tc.line)) + "\r"
			}
			if mode == "terminal" && (!strings.HasSuffix(string(got), want) || !strings.HasPrefix(string(got), "\r"+tc.args[0]+":")) ||
				mode != "terminal" && len(got) != 0 {
				t.Errorf("%v (%s): standard error %.200q..., want it to end in %q", args, mode, got, want)
			}
		}
	}
}

// SIGINT stops a long command within a moment: exit status 130, the
// message "interrupted", and for restore no pool left on the output
// (thin_check refuses it).
func TestInterruptLongCommand(t *testing.T) {
	img, xml := longPool(t)
	out := filepath.Join(t.TempDir(), "restored")
	if err := genpool.CreateSparse(out, 64<<20); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", img},
		{"dump", "-o", filepath.Join(t.TempDir(), "dump.xml"), img},
		{"ls", "-o", "DEV,EXCLUSIVE_BLOCKS", img},
		{"restore", "-i", xml, "-o", out},
	} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), asCLI+"=1", fakeTTY+"=1")
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		pipe, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The first progress line: the command is under way.
		r := bufio.NewReader(pipe)
		first, err := r.ReadString(':')
		if err != nil {
			t.Fatalf("%v: no progress line: %v", args, err)
		}
		sent := time.Now()
		cmd.Process.Signal(syscall.SIGINT)
		var rest bytes.Buffer
		rest.ReadFrom(r)
		err = cmd.Wait()
		took := time.Since(sent)
		code := cmd.ProcessState.ExitCode()
		msg := "thinmeta " + args[0] + ": interrupted\n"
		if code != exitInterrupted || !strings.HasSuffix(rest.String(), msg) {
			t.Errorf("%v: exit %d (%v), standard error %q...%q; want exit %d and %q", args, code, err, first, rest.String(), exitInterrupted, msg)
		}
		t.Logf("%v: exited %v after SIGINT", args[0], took)
		if took > time.Second {
			t.Errorf("%v: exited %v after SIGINT", args, took)
		}
	}
	for _, g := range []tptest.Gen{tptest.V090, tptest.V110} {
		if r := tptest.RunGen(t, g, "thin_check", out); r.Code == 0 {
			t.Errorf("thin_check %v accepts the output of an interrupted restore", g)
		}
	}
}
