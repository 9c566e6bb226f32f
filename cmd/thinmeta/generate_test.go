package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/pack"
	"github.com/thinmeta/thinmeta/thin"
)

// needLZ4 returns the path of the lz4 tool, skipping the test (failing it
// when CI is set) if it is missing.
func needLZ4(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("lz4")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("lz4 not installed and CI is set (apt-get install lz4)")
		}
		t.Skip("lz4 not installed")
	}
	return p
}

func runCmd(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr)
	}
	return out
}

const genSpec = "thins=3 mappings=300-1500 snapshots=5 shape=tree discard=0.05 deletions=1 metadata-snap=true"

// The three output formats hold the same image: the lz4 tool decompresses
// ours to the raw image, thin_metadata_unpack (through pack.Unpack) the
// pack file; --expect is what thin_dump prints; and the same command run
// twice writes the same bytes.
func TestGenerateFormats(t *testing.T) {
	lz4Tool := needLZ4(t)
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	gen := func(args ...string) {
		t.Helper()
		args = append([]string{"-q", "--spec", genSpec, "--seed", "5"}, args...)
		if code, stdout, errs := queryRun(generateCommand, args...); code != 0 {
			t.Fatalf("generate %v: exit %d\n%s%s", args, code, stdout, errs)
		}
	}
	gen("--expect", out("expect.xml"), "--expect-snap", out("expect-snap.xml"), out("a.img"))
	gen(out("a.lz4"))
	gen(out("a.pack"))
	gen("--format", "lz4", out("b.bin"))
	gen("--format", "raw", out("c.pack"))
	raw := packReadFile(t, out("a.img"))

	if got := runCmd(t, lz4Tool, "-d", "-c", out("a.lz4")); !bytes.Equal(got, raw) {
		t.Fatal("lz4 -d of our frame differs from the raw image")
	}
	if !bytes.Equal(packReadFile(t, out("b.bin")), packReadFile(t, out("a.lz4"))) {
		t.Fatal("--format lz4 differs from the .lz4 extension")
	}
	if !bytes.Equal(packReadFile(t, out("c.pack")), raw) {
		t.Fatal("--format raw differs from the raw image")
	}
	f, err := os.Open(out("a.pack"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unpacked := make(sliceImage, len(raw))
	if _, err := pack.Unpack(f, unpacked); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unpacked, raw) {
		t.Fatal("the pack file unpacks to another image")
	}
	if got := tptest.MustRun(t, "thin_dump", out("a.img")).Stdout; !bytes.Equal(got, packReadFile(t, out("expect.xml"))) {
		t.Fatal("thin_dump differs from --expect")
	}
	if got := tptest.MustRun(t, "thin_dump", "-m", out("a.img")).Stdout; !bytes.Equal(got, packReadFile(t, out("expect-snap.xml"))) {
		t.Fatal("thin_dump -m differs from --expect-snap")
	}
	tptest.CheckClean(t, out("a.img"))
	tptest.CheckClean(t, out("a.img"), "-m")
	gen("-f", out("a2.lz4"))
	gen("-f", out("a2.pack"))
	gen("-f", out("a2.img"))
	for _, ext := range []string{"img", "lz4", "pack"} {
		if !bytes.Equal(packReadFile(t, out("a."+ext)), packReadFile(t, out("a2."+ext))) {
			t.Errorf("a second run wrote another .%s", ext)
		}
	}
	packNoTemps(t, dir)
}

// Every command that reads metadata reads an LZ4 frame, ours or the lz4
// tool's (several frames and skippable frames included), as it reads the
// raw image.
func TestReadCommandsAcceptLZ4(t *testing.T) {
	lz4Tool := needLZ4(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	spec := "thins=3 mappings=300-1500 snapshots=5 shape=tree discard=0.05 metadata-snap=true"
	if code, _, errs := queryRun(generateCommand, "-q", "--spec", spec, img); code != 0 {
		t.Fatal(errs)
	}
	raw := packReadFile(t, img)
	ours := filepath.Join(dir, "ours.lz4")
	if code, _, errs := queryRun(generateCommand, "-q", "--spec", spec, ours); code != 0 {
		t.Fatal(errs)
	}
	tool := filepath.Join(dir, "tool.lz4")
	runCmd(t, lz4Tool, "-q", "-f", img, tool)
	tool9 := filepath.Join(dir, "tool9.lz4")
	runCmd(t, lz4Tool, "-q", "-f", "-9", "-B4", "-BD", "--no-frame-crc", img, tool9)
	// Two frames with a skippable frame between them: lz4 -d reads them
	// as one stream.
	half := len(raw) / 2
	split := filepath.Join(dir, "split.lz4")
	var multi bytes.Buffer
	for i, part := range [][]byte{raw[:half], raw[half:]} {
		p := filepath.Join(dir, "part")
		if err := os.WriteFile(p, part, 0o644); err != nil {
			t.Fatal(err)
		}
		multi.Write(runCmd(t, lz4Tool, "-q", "-c", p))
		if i == 0 {
			multi.Write([]byte{0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'x', 'y', 'z'})
		}
	}
	if err := os.WriteFile(split, multi.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := runCmd(t, lz4Tool, "-d", "-c", split); !bytes.Equal(got, raw) {
		t.Fatal("the split frames do not decompress to the image with lz4 -d")
	}
	queries := [][]string{
		{"dump"}, {"dump", "-m"}, {"check"}, {"check", "-m"}, {"ls"}, {"ls", "-m"},
		{"rmap", "--region", "0..100000"}, {"delta", "--thin1", "1", "--thin2", "2"},
	}
	for _, q := range queries {
		c := lookup(q[0])
		wantCode, want, wantErr := queryRun(c, append(q[1:], img)...)
		if wantCode != 0 {
			t.Fatalf("%v on the raw image: exit %d: %s", q, wantCode, wantErr)
		}
		for _, in := range []string{ours, tool, tool9, split} {
			code, got, errs := queryRun(c, append(q[1:], in)...)
			if code != wantCode || got != want {
				t.Errorf("%v %s: exit %d (%s), output differs from the raw image's: %v", q, filepath.Base(in), code, errs, got != want)
			}
		}
	}
}

// A truncated or corrupted frame is an error, not a panic or a partial
// image.
func TestLZ4BadInput(t *testing.T) {
	dir := t.TempDir()
	lz := filepath.Join(dir, "a.lz4")
	if code, _, errs := queryRun(generateCommand, "-q", "--thins", "1", "--mappings", "100", lz); code != 0 {
		t.Fatal(errs)
	}
	frame := packReadFile(t, lz)
	cases := map[string][]byte{
		"truncated": frame[:len(frame)/2],
		"header":    frame[:7],
		"corrupt":   append(append([]byte(nil), frame[:40]...), bytes.Repeat([]byte{0xa5}, len(frame)-40)...),
		"odd size":  nil,
	}
	var odd bytes.Buffer
	if err := writeLZ4(&odd, bytes.NewReader(make([]byte, 5000)), 5000); err != nil {
		t.Fatal(err)
	}
	cases["odd size"] = odd.Bytes()
	for name, data := range cases {
		p := filepath.Join(dir, "bad.lz4")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errs := queryRun(dumpCommand, p)
		if code != exitFail || !strings.Contains(errs, "bad.lz4") {
			t.Errorf("%s: exit %d: %s", name, code, errs)
		}
	}
}

// --damage reports what it did; the report's verdicts are those of both
// thin_check generations and its findings are "thinmeta check"'s.
func TestGenerateDamage(t *testing.T) {
	tptest.Need(t, "thin_check")
	dir := t.TempDir()
	for _, k := range gen.DamageKinds() {
		img := filepath.Join(dir, k.String()+".img")
		code, out, errs := queryRun(generateCommand, "--spec", "thins=2 mappings=2000 snapshots=3 shape=fan rewrite=0.01 target=snapshot metadata-snap=true",
			"--damage", k.String()+":seed=4", img)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", k, code, errs)
		}
		var verdict, verdict110 string
		var findings []string
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if v, ok := strings.CutPrefix(l, "thin_check 0.9.0: "); ok {
				verdict = v
			}
			if v, ok := strings.CutPrefix(l, "thin_check 1.1.0: "); ok {
				verdict110 = v
			}
			if f, ok := strings.CutPrefix(l, "finding: "); ok {
				findings = append(findings, f)
			}
		}
		r := tptest.Run(t, "thin_check", img)
		lenient := tptest.Run(t, "thin_check", "--ignore-non-fatal-errors", img)
		want := map[string][2]int{"clean": {0, 0}, "non-fatal": {1, 0}, "fatal": {1, 1}}[verdict]
		if verdict == "" || r.Code != want[0] || lenient.Code != want[1] {
			t.Errorf("%v: report says %q, thin_check exits %d and %d\n%s", k, verdict, r.Code, lenient.Code, out)
		}
		// 1.1.0 exits 64 rather than 1.
		r110 := tptest.RunGen(t, tptest.V110, "thin_check", img)
		lenient110 := tptest.RunGen(t, tptest.V110, "thin_check", "--ignore-non-fatal-errors", img)
		want110, ok := map[string][2]bool{"clean": {true, true}, "non-fatal": {false, true}, "fatal": {false, false}}[verdict110]
		if !ok || (r110.Code == 0) != want110[0] || (lenient110.Code == 0) != want110[1] {
			t.Errorf("%v: report says 1.1.0 %q, thin_check 1.1.0 exits %d and %d\n%s", k, verdict110, r110.Code, lenient110.Code, out)
		}
		ccode, _, cerr := queryRun(checkCommand, img)
		var lines []string // the findings (not the summary of leaks)
		for _, l := range strings.Split(cerr, "\n") {
			if strings.Contains(l, ": ") {
				lines = append(lines, l)
			}
		}
		if ccode != exitFail || len(lines) != len(findings) || len(findings) == 0 {
			t.Errorf("%v: check exit %d, %d findings, the report has %d:\n%s\n%s", k, ccode, len(lines), len(findings), cerr, out)
		}
	}
}

// Usage errors exit 2 and write nothing; an existing output needs -f.
func TestGenerateUsage(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	for _, args := range [][]string{
		{}, {img, img}, {"--thins", "x", img}, {"--shape", "star", img}, {"--spec", "bogus=1", img},
		{"--sparsity", "1", img}, {"--format", "zip", img}, {"--damage", "nope", img}, {"--seed", "-1", img},
		{"--thins", "0", "--snapshots", "2", img}, {"--damage", "torn-superblock", filepath.Join(dir, "x.pack")},
	} {
		if code, _, errs := queryRun(generateCommand, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, errs)
		}
	}
	if _, err := os.Stat(img); err == nil {
		t.Fatal("a usage error wrote the output")
	}
	if code, _, errs := queryRun(generateCommand, "-q", "--mappings", "10", img); code != 0 {
		t.Fatal(errs)
	}
	if code, _, _ := queryRun(generateCommand, "-q", "--mappings", "20", img); code != exitFail {
		t.Fatalf("overwrote without -f: exit %d", code)
	}
	if code, _, errs := queryRun(generateCommand, "-q", "-f", "--mappings", "20", dir); code != exitFail || !strings.Contains(errs, "not a regular file") {
		t.Fatalf("wrote over a directory: exit %d: %s", code, errs)
	}
	// Damage that the pool cannot take fails, leaving no output.
	p := filepath.Join(dir, "b.lz4")
	if code, _, errs := queryRun(generateCommand, "-q", "--damage", "metadata-snap", p); code != exitFail || !strings.Contains(errs, "no metadata snapshot") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("a failed generate left its output")
	}
	packNoTemps(t, dir)
}

// fixtureCommands returns the generate command lines of
// testdata/make-fixtures.sh, as argument lists.
func fixtureCommands(t *testing.T) [][]string {
	t.Helper()
	script, err := os.ReadFile(filepath.Join("..", "..", "testdata", "make-fixtures.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds [][]string
	for _, l := range strings.Split(string(script), "\n") {
		if rest, ok := strings.CutPrefix(l, `"$t" generate `); ok {
			cmds = append(cmds, strings.Fields(rest))
		}
	}
	if len(cmds) == 0 {
		t.Fatal("no generate commands in make-fixtures.sh")
	}
	return cmds
}

// Every fixture of testdata/ is exactly what its command in
// make-fixtures.sh writes, and thin_check 0.9.0 and "thinmeta check" judge
// it as the command's report says.
func TestFixturesRegenerate(t *testing.T) {
	tptest.Need(t, "thin_check")
	dir := t.TempDir()
	for _, args := range fixtureCommands(t) {
		out := args[len(args)-1]
		name := filepath.Base(out)
		t.Run(name, func(t *testing.T) {
			tmp := filepath.Join(dir, name)
			args := append(append([]string(nil), args[:len(args)-1]...), tmp)
			quiet := args[:0:0]
			for _, a := range args {
				if a != "-q" {
					quiet = append(quiet, a)
				}
			}
			code, stdout, errs := queryRun(generateCommand, quiet...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			want := packReadFile(t, filepath.Join("..", "..", out))
			if !bytes.Equal(packReadFile(t, tmp), want) {
				t.Fatalf("%s differs from what its command writes (run testdata/make-fixtures.sh)", out)
			}
			// thin_check reads raw images only.
			in, err := openInput(tmp, false)
			if err != nil {
				t.Fatal(err)
			}
			img := filepath.Join(dir, name+".img")
			buf := make([]byte, in.Size())
			if _, err := in.ReadAt(buf, 0); err != nil {
				t.Fatal(err)
			}
			in.Close()
			if err := os.WriteFile(img, buf, 0o644); err != nil {
				t.Fatal(err)
			}
			verdict := "clean"
			if slices.Contains(args, "extended") {
				verdict = "fatal" // thin_check refuses the extended format
			}
			if i := strings.Index(stdout, "thin_check 0.9.0: "); i >= 0 {
				verdict = strings.Fields(stdout[i+len("thin_check 0.9.0: "):])[0]
			}
			r := tptest.Run(t, "thin_check", img)
			lenient := tptest.Run(t, "thin_check", "--ignore-non-fatal-errors", img)
			wantCodes := map[string][2]int{"clean": {0, 0}, "non-fatal": {1, 0}, "fatal": {1, 1}}[verdict]
			if r.Code != wantCodes[0] || lenient.Code != wantCodes[1] {
				t.Errorf("thin_check exits %d, %d; the report says %s", r.Code, lenient.Code, verdict)
			}
			ccode, _, _ := queryRun(checkCommand, "-q", filepath.Join("..", "..", out))
			if damaged := strings.Contains(stdout, "damage "); (ccode != 0) != damaged {
				t.Errorf("thinmeta check exits %d; damaged: %v", ccode, damaged)
			}
		})
	}
}

// BenchmarkLZ4 measures LZ4 compression and decompression of a large
// metadata image (the pool of gen's 10M-mapping benchmark, about 316 MB;
// set THINMETA_LZ4_IMAGE to use another image file).
func BenchmarkLZ4(b *testing.B) {
	var raw []byte
	if p := os.Getenv("THINMETA_LZ4_IMAGE"); p != "" {
		var err error
		if raw, err = os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	} else {
		s, err := gen.ParseSpec(gen10MSpec)
		if err != nil {
			b.Fatal(err)
		}
		img := filepath.Join(b.TempDir(), "big.img")
		start := time.Now()
		if _, err := gen.GenerateFile(img, s, 1); err != nil {
			b.Fatal(err)
		}
		b.Logf("generated in %v", time.Since(start))
		if raw, err = os.ReadFile(img); err != nil {
			b.Fatal(err)
		}
	}
	var frame bytes.Buffer
	if err := writeLZ4(&frame, bytes.NewReader(raw), int64(len(raw))); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d bytes, %d compressed", len(raw), frame.Len())
	b.Run("compress", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		var out bytes.Buffer
		out.Grow(frame.Len() + 1<<20)
		for b.Loop() {
			out.Reset()
			if err := writeLZ4(&out, bytes.NewReader(raw), int64(len(raw))); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(raw))/float64(out.Len()), "ratio")
	})
	// decode: the decoder alone, into a reused buffer.
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			n, err := io.Copy(io.Discard, lz4.NewReader(bytes.NewReader(frame.Bytes())))
			if err != nil || n != int64(len(raw)) {
				b.Fatalf("%v, %d bytes", err, n)
			}
		}
	})
	// decompress: what every command does with an .lz4 input, the image
	// decompressed into new memory (whose first touch costs as much as
	// decoding on some virtual machines).
	b.Run("decompress", func(b *testing.B) {
		p := filepath.Join(b.TempDir(), "big.lz4")
		if err := os.WriteFile(p, frame.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			in, err := thin.OpenImage(p, nil)
			if err != nil || in.Size() != int64(len(raw)) {
				b.Fatalf("%v", err)
			}
			in.Close()
		}
	})
}

// gen10MSpec is the pool of the 10M-mapping benchmark (gen's
// BenchmarkGenerate10M).
const gen10MSpec = "thins=10 mappings=1000000 run-length=16 sparsity=0.2 snapshots=10 shape=tree rewrite=0.01 metadata-blocks=77150 bulk=true"

// --metadata-snap does what its help says: after the deletions the
// metadata snapshot is reserved, then blocks of one device are written
// again, so the snapshot (thin_dump -m) and the live pool differ in the
// mappings of exactly that device. Both are clean for both generations of
// thin_check.
func TestGenerateMetadataSnapThenRewrite(t *testing.T) {
	dir := t.TempDir()
	for seed := range 4 {
		img := filepath.Join(dir, "p"+strconv.Itoa(seed)+".img")
		if code, out, errs := queryRun(generateCommand, "-q", "--spec", genSpec, "--seed", strconv.Itoa(seed+1), img); code != 0 {
			t.Fatalf("generate: exit %d\n%s%s", code, out, errs)
		}
		tptest.CheckClean(t, img)
		tptest.CheckClean(t, img, "-m")
		live := devicesOf(tptest.MustRun(t, "thin_dump", img).Stdout)
		snap := devicesOf(tptest.MustRun(t, "thin_dump", "-m", img).Stdout)
		if len(live) != len(snap) {
			t.Fatalf("seed %d: %d devices live, %d in the snapshot", seed+1, len(live), len(snap))
		}
		var differ []string
		for i := range live {
			if live[i][0] != snap[i][0] {
				t.Fatalf("seed %d: device lines differ:\n%s\n%s", seed+1, live[i][0], snap[i][0])
			}
			if !slices.Equal(live[i], snap[i]) {
				differ = append(differ, live[i][0])
			}
		}
		if len(differ) != 1 {
			t.Fatalf("seed %d: %d devices differ from the snapshot, want 1: %v", seed+1, len(differ), differ)
		}
	}
}

// devicesOf splits thin_dump output into the lines of each device, its
// <device> line first.
func devicesOf(xml []byte) [][]string {
	var out [][]string
	for _, l := range strings.Split(string(xml), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "<device "):
			out = append(out, []string{l})
		case len(out) > 0 && strings.Contains(l, "_mapping "):
			out[len(out)-1] = append(out[len(out)-1], l)
		}
	}
	return out
}

// sliceImage is an in-memory io.WriterAt of fixed size (pack.Unpack's
// concurrent writes never overlap).
type sliceImage []byte

func (m sliceImage) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m)) {
		return 0, fmt.Errorf("write beyond image end")
	}
	return copy(m[off:], p), nil
}
