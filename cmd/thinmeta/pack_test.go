package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/pack"
)

// packRun runs one command with captured output.
func packRun(c *command, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, isTerminal: func(*os.File) bool { return false }}
	code = c.run(e, args)
	return code, out.String(), errb.String()
}

func packReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// packNoTemps fails if a temporary output file was left behind in dir.
func packNoTemps(t *testing.T, dir string) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	if len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

// Unpacking every fixture (packed by the real thin_metadata_pack) gives an
// image that thin_check 0.9.0 accepts, unless the fixture is damaged on
// purpose; packing it again and unpacking gives the identical image.
func TestPackUnpackFixtures(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		name := tptest.Name(f)
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "a.img")
			if code, _, errs := packRun(unpackCommand, "-i", f, "-o", img); code != 0 {
				t.Fatalf("unpack: exit %d: %s", code, errs)
			}
			if !tptest.DamagedFixtures[name] {
				tptest.CheckClean(t, img)
			}
			p := filepath.Join(dir, "a.pack")
			if code, _, errs := packRun(packCommand, "--input", img, "--output", p); code != 0 {
				t.Fatalf("pack: exit %d: %s", code, errs)
			}
			img2 := filepath.Join(dir, "b.img")
			if code, _, errs := packRun(unpackCommand, "--input="+p, "--output="+img2); code != 0 {
				t.Fatalf("unpack: exit %d: %s", code, errs)
			}
			if !bytes.Equal(packReadFile(t, img), packReadFile(t, img2)) {
				t.Error("round trip changed the image")
			}
			packNoTemps(t, dir)
		})
	}
}

func TestPackUnpackRefuseOverwrite(t *testing.T) {
	f := tptest.Fixtures(t)[0]
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.WriteFile(out, []byte("precious"), 0o644)
	for _, c := range []*command{unpackCommand, packCommand} {
		in := f
		if c == packCommand {
			in = tptest.Unpack(t, f)
		}
		code, _, errs := packRun(c, "-i", in, "-o", out)
		if code != exitFail || !strings.Contains(errs, "--force") {
			t.Errorf("%s over an existing file: exit %d, %q", c.name, code, errs)
		}
		if string(packReadFile(t, out)) != "precious" {
			t.Fatalf("%s changed the existing output", c.name)
		}
		if code, _, errs := packRun(c, "-f", "-i", in, "-o", out); code != 0 {
			t.Errorf("%s -f: exit %d: %s", c.name, code, errs)
		}
		if string(packReadFile(t, out)) == "precious" {
			t.Errorf("%s -f did not replace the output", c.name)
		}
		// The output can never be the input.
		if code, _, _ := packRun(c, "-f", "-i", in, "-o", in); code != exitFail {
			t.Errorf("%s with output = input: exit %d", c.name, code)
		}
		os.WriteFile(out, []byte("precious"), 0o644)
	}
	packNoTemps(t, dir)
}

func TestPackUnpackUsage(t *testing.T) {
	for _, c := range []*command{unpackCommand, packCommand} {
		for _, args := range [][]string{
			{}, {"-i", "x"}, {"-o", "y"}, {"-i", "x", "-o", "y", "z"}, {"--bogus"}, {"-i"},
		} {
			if code, _, errs := packRun(c, args...); code != exitUsage || !strings.Contains(errs, "usage") {
				t.Errorf("%s %q: exit %d, %q", c.name, args, code, errs)
			}
		}
		code, out, _ := packRun(c, "-h")
		if code != 0 || !strings.HasPrefix(out, "Usage: thinmeta "+c.name) {
			t.Errorf("%s -h: exit %d, %q", c.name, code, out)
		}
	}
}

func TestUnpackBadInput(t *testing.T) {
	dir := t.TempDir()
	good := packReadFile(t, tptest.Fixtures(t)[0])
	cases := map[string][]byte{
		"empty":     nil,
		"not pack":  bytes.Repeat([]byte{1}, 5000),
		"truncated": good[:len(good)-10],
		"garbage":   append(append([]byte{}, good[:40]...), bytes.Repeat([]byte{0xEE}, 300)...),
	}
	for name, data := range cases {
		in := filepath.Join(dir, name)
		os.WriteFile(in, data, 0o644)
		out := filepath.Join(dir, name+".img")
		code, _, errs := packRun(unpackCommand, "-i", in, "-o", out)
		if code != exitFail || !strings.Contains(errs, "thin_metadata_pack") || !strings.Contains(errs, in) {
			t.Errorf("%s: exit %d, %q", name, code, errs)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: output created", name)
		}
	}
	if code, _, _ := packRun(unpackCommand, "-i", filepath.Join(dir, "missing"), "-o", filepath.Join(dir, "o")); code != exitFail {
		t.Errorf("missing input: exit %d", code)
	}
	missingDir := filepath.Join(dir, "no", "such", "dir.img")
	if code, _, errs := packRun(unpackCommand, "-i", tptest.Fixtures(t)[0], "-o", missingDir); code != exitFail || !strings.Contains(errs, missingDir) {
		t.Errorf("output in a missing directory: exit %d, %q", code, errs)
	}
	packNoTemps(t, dir)
}

func TestPackBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"small":  make([]byte, 4095),
		"packed": append(bytes.Clone(packReadFile(t, tptest.Fixtures(t)[0])), make([]byte, 4096)...),
		"xml":    append([]byte("  <superblock uuid=\"\">"), make([]byte, 5000)...),
	}
	for name, data := range cases {
		in := filepath.Join(dir, name)
		os.WriteFile(in, data, 0o644)
		out := filepath.Join(dir, name+".pack")
		if code, _, errs := packRun(packCommand, "-i", in, "-o", out); code != exitFail {
			t.Errorf("%s: exit %d, %q", name, code, errs)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: output created", name)
		}
	}
	// A directory is neither a file nor a device.
	if code, _, _ := packRun(packCommand, "-i", dir, "-o", filepath.Join(dir, "o")); code != exitFail {
		t.Errorf("directory input: exit %d", code)
	}
	packNoTemps(t, dir)
}

// Unpacking to a device writes in place: blocks the pack holds are
// written, the other blocks of the image are zeroed, and the device beyond
// the image is left alone. A regular file stands in for the device.
func TestUnpackToDevice(t *testing.T) {
	f := tptest.Fixtures(t)[0]
	want := packReadFile(t, tptest.Unpack(t, f))
	dev := filepath.Join(t.TempDir(), "dev")
	junk := bytes.Repeat([]byte{0xA5}, len(want)+3*4096)
	os.WriteFile(dev, junk, 0o644)
	df, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out := &output{f: df, path: dev, device: true, size: int64(len(junk))}
	if err := unpackToDevice(in, out, uint64(len(want)/4096)); err != nil {
		t.Fatal(err)
	}
	if err := out.commit(); err != nil {
		t.Fatal(err)
	}
	got := packReadFile(t, dev)
	if !bytes.Equal(got[:len(want)], want) {
		t.Error("image on the device differs")
	}
	if !bytes.Equal(got[len(want):], junk[len(want):]) {
		t.Error("device beyond the image was changed")
	}
}

func TestProgressOnlyOnTerminal(t *testing.T) {
	tmp, err := os.Create(filepath.Join(t.TempDir(), "tty"))
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	for _, tc := range []struct {
		stderr   any
		terminal bool
		quiet    bool
	}{
		{tmp, false, false}, {tmp, true, true}, {&bytes.Buffer{}, true, false},
	} {
		e := &env{isTerminal: func(*os.File) bool { return tc.terminal }}
		if f, ok := tc.stderr.(*os.File); ok {
			e.stderr = f
		} else {
			e.stderr = tc.stderr.(*bytes.Buffer)
		}
		update, end := e.progress("x", tc.quiet)
		time.Sleep(progressDelay + 10*time.Millisecond)
		update(1, 2)
		end()
	}
	if st, _ := tmp.Stat(); st.Size() != 0 {
		t.Errorf("progress written where it should not be: %d bytes", st.Size())
	}
	// On a terminal, after the delay, a line appears and is erased at the end.
	e := &env{stderr: tmp, isTerminal: func(*os.File) bool { return true }}
	update, end := e.progress("unpack", false)
	update(1, 4)
	time.Sleep(progressDelay + 10*time.Millisecond)
	update(1, 4)
	end()
	got := string(packReadFile(t, tmp.Name()))
	if want := "\runpack:  25%\r" + strings.Repeat(" ", 12) + "\r"; got != want {
		t.Errorf("terminal got %q, want %q", got, want)
	}
}

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	p := &progressLine{w: &buf, what: "pack", now: func() time.Time { return now }, start: now}
	p.update(10, 100) // before the delay: nothing
	now = now.Add(2 * time.Second)
	p.update(50, 100) // 2 s for half: 2 s left
	now = now.Add(100 * time.Millisecond)
	p.update(60, 100) // too soon to redraw
	now = now.Add(time.Second)
	p.update(100, 100)
	p.end()
	want := "\rpack:  50%  ETA 0:02" + "\rpack: 100%" + strings.Repeat(" ", 10) + "\r" + strings.Repeat(" ", 10) + "\r"
	if buf.String() != want {
		t.Errorf("got %q\nwant %q", buf.String(), want)
	}
}

func TestProgressText(t *testing.T) {
	tests := []struct {
		done, total uint64
		elapsed     time.Duration
		want        string
	}{
		{0, 0, time.Hour, "x: working"},
		{0, 10, time.Hour, "x:   0%"},
		{1, 3, 500 * time.Millisecond, "x:  33%"},
		{1, 3, 10 * time.Second, "x:  33%  ETA 0:20"},
		{1, 100, 100 * time.Second, "x:   1%  ETA 2:45:00"},
		{1 << 63, 1<<64 - 1, time.Minute, "x:  50%  ETA 1:00"},
		{20, 10, time.Minute, "x: 100%"},
	}
	for _, tt := range tests {
		if got := progressText("x", tt.done, tt.total, tt.elapsed); got != tt.want {
			t.Errorf("progressText(%d, %d, %v) = %q, want %q", tt.done, tt.total, tt.elapsed, got, tt.want)
		}
	}
}

func TestIsPackedFixtures(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		if !pack.IsPacked(packReadFile(t, f)) {
			t.Errorf("%s not recognised as packed", f)
		}
	}
}
