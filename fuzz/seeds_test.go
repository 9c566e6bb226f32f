package fuzz

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/pack"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

var updateSeeds = flag.Bool("update-seeds", false, "regenerate the committed fuzz seeds from the shared fixtures")

// maxSeedSize keeps the committed image seeds small; larger fixtures are
// added at run time only.
const maxSeedSize = 64 << 10

// corpusFile formats values as a Go fuzzing corpus file.
func corpusFile(vals ...any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		default:
			fmt.Fprintf(&b, "%T(%v)\n", v, v)
		}
	}
	return []byte(b.String())
}

type seedWriter struct {
	t       *testing.T
	written map[string][]byte
}

func (w *seedWriter) add(path string, data []byte) {
	w.written[filepath.Join("..", path)] = data
}

// flush writes the new seeds over the old ones. Nothing else in the seed
// directories is removed: the crashers committed there as regression
// seeds (named by go test with a hash) stay.
func (w *seedWriter) flush() {
	for p, data := range w.written {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
}

// truncated cuts an image after the last block it holds.
func truncated(img *sparseImage) *sparseImage {
	last := int64(-1)
	for b := range img.blocks {
		last = max(last, b)
	}
	return &sparseImage{size: (last + 1) * bs, blocks: img.blocks}
}

// makeSeeds derives the committed seeds from the fixtures: small sparse
// images for FuzzImage, our own packs of them for FuzzUnpack, and
// superblocks, nodes of every shape and bitmaps for the per-codec targets.
func makeSeeds(t *testing.T, w *seedWriter) {
	imgs := fixtureImages(t)
	if len(imgs) == 0 {
		t.Fatal("the shared fixtures are needed to make the seeds")
	}
	nodeShapes := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(imgs)) {
		img := truncated(imgs[name])
		if enc := encodeImage(img); len(enc) <= maxSeedSize {
			w.add(filepath.Join("testdata", "fuzz", "FuzzImage", name+".bin"), enc)
			var p bytes.Buffer
			if err := pack.Pack(img, img.size, &p); err != nil {
				t.Fatal(err)
			}
			w.add(filepath.Join("testdata", "fuzz", "FuzzUnpack", name+".pack"), p.Bytes())
		}
		if sb, ok := img.blocks[0]; ok {
			w.add(filepath.Join("superblock", "testdata", "fuzz", "FuzzSuperblock", name),
				corpusFile(bytes.TrimRight(sb[:superblock.Size], "\x00"), false))
		}
		bitmaps := 0
		for _, b := range slices.Sorted(maps.Keys(img.blocks)) {
			blk := img.blocks[b]
			salt, _ := transaction.SaltOf(blk)
			switch salt {
			case transaction.SaltNode:
				n := btree.Node(blk)
				shape := fmt.Sprintf("flags%d-vs%d", n.Flags(), n.ValueSize())
				if n.NrEntries() == 0 {
					shape += "-empty"
				}
				if nodeShapes[shape] {
					continue
				}
				nodeShapes[shape] = true
				key := uint64(0)
				if nr := n.NrEntries(); nr > 0 {
					key = n.Key(nr/2) + 1
				}
				w.add(filepath.Join("btree", "testdata", "fuzz", "FuzzNode", shape),
					corpusFile(bytes.TrimRight(blk, "\x00"), uint64(b), key, false))
			case transaction.SaltBitmap:
				if bitmaps++; bitmaps > 1 || len(w.written) > 200 {
					continue
				}
				w.add(filepath.Join("spacemap", "testdata", "fuzz", "FuzzBitmap", fmt.Sprintf("%s-%d", name, b)),
					corpusFile(bytes.TrimRight(blk, "\x00"), uint16(b%spacemap.EntriesPerBitmap), uint8(b%4)))
			}
		}
	}
}

// TestSeeds checks the committed seeds (each image seed opens as a pool,
// each pack seed unpacks) and, with -update-seeds, first regenerates them.
func TestSeeds(t *testing.T) {
	if *updateSeeds {
		w := &seedWriter{t: t, written: map[string][]byte{}}
		makeSeeds(t, w)
		w.flush()
	}
	images, _ := filepath.Glob(filepath.Join("..", "testdata", "fuzz", "FuzzImage", "*"))
	packs, _ := filepath.Glob(filepath.Join("..", "testdata", "fuzz", "FuzzUnpack", "*"))
	if len(images) == 0 || len(packs) == 0 {
		t.Fatal("no committed seeds; run go test ./fuzz -run TestSeeds -update-seeds")
	}
	total := 0
	for _, p := range images {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		total += len(data)
		img := parseImage(data)
		if _, err := thin.NewPool(img, img.size); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range packs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		total += len(data)
		if _, err := unpackSparse(data); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if total > 512<<10 {
		t.Errorf("the committed seeds take %d KiB; keep them small", total>>10)
	}
}
