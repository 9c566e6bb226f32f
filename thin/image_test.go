package thin_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pierrec/lz4/v4"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/pack"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

func needLZ4(t *testing.T) string {
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

// poolImage writes a small pool's image to a file in dir and returns its
// path and bytes.
func poolImage(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	const size = 4 << 20
	dev := memdev.New(size)
	stalePool(t, dev, size, 2, 3000)
	path := filepath.Join(dir, "pool.img")
	if err := os.WriteFile(path, dev.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, dev.Bytes()
}

// LZ4 images as the lz4 tool writes them (independent and linked blocks,
// block checksums, the content size, two frames, a skippable frame) read
// back byte for byte; cut at any point, OpenImage accepts exactly what
// "lz4 -t" accepts, and a cut is ErrLZ4 (a frame cut after its first
// block was taken for a whole, shorter image).
func TestLZ4AsTheTool(t *testing.T) {
	tool := needLZ4(t)
	dir := t.TempDir()
	img, raw := poolImage(t, dir)
	compress := func(name string, args ...string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command(tool, append(append([]string{"-q", "-f"}, args...), img, out)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("lz4 %v: %v %s", args, err, b)
		}
		return out
	}
	frames := map[string]string{
		"default":  compress("d.lz4"),
		"linked":   compress("l.lz4", "-BD", "-B4"),
		"checksum": compress("c.lz4", "-BX", "-B4"),
		"size":     compress("s.lz4", "--content-size", "-B5"),
	}
	d, _ := os.ReadFile(frames["default"])
	skippable := binary.LittleEndian.AppendUint32(nil, 0x184D2A53)
	skippable = binary.LittleEndian.AppendUint32(skippable, 5)
	skippable = append(skippable, "hello"...)
	for name, b := range map[string][]byte{"two": append(append([]byte(nil), d...), d...), "skippable": append(append([]byte(nil), skippable...), d...)} {
		p := filepath.Join(dir, name+".lz4")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		frames[name] = p
	}
	for name, path := range frames {
		im, err := thin.OpenImage(path, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := raw
		if name == "two" {
			want = append(append([]byte(nil), raw...), raw...)
		}
		got := make([]byte, im.Size())
		if _, err := im.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: the image read back differs from the original (%v)", name, err)
		}
		im.Close()

		whole, _ := os.ReadFile(path)
		cut := filepath.Join(dir, "cut.lz4")
		step := max(1, len(whole)/25)
		for n := 4; n < len(whole); n += step {
			for _, at := range []int{n, min(n+1, len(whole)-1)} {
				if err := os.WriteFile(cut, whole[:at], 0o644); err != nil {
					t.Fatal(err)
				}
				toolOK := exec.Command(tool, "-t", "-q", cut).Run() == nil
				im, err := thin.OpenImage(cut, nil)
				if err == nil {
					im.Close()
				}
				if toolOK != (err == nil) {
					t.Fatalf("%s cut to %d of %d bytes: lz4 -t accepts it: %v; OpenImage: %v", name, at, len(whole), toolOK, err)
				}
				if err != nil && !toolOK && !errors.Is(err, thin.ErrLZ4) {
					t.Fatalf("%s cut to %d bytes: %v, want ErrLZ4", name, at, err)
				}
			}
		}
	}
	// The frame header alone (the "device has 0 blocks").
	hdr := filepath.Join(dir, "hdr.lz4")
	os.WriteFile(hdr, d[:7], 0o644)
	if _, err := thin.OpenImage(hdr, nil); !errors.Is(err, thin.ErrLZ4) || errors.Is(err, transaction.ErrOutOfRange) {
		t.Fatalf("a header-only frame: %v, want ErrLZ4", err)
	}
	if _, err := thin.Open(hdr, nil); !errors.Is(err, thin.ErrLZ4) {
		t.Fatalf("Open of a header-only frame: %v, want ErrLZ4", err)
	}
}

// zeroFrame writes an LZ4 frame of blocks 4 MiB blocks (n of them), the
// first being first (4 KiB, then zeros) and the rest all zeros, built by
// repeating one compressed block, so it costs nothing to make.
func zeroFrame(t *testing.T, path string, first []byte, n int) {
	t.Helper()
	block := func(data []byte) []byte {
		var b bytes.Buffer
		zw := lz4.NewWriter(&b)
		if err := zw.Apply(lz4.BlockSizeOption(lz4.Block4Mb), lz4.ChecksumOption(false), lz4.ConcurrencyOption(1)); err != nil {
			t.Fatal(err)
		}
		zw.Write(data)
		zw.Close()
		return b.Bytes()
	}
	zeros := make([]byte, 4<<20)
	z := block(zeros)
	// z is magic(4) FLG BD HC, one block, end mark(4).
	head, zblock := z[:7], z[7:len(z)-4]
	firstBlock := make([]byte, 4<<20)
	copy(firstBlock, first)
	f := block(firstBlock)
	var out bytes.Buffer
	out.Write(head)
	out.Write(f[7 : len(f)-4])
	for range n - 1 {
		out.Write(zblock)
	}
	out.Write([]byte{0, 0, 0, 0})
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// The 1.5 GiB of zeros in a 6 MB frame: Open refuses it at block
// 0 (all zeros) without decompressing the rest; OpenImage with Salvage
// (a repair's reading) decompresses it whole in memory that follows what
// it holds (one block), not its size; and a frame of more than any
// metadata device holds is refused.
func TestLZ4Bounded(t *testing.T) {
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero.lz4")
	zeroFrame(t, zero, nil, 384) // 1.5 GiB
	var err error
	if n := allocated(func() { _, err = thin.Open(zero, nil) }); n > 32<<20 {
		t.Fatalf("Open of 1.5 GiB of zeros allocated %d bytes", n)
	}
	if !errors.Is(err, superblock.ErrUnformatted) {
		t.Fatalf("Open of zeros: %v, want ErrUnformatted", err)
	}

	// A pool's superblock, then zeros: 256 MiB read whole.
	_, raw := poolImage(t, dir)
	salvage := filepath.Join(dir, "salvage.lz4")
	zeroFrame(t, salvage, raw[:4096], 64)
	var im *thin.Image
	if n := allocated(func() { im, err = thin.OpenImage(salvage, &thin.OpenOptions{Salvage: true}) }); n > 64<<20 {
		t.Fatalf("decompressing 256 MiB, one block of it not zero, allocated %d bytes", n)
	}
	if err != nil {
		t.Fatal(err)
	}
	if im.Size() != 256<<20 {
		t.Fatalf("size %d", im.Size())
	}
	got := make([]byte, 8192)
	if _, err := im.ReadAt(got, 0); err != nil || !bytes.Equal(got[:4096], raw[:4096]) || !bytes.Equal(got[4096:], make([]byte, 4096)) {
		t.Fatalf("the image reads back wrong: %v", err)
	}
	im.Close()

	// The bound, lowered from 16 GiB to 64 MiB for the test.
	defer thin.SetMaxImageSize(64 << 20)()
	for _, c := range []struct {
		blocks int
		ok     bool
	}{{16, true}, {17, false}} {
		zeroFrame(t, salvage, raw[:4096], c.blocks)
		im, err = thin.OpenImage(salvage, &thin.OpenOptions{Salvage: true})
		if c.ok != (err == nil) || !c.ok && !errors.Is(err, thin.ErrLZ4) {
			t.Fatalf("%d MiB under a bound of 64 MiB: %v", c.blocks*4, err)
		}
		if err == nil {
			im.Close()
		}
	}
}

// A pack header claims a device of 1 GiB (or 4 PiB) and holds no block:
// opening it allocates nothing like that (it allocated the whole device
// up to 1 GiB), and the image reads as zeros of that size.
func TestPackHeaderBounded(t *testing.T) {
	for _, nr := range []uint64{1 << 18, 1 << 40} {
		path := filepath.Join(t.TempDir(), "hostile.pack")
		h := binary.LittleEndian.AppendUint64(nil, pack.Magic)
		h = binary.LittleEndian.AppendUint64(h, pack.Version)
		h = binary.LittleEndian.AppendUint64(h, 4096)
		h = binary.LittleEndian.AppendUint64(h, nr)
		if err := os.WriteFile(path, h, 0o644); err != nil {
			t.Fatal(err)
		}
		var im *thin.Image
		var err error
		if n := allocated(func() { im, err = thin.OpenImage(path, nil) }); n > 16<<20 {
			t.Fatalf("a header of %d blocks allocated %d bytes", nr, n)
		}
		if err != nil {
			t.Fatal(err)
		}
		if im.Size() != int64(nr)*4096 {
			t.Fatalf("size %d", im.Size())
		}
		b := []byte{1, 2, 3}
		if _, err := im.ReadAt(b, im.Size()-3); err != nil || !bytes.Equal(b, []byte{0, 0, 0}) {
			t.Fatalf("read at the end: %v %v", b, err)
		}
		im.Close()
		if _, err := thin.Open(path, nil); !errors.Is(err, superblock.ErrUnformatted) {
			t.Fatalf("Open: %v, want ErrUnformatted", err)
		}
	}
}
