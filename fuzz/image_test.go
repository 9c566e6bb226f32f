package fuzz

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/pack"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/transaction"
)

const bs = transaction.BlockSize

// The input of FuzzImage is a sparse image, so that the fuzzer works on a
// few kilobytes rather than megabytes of zeros, and so that a mutated
// block still has a valid checksum and reaches the structural checks:
//
//	uvarint       device size in blocks
//	then records: u8 kind, uvarint block number, u16 LE length,
//	              length bytes: the start of the block (the rest is zero)
//
// Neither the size nor the block numbers are bounded but by what an
// io.ReaderAt can address (2^63 bytes): the real format numbers blocks
// with 64 bits, and a device can be far larger than its pool. kind (mod 8)
// 0 stores the block as it is; 1 to 4 seal it for its location with the
// salt of a superblock, B-tree node, bitmap or metadata index; other kinds
// are stored as they are. A later record for the same block replaces an
// earlier one; a truncated record ends the image.
const (
	kindRaw = iota
	kindSuperblock
	kindNode
	kindBitmap
	kindIndex
)

var kindSalts = map[byte]uint32{
	kindSuperblock: transaction.SaltSuperblock,
	kindNode:       transaction.SaltNode,
	kindBitmap:     transaction.SaltBitmap,
	kindIndex:      transaction.SaltIndex,
}

// sparseImage is an in-memory device of size bytes; absent blocks are
// zeros.
type sparseImage struct {
	size   int64
	mu     sync.Mutex // for WriteAt
	blocks map[int64][]byte
}

// maxImageBlocks is the most blocks an io.ReaderAt can address.
const maxImageBlocks = math.MaxInt64 / bs

func parseImage(data []byte) *sparseImage {
	img := &sparseImage{blocks: map[int64][]byte{}}
	nr, n := binary.Uvarint(data)
	if n <= 0 {
		return img
	}
	img.size = int64(min(nr, maxImageBlocks)) * bs
	data = data[n:]
	for len(data) > 0 {
		kind := data[0] % 8
		b, n := binary.Uvarint(data[1:])
		if n <= 0 || len(data) < 1+n+2 {
			break
		}
		data = data[1+n:]
		l := int(binary.LittleEndian.Uint16(data))
		data = data[2:]
		l = min(l, len(data), bs)
		blk := make([]byte, bs)
		copy(blk, data[:l])
		data = data[l:]
		if b > maxImageBlocks {
			continue // no device holds it
		}
		if salt, ok := kindSalts[kind]; ok {
			transaction.Seal(blk, b, salt)
		}
		img.blocks[int64(b)] = blk
	}
	return img
}

func (img *sparseImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= img.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > img.size-off {
		n = int(img.size - off)
	}
	for i := 0; i < n; {
		b, o := (off+int64(i))/bs, int((off+int64(i))%bs)
		k := min(bs-o, n-i)
		if blk, ok := img.blocks[b]; ok {
			copy(p[i:i+k], blk[o:])
		} else {
			clear(p[i : i+k])
		}
		i += k
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// encodeImage turns an image into the sparse format: every block with a
// valid checksum of a dm-thin kind, trailing zeros trimmed.
func encodeImage(img *sparseImage) []byte {
	out := binary.AppendUvarint(nil, uint64(img.size/bs))
	kinds := map[uint32]byte{}
	for k, s := range kindSalts {
		kinds[s] = k
	}
	for _, b := range slices.Sorted(maps.Keys(img.blocks)) {
		blk := img.blocks[b]
		salt, ok := transaction.SaltOf(blk)
		kind, known := kinds[salt]
		if !ok || !known {
			continue
		}
		data := bytes.TrimRight(blk, "\x00")
		out = append(out, kind)
		out = binary.AppendUvarint(out, uint64(b))
		out = binary.LittleEndian.AppendUint16(out, uint16(len(data)))
		out = append(out, data...)
	}
	return out
}

// fixturesDir returns the shared fixtures directory, or "" when it is not
// there (the fuzz targets then run on the committed seeds alone).
func fixturesDir() string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "shared", "fixtures")
	if _, err := os.Stat(dir); err != nil {
		return ""
	}
	return dir
}

// fixturePacks reads every shared fixture, by name.
func fixturePacks(tb testing.TB) map[string][]byte {
	dir := fixturesDir()
	if dir == "" {
		return nil
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.pack"))
	packs := map[string][]byte{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		packs[strings.TrimSuffix(filepath.Base(p), ".pack")] = raw
	}
	return packs
}

// fixtureImages unpacks every shared fixture, by name.
func fixtureImages(tb testing.TB) map[string]*sparseImage {
	imgs := map[string]*sparseImage{}
	for name, raw := range fixturePacks(tb) {
		img, err := unpackSparse(raw)
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		imgs[name] = img
	}
	return imgs
}

// addSeedFiles adds every file of testdata/fuzz/name (at the top of the
// repository) to f's corpus.
func addSeedFiles(f *testing.F, name string) {
	for _, b := range seedFiles(f, name) {
		f.Add(b)
	}
}

// seedFiles reads every file of testdata/fuzz/name (at the top of the
// repository).
func seedFiles(tb testing.TB, name string) [][]byte {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", "fuzz", name, "*"))
	if len(paths) == 0 {
		tb.Fatalf("no seeds in testdata/fuzz/%s", name)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// budget bounds the work one fuzz input may cause: a small image can
// describe a great many mappings (shared subtrees), and the fuzzer must not
// stall on it.
type budget struct{ left int }

var errBudget = errors.New("fuzz budget exhausted")

func (b *budget) spend(n int) error {
	b.left -= n
	if b.left < 0 {
		return errBudget
	}
	return nil
}

// limitWriter fails once more than n bytes have been written.
type limitWriter struct{ n int }

func (w *limitWriter) Write(p []byte) (int, error) {
	w.n -= len(p)
	if w.n < 0 {
		return 0, errBudget
	}
	return len(p), nil
}

// walk is one read-only way of going through a pool. Every walk runs on
// the live view and on the metadata-snapshot view of each fuzz input. To
// fuzz another reader (thin/check, for instance), add it here: it must
// return nil, errBudget, or the error it reports for damage.
type walk struct {
	name string
	run  func(t *testing.T, p *thin.Pool, b *budget) error
}

var walks = []walk{
	{"devices", walkDevices},
	{"mappings", walkMappings},
	{"dump xml", func(t *testing.T, p *thin.Pool, b *budget) error {
		return dump.Dump(context.Background(), &limitWriter{b.left * 64}, p, dump.Options{})
	}},
	{"dump 1.1.0 form", func(t *testing.T, p *thin.Pool, b *budget) error {
		err := dump.Dump(context.Background(), &limitWriter{b.left * 64}, p, dump.Options{Compat: dump.Compat110})
		if errors.Is(err, dump.ErrNoCompatForm) {
			return nil
		}
		return err
	}},
	{"dump human_readable", func(t *testing.T, p *thin.Pool, b *budget) error {
		return dump.Dump(context.Background(), &limitWriter{b.left * 64}, p, dump.Options{Format: dump.HumanReadable, SkipMappings: true})
	}},
	{"data space map", func(t *testing.T, p *thin.Pool, b *budget) error {
		m, err := p.DataSpaceMap()
		if p.IsSnapshot() {
			// A metadata snapshot has no space maps (the kernel wipes
			// them): that is all a snapshot view may answer.
			if !errors.Is(err, thin.ErrNoSpaceMaps) {
				t.Fatalf("snapshot view's DataSpaceMap: %v, want ErrNoSpaceMaps", err)
			}
			return nil
		}
		if err != nil {
			return err
		}
		return walkSpaceMap(t, m, b)
	}},
	{"metadata space map", func(t *testing.T, p *thin.Pool, b *budget) error {
		m, err := p.MetadataSpaceMap()
		if p.IsSnapshot() {
			// A metadata snapshot has no space maps (the kernel wipes
			// them): that is all a snapshot view may answer.
			if !errors.Is(err, thin.ErrNoSpaceMaps) {
				t.Fatalf("snapshot view's MetadataSpaceMap: %v, want ErrNoSpaceMaps", err)
			}
			return nil
		}
		if err != nil {
			return err
		}
		return walkSpaceMap(t, m, b)
	}},
	{"check", func(t *testing.T, p *thin.Pool, b *budget) error {
		// Every finding must carry an error; the verdict must agree with
		// the counts.
		var fatal int
		sum, _ := check.Pool(context.Background(), p, check.Options{}, func(f check.Finding) {
			if f.Err == nil {
				t.Fatalf("finding without an error: %+v", f)
			}
			if f.Severity == check.Fatal {
				fatal++
			}
		})
		if sum.Fatal != fatal {
			t.Fatalf("summary says %d fatal findings, %d were reported", sum.Fatal, fatal)
		}
		return nil
	}},
}

func walkDevices(t *testing.T, p *thin.Pool, b *budget) error {
	var prev *uint64
	for d, err := range p.Devices() {
		if err != nil {
			return err
		}
		if prev != nil && d.ID <= *prev {
			t.Fatalf("devices out of order: %d after %d", d.ID, *prev)
		}
		id := d.ID
		prev = &id
		got, err := p.Device(d.ID)
		if err != nil {
			return err
		}
		if got.ID != d.ID || got.Details != d.Details || !bytes.Equal(got.Blob, d.Blob) {
			t.Fatalf("Device(%d) = %+v, Devices gave %+v", d.ID, got, d)
		}
		if err := b.spend(1); err != nil {
			return err
		}
	}
	return nil
}

func walkMappings(t *testing.T, p *thin.Pool, b *budget) error {
	var prevID *uint64
	for dr, err := range p.DeviceRoots() {
		if err != nil {
			return err
		}
		if prevID != nil && dr.ID <= *prevID {
			t.Fatalf("device roots out of order: %d after %d", dr.ID, *prevID)
		}
		id := dr.ID
		prevID = &id
		if root, err := p.Root(dr.ID); err != nil {
			return err
		} else if root != dr.Root {
			t.Fatalf("Root(%d) = %d, DeviceRoots gave %d", dr.ID, root, dr.Root)
		}
		var ms []thin.Mapping
		for m, err := range p.Mappings(dr.ID, 0, ^uint64(0)) {
			if err != nil {
				return err
			}
			if len(ms) > 0 && m.VBlock <= ms[len(ms)-1].VBlock {
				t.Fatalf("device %d: mappings out of order: %d after %d", dr.ID, m.VBlock, ms[len(ms)-1].VBlock)
			}
			ms = append(ms, m)
			if err := b.spend(1); err != nil {
				return err
			}
		}
		// Runs cover exactly the mappings.
		i := 0
		for r, err := range p.Runs(dr.ID, 0, ^uint64(0)) {
			if err != nil {
				t.Fatalf("device %d: Runs fails where Mappings did not: %v", dr.ID, err)
			}
			if r.Len == 0 {
				t.Fatalf("device %d: empty run", dr.ID)
			}
			for k := range r.Len {
				if i >= len(ms) {
					t.Fatalf("device %d: runs cover more than the %d mappings", dr.ID, len(ms))
				}
				want := ms[i]
				if want.VBlock != r.VBlock+k || want.Block != r.Block+k || want.Time != r.Time {
					t.Fatalf("device %d: run %+v disagrees with mapping %+v", dr.ID, r, want)
				}
				i++
			}
			if err := b.spend(1); err != nil {
				return err
			}
		}
		if i != len(ms) {
			t.Fatalf("device %d: runs cover %d of %d mappings", dr.ID, i, len(ms))
		}
		// Lookups agree with the walk, for a few of them.
		for j := 0; j < len(ms); j += 1 + len(ms)/8 {
			got, ok, err := p.Lookup(dr.ID, ms[j].VBlock)
			if err != nil {
				t.Fatalf("device %d: Lookup(%d) fails where the walk did not: %v", dr.ID, ms[j].VBlock, err)
			}
			if !ok || got != ms[j] {
				t.Fatalf("device %d: Lookup(%d) = %+v %v, walk gave %+v", dr.ID, ms[j].VBlock, got, ok, ms[j])
			}
			if err := b.spend(8); err != nil {
				return err
			}
		}
		// A range walk yields the matching part of the full walk.
		if len(ms) > 2 {
			lo, hi := ms[1].VBlock, ms[len(ms)-1].VBlock
			n := 0
			for m, err := range p.Mappings(dr.ID, lo, hi) {
				if err != nil {
					t.Fatalf("device %d: range walk fails: %v", dr.ID, err)
				}
				if m != ms[1+n] {
					t.Fatalf("device %d: range walk gives %+v, full walk %+v", dr.ID, m, ms[1+n])
				}
				n++
			}
			if n != len(ms)-2 {
				t.Fatalf("device %d: range [%d, %d) gave %d mappings, want %d", dr.ID, lo, hi, n, len(ms)-2)
			}
		}
	}
	return nil
}

func walkSpaceMap(t *testing.T, m *spacemap.Map, b *budget) error {
	var prev *uint64
	checked := 0
	for bc, err := range m.Counts() {
		if err != nil {
			return err
		}
		if bc.Count == 0 || bc.Block >= m.NrBlocks() {
			t.Fatalf("Counts yielded %+v (space map of %d blocks)", bc, m.NrBlocks())
		}
		if prev != nil && bc.Block <= *prev {
			t.Fatalf("Counts out of order: %d after %d", bc.Block, *prev)
		}
		blk := bc.Block
		prev = &blk
		if checked < 16 {
			checked++
			c, err := m.Count(bc.Block)
			if err != nil {
				t.Fatalf("Count(%d) fails where Counts did not: %v", bc.Block, err)
			}
			if c != bc.Count {
				t.Fatalf("Count(%d) = %d, Counts gave %d", bc.Block, c, bc.Count)
			}
		}
		if err := b.spend(1); err != nil {
			return err
		}
	}
	if _, err := m.Count(m.NrBlocks()); !errors.Is(err, spacemap.ErrBlockRange) {
		t.Fatalf("Count past the end: %v", err)
	}
	return m.MetadataBlocks(func(uint64) error { return b.spend(1) })
}

// expectedError reports whether err is one a reader may return for a
// damaged or unusual image: a CorruptError naming the block, or one of the
// documented sentinels.
func expectedError(err error) bool {
	var ce *transaction.CorruptError
	var ioe *transaction.IOError
	switch {
	case errors.As(err, &ce), errors.As(err, &ioe):
		return true
	}
	for _, s := range []error{errBudget, thin.ErrNoDevice, thin.ErrDetailsMismatch,
		superblock.ErrNoMetadataSnapshot, superblock.ErrUnformatted, superblock.ErrIncompatible,
		btree.ErrDepth} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// views returns the live view and, if there is one, the metadata-snapshot
// view of a pool.
func views(t *testing.T, p *thin.Pool) []*thin.Pool {
	vs := []*thin.Pool{p}
	if p.HasMetadataSnapshot() {
		snap, err := p.MetadataSnapshot()
		if err != nil {
			if !expectedError(err) {
				t.Fatalf("MetadataSnapshot: unexpected error %T %v", err, err)
			}
			return vs
		}
		if !snap.IsSnapshot() {
			t.Fatal("snapshot view does not say so")
		}
		vs = append(vs, snap)
	}
	return vs
}

// FuzzImage opens an arbitrary small image (in the sparse format above)
// with thin.NewPool and runs every walk on it. Nothing may panic, every
// failure must be a typed error (expectedError), and the different ways of
// reading the same data must agree (Devices/Device, DeviceRoots/Root,
// Mappings/Runs/Lookup/range walks, Counts/Count).
func FuzzImage(f *testing.F) {
	addSeedFiles(f, "FuzzImage")
	// The fixtures too large to commit are too large to fuzz well (and to
	// minimise): TestImageSeeds covers them.
	for _, img := range fixtureImages(f) {
		if enc := encodeImage(img); len(enc) <= maxSeedSize {
			f.Add(enc)
			// The same pool at the start of the largest device there is
			// (a sparse file grown far beyond it).
			huge := &sparseImage{size: maxImageBlocks * bs, blocks: img.blocks}
			f.Add(encodeImage(huge))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img := parseImage(data)
		p, err := thin.NewPool(img, img.size)
		if err != nil {
			if !expectedError(err) {
				t.Fatalf("NewPool: unexpected error %T %v", err, err)
			}
			return
		}
		for _, v := range views(t, p) {
			for _, w := range walks {
				b := &budget{left: 100_000}
				if err := w.run(t, v, b); err != nil && !expectedError(err) {
					t.Fatalf("%s (snapshot view %v): unexpected error %T %v", w.name, v.IsSnapshot(), err, err)
				}
			}
		}
	})
}

// TestImageSeeds runs every walk on every fixture, healthy or not, so that
// the walks themselves are known to work on real metadata before fuzzing.
func TestImageSeeds(t *testing.T) {
	imgs := fixtureImages(t)
	if len(imgs) == 0 {
		t.Skip("no shared fixtures")
	}
	for name, img := range imgs {
		t.Run(name, func(t *testing.T) {
			// The sparse format round-trips the checksummed blocks.
			sp := parseImage(encodeImage(img))
			if sp.size != img.size || len(sp.blocks) != len(img.blocks) {
				t.Fatalf("%d blocks of %d bytes, want %d of %d", len(sp.blocks), sp.size, len(img.blocks), img.size)
			}
			for b, blk := range sp.blocks {
				if !bytes.Equal(blk, img.blocks[b]) {
					t.Fatalf("block %d differs in the sparse image", b)
				}
			}
			p, err := thin.NewPool(sp, sp.size)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range views(t, p) {
				for _, w := range walks {
					b := &budget{left: 1 << 30}
					err := w.run(t, v, b)
					if err != nil && !expectedError(err) {
						t.Fatalf("%s: %v", w.name, err)
					}
					t.Logf("%s (snapshot %v): %v", w.name, v.IsSnapshot(), err)
				}
			}
		})
	}
}

// WriteAt stores whole blocks (as pack.Unpack writes them), so that a
// sparseImage can be the output of an unpack: absent blocks stay zero
// without any allocation, whatever size the pack header claims.
func (img *sparseImage) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off%bs != 0 || len(p)%bs != 0 || off+int64(len(p)) > img.size {
		return 0, fmt.Errorf("write of %d bytes at %d: not whole blocks within the %d-byte image", len(p), off, img.size)
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	for i := 0; i < len(p); i += bs {
		img.blocks[off/bs+int64(i/bs)] = bytes.Clone(p[i : i+bs])
	}
	return len(p), nil
}

// unpackSparse unpacks a pack file into a sparse image.
func unpackSparse(file []byte) (*sparseImage, error) {
	r := bytes.NewReader(file)
	h, err := pack.ReadHeader(r)
	if err != nil {
		return nil, err
	}
	img := &sparseImage{size: int64(h.NrBlocks) * bs, blocks: map[int64][]byte{}}
	if _, err := pack.Unpack(bytes.NewReader(file), img); err != nil {
		return nil, err
	}
	return img, nil
}
