package pack_test

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/pack"
	"github.com/thinmeta/thinmeta/transaction"
)

const bs = transaction.BlockSize

// memImage is an in-memory device: a WriterAt that Unpack may size with
// Truncate, bounded so that a bad header cannot exhaust memory.
type memImage struct {
	mu  sync.Mutex
	b   []byte
	max int64
}

func (m *memImage) Truncate(size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if size > m.max {
		return fmt.Errorf("image of %d bytes is over the test's limit", size)
	}
	m.b = make([]byte, size)
	return nil
}

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, fmt.Errorf("write at %d beyond the image", off)
	}
	return copy(m.b[off:], p), nil
}

func unpackBytes(t testing.TB, file []byte) ([]byte, error) {
	t.Helper()
	m := &memImage{max: 256 << 20}
	_, err := pack.Unpack(bytes.NewReader(file), m)
	return m.b, err
}

func packBytes(t testing.TB, img []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := pack.Pack(bytes.NewReader(img), int64(len(img)), &out); err != nil {
		t.Fatalf("pack: %v", err)
	}
	return out.Bytes()
}

// checkRoundTrip packs img, unpacks the result and checks that every block
// with a valid checksum came back bit-identical and every other block as
// zeros (a partial last block is dropped).
func checkRoundTrip(t testing.TB, img []byte) []byte {
	t.Helper()
	p := packBytes(t, img)
	h, err := pack.ReadHeader(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(len(img) / bs); h.NrBlocks != want {
		t.Fatalf("header says %d blocks, want %d", h.NrBlocks, want)
	}
	got, err := unpackBytes(t, p)
	if err != nil {
		t.Fatalf("unpack: %v", err)
	}
	if len(got) != len(img)/bs*bs {
		t.Fatalf("unpacked %d bytes from %d", len(got), len(img))
	}
	zero := make([]byte, bs)
	for b := range len(got) / bs {
		want := img[b*bs : (b+1)*bs]
		if _, ok := transaction.SaltOf(want); !ok {
			want = zero
		}
		if !bytes.Equal(got[b*bs:(b+1)*bs], want) {
			t.Fatalf("block %d differs after the round trip", b)
		}
	}
	return p
}

// Every fixture was packed by the real thin_metadata_pack; that tool is
// the oracle for our unpacker. The unpacked image of a healthy fixture
// must pass thin_check 0.9.0, and every record must decode to a block with
// a valid checksum.
func TestUnpackFixtures(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		name := tptest.Name(f)
		t.Run(name, func(t *testing.T) {
			file, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			img, err := unpackBytes(t, file)
			if err != nil {
				t.Fatalf("unpack: %v", err)
			}
			recs, err := pack.Records(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 {
				t.Fatal("no records")
			}
			for _, r := range recs {
				if !bytes.Equal(img[r.Block*bs:(r.Block+1)*bs], r.Data) {
					t.Errorf("block %d not where its record says", r.Block)
				}
			}
			path := tptest.Unpack(t, f)
			disk, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(disk, img) {
				t.Error("unpacking to a file and to memory differ")
			}
			if tptest.DamagedFixtures[name] {
				return
			}
			tptest.CheckClean(t, path)
		})
	}
}

// The real tool's encoding of each block is exactly what our encoder
// produces for it: an independent check of the writer, block by block.
func TestEncoderMatchesThinMetadataPack(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		file, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := pack.Records(file)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range recs {
			salt, ok := transaction.SaltOf(r.Data)
			if !ok {
				t.Fatalf("%s: block %d has no valid checksum", tptest.Name(f), r.Block)
			}
			if got := pack.EncodeBlock(r.Data, salt); !bytes.Equal(got, r.Instructions) {
				t.Errorf("%s: block %d (salt %d): encoded as\n%x\nthin_metadata_pack wrote\n%x",
					tptest.Name(f), r.Block, salt, got, r.Instructions)
			}
		}
	}
}

// fixture -> unpack -> pack -> unpack gives back the identical image, and
// our pack holds every block the real tool packed.
func TestFixtureRoundTrip(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		t.Run(tptest.Name(f), func(t *testing.T) {
			file, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			img, err := unpackBytes(t, file)
			if err != nil {
				t.Fatal(err)
			}
			p := checkRoundTrip(t, img)
			again, err := unpackBytes(t, p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, img) {
				t.Fatal("re-packed image differs")
			}
			theirs, _ := pack.Records(file)
			ours, err := pack.Records(p)
			if err != nil {
				t.Fatal(err)
			}
			have := map[uint64]bool{}
			for _, r := range ours {
				have[r.Block] = true
			}
			for _, r := range theirs {
				if !have[r.Block] {
					t.Errorf("block %d packed by thin_metadata_pack is missing from ours", r.Block)
				}
			}
			// Pack is deterministic.
			if len(img) <= 1<<22 && !bytes.Equal(p, packBytes(t, img)) {
				t.Error("packing twice gives different files")
			}
		})
	}
}

// sealedBlock makes a block of the given kind with random content and a
// valid checksum.
func sealedBlock(rng *rand.Rand, loc uint64, salt uint32) []byte {
	blk := make([]byte, bs)
	le := binary.LittleEndian
	switch salt {
	case transaction.SaltNode:
		maxEntries := []uint32{126, 252, 168, 0, 300, 510, 1 << 20}[rng.IntN(7)]
		le.PutUint32(blk[4:], uint32(rng.IntN(3)+1))
		le.PutUint32(blk[16:], uint32(rng.IntN(int(min(maxEntries, 400))+1)))
		le.PutUint32(blk[20:], maxEntries)
		le.PutUint32(blk[24:], []uint32{8, 16, 24, 4}[rng.IntN(4)])
		k, v := rng.Uint64N(1<<20), rng.Uint64()
		for i := 32; i+8 <= bs; i += 8 {
			switch rng.IntN(10) {
			case 0:
				k = rng.Uint64()
			case 1:
				break
			default:
				k += uint64(rng.IntN(3))
			}
			if i > bs/2 {
				k = v + uint64(i)
			}
			le.PutUint64(blk[i:], k)
		}
	default:
		for i := 16; i < bs; i++ {
			if rng.IntN(4) == 0 {
				blk[i] = byte(rng.Uint32())
			}
		}
	}
	transaction.Seal(blk, loc, salt)
	return blk
}

func randomImage(rng *rand.Rand, nrBlocks int) []byte {
	img := make([]byte, nrBlocks*bs+rng.IntN(2)*rng.IntN(bs))
	salts := []uint32{transaction.SaltSuperblock, transaction.SaltNode, transaction.SaltNode,
		transaction.SaltBitmap, transaction.SaltIndex, transaction.SaltArrayBlock,
		transaction.SaltCacheSuperblock, transaction.SaltEraSuperblock}
	for b := range nrBlocks {
		blk := img[b*bs : (b+1)*bs]
		switch rng.IntN(4) {
		case 0: // zeros
		case 1: // garbage, or a block whose checksum is one bit off
			for i := 0; i < bs; i += 8 {
				binary.LittleEndian.PutUint64(blk[i:], rng.Uint64())
			}
			if rng.IntN(2) == 0 {
				copy(blk, sealedBlock(rng, uint64(b), salts[rng.IntN(len(salts))]))
				blk[rng.IntN(bs)] ^= 1 << rng.IntN(8)
			}
		default:
			copy(blk, sealedBlock(rng, uint64(b), salts[rng.IntN(len(salts))]))
		}
	}
	return img
}

func TestRandomImageRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 2, 17, 1023, 1024, 1025, 4097}
	if testing.Short() {
		sizes = sizes[:6]
	}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			checkRoundTrip(t, randomImage(rng, n))
		})
	}
}

func TestPackEmpty(t *testing.T) {
	for _, size := range []int{0, 100, bs - 1} {
		p := packBytes(t, make([]byte, size))
		if len(p) != pack.HeaderSize {
			t.Errorf("size %d: %d bytes, want just the header", size, len(p))
		}
	}
	if err := pack.Pack(bytes.NewReader(nil), -1, io.Discard); err == nil {
		t.Error("negative size accepted")
	}
	// A device shorter than its stated size.
	if err := pack.Pack(bytes.NewReader(make([]byte, bs)), 2*bs, io.Discard); err == nil {
		t.Error("short read not reported")
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n <= 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(p), nil
}

func TestPackWriteError(t *testing.T) {
	// Two segments of 4096 blocks, mostly empty to keep the test quick.
	img := make([]byte, 4200*bs)
	rng := rand.New(rand.NewPCG(3, 4))
	for b := 0; b < 4200; b += 97 {
		copy(img[b*bs:], sealedBlock(rng, uint64(b), transaction.SaltNode))
	}
	for n := range 3 {
		err := pack.Pack(bytes.NewReader(img), int64(len(img)), &failWriter{n})
		if err == nil || err.Error() != "disk full" {
			t.Errorf("failing after %d writes: %v", n, err)
		}
	}
}

func header(magic, version, blockSize, nrBlocks uint64) []byte {
	var b []byte
	for _, v := range []uint64{magic, version, blockSize, nrBlocks} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

func chunk(data []byte) []byte {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(data)
	zw.Close()
	return append(binary.LittleEndian.AppendUint64(nil, uint64(z.Len())), z.Bytes()...)
}

func record(b uint64, instr []byte) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, b), instr...)
}

// literalBlock is a record body storing blk as one literal.
func literalBlock(blk []byte) []byte {
	return append([]byte{0xA2, byte(len(blk)), byte(len(blk) >> 8)}, blk...)
}

func TestUnpackBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	good := sealedBlock(rng, 1, transaction.SaltBitmap)
	hdr := header(pack.Magic, pack.Version, bs, 4)
	bad := slices.Clone(good)
	bad[100] ^= 1
	tests := []struct {
		name string
		file []byte
	}{
		{"empty", nil},
		{"short header", hdr[:31]},
		{"wrong magic", header(pack.Magic+1, 3, bs, 4)},
		{"version 2", header(pack.Magic, 2, bs, 4)},
		{"version 4", header(pack.Magic, 4, bs, 4)},
		{"block size 512", header(pack.Magic, 3, 512, 4)},
		{"block size 8192", header(pack.Magic, 3, 8192, 4)},
		{"absurd size", header(pack.Magic, 3, bs, 1<<62)},
		{"truncated chunk length", append(slices.Clone(hdr), 1, 2, 3)},
		{"truncated chunk", append(slices.Clone(hdr), chunk(record(1, literalBlock(good)))[:20]...)},
		{"huge chunk length", append(slices.Clone(hdr), binary.LittleEndian.AppendUint64(nil, 1<<40)...)},
		{"garbage chunk", append(slices.Clone(hdr), append(binary.LittleEndian.AppendUint64(nil, 5), 1, 2, 3, 4, 5)...)},
		{"zlib checksum wrong", func() []byte {
			c := chunk(record(1, literalBlock(good)))
			c[len(c)-1] ^= 0xFF
			return append(slices.Clone(hdr), c...)
		}()},
		{"garbage records", append(slices.Clone(hdr), chunk(bytes.Repeat([]byte{0xC7}, 100))...)},
		{"block past nr_blocks", append(slices.Clone(hdr), chunk(record(4, literalBlock(good)))...)},
		{"block 2^64-1", append(slices.Clone(hdr), chunk(record(1<<64-1, literalBlock(good)))...)},
		{"block expands past 4096 bytes", append(slices.Clone(hdr), chunk(record(1, append(literalBlock(good), 0)[:4096+2]))...)},
		{"block expands past 4096 bytes by a run", append(slices.Clone(hdr), chunk(record(1, []byte{0x01, 0, 0x6F, 0xFF}))...)},
		{"block short", append(slices.Clone(hdr), chunk(record(1, literalBlock(good)[:4000]))...)},
		{"block without checksum", append(slices.Clone(hdr), chunk(record(1, literalBlock(bad)))...)},
		{"zero block", append(slices.Clone(hdr), chunk(record(1, []byte{0x6F, 0xFF}))...)},
		{"second record bad", append(slices.Clone(hdr), chunk(append(record(1, literalBlock(good)), record(2, []byte{0xF0})...))...)},
		{"second chunk bad", append(append(slices.Clone(hdr), chunk(record(1, literalBlock(good)))...), 9, 0, 0, 0, 0, 0, 0, 0, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := unpackBytes(t, tt.file)
			if !errors.Is(err, pack.ErrFormat) {
				t.Errorf("got %v, want an error wrapping ErrFormat", err)
			}
		})
	}
}

// Things the format allows that our writer never produces.
func TestUnpackOddButValid(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	b1 := sealedBlock(rng, 1, transaction.SaltNode)
	b3 := sealedBlock(rng, 3, transaction.SaltSuperblock)
	file := header(pack.Magic, pack.Version, bs, 5)
	file = append(file, chunk(nil)...)                                          // a chunk without records
	file = append(file, 0, 0, 0, 0, 0, 0, 0, 0)                                 // an empty chunk
	file = append(file, chunk(append(record(3, literalBlock(b3)), 1, 2, 3))...) // trailing bytes < 8
	file = append(file, chunk(record(1, literalBlock(b1)))...)
	img, err := unpackBytes(t, file)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 5*bs)
	copy(want[bs:], b1)
	copy(want[3*bs:], b3)
	if !bytes.Equal(img, want) {
		t.Error("wrong image")
	}
	// No chunks at all: a zero image of the stated size.
	img, err = unpackBytes(t, header(pack.Magic, pack.Version, bs, 3))
	if err != nil || !bytes.Equal(img, make([]byte, 3*bs)) {
		t.Errorf("header only: %v", err)
	}
}

// Every prefix of a pack file either unpacks (when it ends at a chunk
// boundary) or fails with ErrFormat.
func TestUnpackTruncated(t *testing.T) {
	img := randomImage(rand.New(rand.NewPCG(9, 10)), 1100) // two chunks
	p := packBytes(t, img)
	boundaries := map[int]bool{pack.HeaderSize: true}
	for off := pack.HeaderSize; off < len(p); {
		off += 8 + int(binary.LittleEndian.Uint64(p[off:]))
		boundaries[off] = true
	}
	step := max(1, len(p)/300)
	for n := 0; n < len(p); n += step {
		_, err := unpackBytes(t, p[:n])
		if boundaries[n] {
			if err != nil {
				t.Errorf("prefix of %d bytes (a chunk boundary): %v", n, err)
			}
		} else if !errors.Is(err, pack.ErrFormat) {
			t.Errorf("prefix of %d bytes: %v", n, err)
		}
	}
}

type errWriterAt struct{}

func (errWriterAt) WriteAt(p []byte, off int64) (int, error) { return 0, errors.New("disk on fire") }

func TestUnpackWriteError(t *testing.T) {
	p := packBytes(t, randomImage(rand.New(rand.NewPCG(11, 12)), 20))
	_, err := pack.Unpack(bytes.NewReader(p), errWriterAt{})
	if err == nil || errors.Is(err, pack.ErrFormat) {
		t.Errorf("got %v, want the writer's error", err)
	}
}

func TestIsPacked(t *testing.T) {
	if !pack.IsPacked(header(pack.Magic, 3, bs, 0)) {
		t.Error("header not recognised")
	}
	if pack.IsPacked([]byte{0x77, 0xef, 0x09}) || pack.IsPacked(make([]byte, 4096)) {
		t.Error("non-pack recognised")
	}
	if !pack.IsPacked([]byte{0x77, 0xef, 0x09, 0x63, 0xaa, 0xa0, 0x37, 0xa5}) {
		t.Error("the magic bytes of FORMAT.md §8.4 not recognised")
	}
}

// Unpacking into a file sizes it; a file that held more is cut down.
func TestUnpackTruncatesFile(t *testing.T) {
	p := packBytes(t, randomImage(rand.New(rand.NewPCG(13, 14)), 10))
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xAB}, 20*bs), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := pack.Unpack(bytes.NewReader(p), f); err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if st.Size() != 10*bs {
		t.Errorf("file is %d bytes", st.Size())
	}
}
