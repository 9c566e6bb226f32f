package pack

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/thinmeta/thinmeta/transaction"
)

// FuzzDecodeBlock runs the VM on arbitrary instruction streams. It must
// never panic; it fails only with ErrFormat; a success is exactly one
// block; and a decoded block with a valid checksum must survive our own
// encoder (encode → decode gives it back). Seeds: testdata/fuzz/
// FuzzDecodeBlock (block encodings taken from the shared fixtures, as
// thin_metadata_pack wrote them) and the ones added below.
func FuzzDecodeBlock(f *testing.F) {
	f.Add([]byte{0x01, 1, 0x61, 0xFF})
	f.Add([]byte{0xB0, 2, 0x01, 1, 0x11, 0x01, 5, 0x51, 0x6F, 0xFD})
	f.Add(append([]byte{0xA2, 0x00, 0x10}, make([]byte, 4096)...))
	f.Add([]byte{0x73, 0x72, 0x11, 0x93, 1, 2, 3})
	f.Fuzz(func(t *testing.T, prog []byte) {
		out, err := decodeBlock(bytes.NewReader(prog), nil)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if len(out) != bs {
			t.Fatalf("decoded %d bytes", len(out))
		}
		salt, ok := transaction.SaltOf(out)
		if !ok {
			return
		}
		var e encoder
		encodeBlock(&e, out, salt)
		again, err := decodeBlock(bytes.NewReader(e.out), nil)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("re-encoded block does not decode back: %v", err)
		}
	})
}

// FuzzEncodeBlock seals arbitrary bytes as a block of some kind (a B-tree
// node most often, since only nodes get a structured encoding) and checks
// that the encoding decodes back to the identical block, with nothing left
// over.
func FuzzEncodeBlock(f *testing.F) {
	node := make([]byte, 64)
	copy(node[4:], []byte{2, 0, 0, 0})
	copy(node[16:], []byte{3, 0, 0, 0, 252, 0, 0, 0, 8, 0, 0, 0})
	f.Add(node, uint8(0))
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 0}, uint8(0))
	f.Add([]byte{1, 2, 3}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		blk := make([]byte, bs)
		copy(blk, data)
		salts := []uint32{transaction.SaltNode, transaction.SaltSuperblock, transaction.SaltBitmap, transaction.SaltIndex}
		salt := salts[int(kind)%len(salts)]
		transaction.Seal(blk, transaction.StoredBlocknr(blk), salt)
		var e encoder
		encodeBlock(&e, blk, salt)
		in := bytes.NewReader(e.out)
		out, err := decodeBlock(in, nil)
		if err != nil {
			t.Fatalf("decoding our own encoding: %v", err)
		}
		if !bytes.Equal(out, blk) {
			t.Fatal("block does not round-trip")
		}
		if in.Len() != 0 {
			t.Fatalf("%d bytes of the encoding left over", in.Len())
		}
	})
}

// FuzzEncodeU64s encodes arbitrary runs of u64s (the input read as
// little-endian words) and decodes them back.
func FuzzEncodeU64s(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}, false)
	f.Add(bytes.Repeat([]byte{0xFF}, 64), true)
	f.Fuzz(func(t *testing.T, data []byte, shifted bool) {
		ns := getU64s(data)
		if len(ns) > maxCount {
			ns = ns[:maxCount]
		}
		var e encoder
		want := ns
		if shifted {
			e.shifted(ns)
			want = make([]uint64, len(ns))
			for i, v := range ns {
				want[i] = v>>shiftBits<<shiftBits | v&(1<<shiftBits-1)
			}
		} else {
			e.u64s(ns)
		}
		e.literal([]byte{0xAB}) // something after the run
		in := bytes.NewReader(e.out)
		m := vm{in: in}
		out, err := m.run(nil, 8*len(ns)+1, 8*len(ns)+1)
		if err != nil {
			t.Fatalf("decoding: %v", err)
		}
		got := getU64s(out[:8*len(ns)])
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("value %d: %#x, want %#x", i, got[i], want[i])
			}
		}
		if out[len(out)-1] != 0xAB || in.Len() != 0 {
			t.Fatal("run did not end where it should")
		}
	})
}

var updateSeeds = flag.Bool("update-seeds", false, "regenerate testdata/fuzz from the shared fixtures")

// TestFuzzSeeds checks that the committed seeds of FuzzDecodeBlock and
// FuzzEncodeBlock exist and, with -update-seeds, first regenerates them:
// the encodings thin_metadata_pack wrote for blocks of each kind and node
// shape in the shared fixtures, and those blocks themselves.
func TestFuzzSeeds(t *testing.T) {
	if *updateSeeds {
		_, file, _, _ := runtime.Caller(0)
		paths, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "..", "..", "shared", "fixtures", "*.pack"))
		if len(paths) == 0 {
			t.Fatal("the shared fixtures are needed to make the seeds")
		}
		decode := filepath.Join("testdata", "fuzz", "FuzzDecodeBlock")
		encode := filepath.Join("testdata", "fuzz", "FuzzEncodeBlock")
		for _, d := range []string{decode, encode} {
			os.RemoveAll(d)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[string]bool{}
		for _, p := range paths {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := Records(raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				salt, _ := transaction.SaltOf(r.Data)
				shape := fmt.Sprintf("salt%d", salt)
				if salt == transaction.SaltNode {
					s := summariseNode(r.Data)
					shape = fmt.Sprintf("node-flags%d-vs%d-max%d", s.flags, s.valueSize, s.maxEntries)
				}
				if seen[shape] || salt == transaction.SaltBitmap || salt == transaction.SaltIndex {
					continue // bitmaps and index blocks are plain literals, like the superblock
				}
				seen[shape] = true
				kind := map[uint32]uint8{transaction.SaltNode: 0, transaction.SaltSuperblock: 1,
					transaction.SaltBitmap: 2, transaction.SaltIndex: 3}[salt]
				files := map[string]string{
					filepath.Join(decode, shape): fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", r.Instructions),
					filepath.Join(encode, shape): fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint8(%d)\n", bytes.TrimRight(r.Data, "\x00"), kind),
				}
				for name, content := range files {
					if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	for _, d := range []string{"FuzzDecodeBlock", "FuzzEncodeBlock"} {
		if m, _ := filepath.Glob(filepath.Join("testdata", "fuzz", d, "*")); len(m) == 0 {
			t.Errorf("no committed seeds for %s; run go test ./pack -run TestFuzzSeeds -update-seeds", d)
		}
	}
}
