package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rssBound is the most resident memory a command may take on the small
// pools below, whatever the size of the file holding them (the Go runtime
// alone takes about 5 MiB).
const rssBound = 32 << 20

// growSparse copies the pool at src to a new file grown to size bytes
// with a hole (as "truncate -s" does) and returns its path.
func growSparse(t *testing.T, src string, size int64) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "huge.bin")
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(dst, size); err != nil {
		t.Skipf("no sparse file of %d bytes here: %v", size, err)
	}
	return dst
}

// Every command on a valid pool in a 15 TiB sparse file (a metadata file
// grown with truncate -s 15T) does what it does on the pool's own file,
// in bounded memory: thin_check 1.1.0 checks it in 7 MB; thinmeta check,
// and the writers that check first, used to die out of memory.
func TestCommandsOnHugeSparseFile(t *testing.T) {
	dir := t.TempDir()
	stock, ext := filepath.Join(dir, "stock.bin"), filepath.Join(dir, "ext.bin")
	for _, a := range [][]string{
		{"format", "--size", "64M", "--nr-data-blocks", "100000", stock},
		{"message", "-q", stock, "create_thin", "1", "map", "1", "0", "300", "create_snap", "2", "1", "map", "2", "1000", "10"},
		{"format", "--size", "64M", "--nr-data-blocks", "100000", "--extended", "--blob-size", "16", ext},
		{"blob", "create", ext, "first"},
	} {
		if r := runProcess(t, nil, a...); r.code != 0 {
			t.Fatalf("%v: exit %d: %s", a, r.code, r.stderr)
		}
	}
	const size = 15 << 40
	hs, he := growSparse(t, stock, size), growSparse(t, ext, size)
	for _, c := range []struct {
		args []string
		out  string // a piece of the expected standard output
	}{
		{[]string{"check", hs}, ""},
		{[]string{"dump", hs}, `<range_mapping origin_begin="1000"`},
		{[]string{"dump", "--compat", "1.1", hs}, `<range_mapping origin_begin="1000"`},
		{[]string{"ls", hs}, "2"},
		{[]string{"rmap", "--region", "0..100000", hs}, "data 0..300 -> thin(1) 0..300"},
		{[]string{"delta", "--thin1", "1", "--thin2", "2", hs}, "right_only"},
		{[]string{"message", "-q", hs, "create_thin", "3", "map", "3", "0", "5"}, ""},
		{[]string{"check", hs}, ""},
		{[]string{"blob", "create", he, "second"}, "1"},
		{[]string{"blob", "list", he}, "second"},
		{[]string{"convert", "-q", "--to", "stock", he}, ""},
		{[]string{"convert", "-q", "--to", "extended", "--blob-size", "8", hs}, ""},
		{[]string{"check", he}, ""},
	} {
		r := runProcess(t, nil, c.args...)
		t.Logf("%s: exit %d, peak RSS %.1f MiB", strings.Join(c.args[:len(c.args)-1], " "), r.code, float64(r.rss)/(1<<20))
		if r.code != 0 || !strings.Contains(r.stdout, c.out) {
			t.Errorf("%v: exit %d\n%s%s", c.args, r.code, r.stdout, r.stderr)
		}
		if r.rss == 0 || r.rss > rssBound {
			t.Errorf("%v: peak RSS %.1f MiB, bound %d MiB", c.args, float64(r.rss)/(1<<20), rssBound>>20)
		}
	}
}
