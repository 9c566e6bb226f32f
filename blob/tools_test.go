package blob_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
)

// extendedImage writes an extended pool with the given blob size: thins
// with small and 64-bit ids, mappings over several leaves, snapshots,
// blobs, a deleted thin, and optionally a held metadata snapshot.
func extendedImage(t *testing.T, blobSize, indexBytes int, metadataSnap bool) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "meta.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	w, err := blob.Create(img, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 10000, BlobSize: blobSize, IndexBytes: indexBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	md := w.Metadata()
	ids := []uint64{}
	name := func(i int) []byte { return []byte{byte(i + 1)} }
	for i := range 40 {
		var id uint64
		if i%5 == 4 {
			id = w.NextID() + 1<<33 // beyond what thin_dump prints (32 bits)
			must(w.CreateThin(id, name(i)))
		} else {
			id, err = w.NewThin(name(i))
			must(err)
		}
		ids = append(ids, id)
		for v := range uint64(30 + i) {
			_, err := md.Map(id, v*2)
			must(err)
		}
	}
	must(w.Commit())
	for _, o := range ids[:10] {
		_, err := w.NewSnapshot(o, name(100))
		must(err)
	}
	must(w.Delete(ids[3]))
	must(w.Commit())
	if metadataSnap {
		must(md.ReserveMetadataSnapshot())
		must(w.Commit())
		_, err := w.NewThin(name(101))
		must(err)
		must(w.Commit())
	}
	return img
}

// thin_check and thin_dump 0.9.0 refuse extended pools of every blob size
// (their device-details values are not 24 bytes) and print no dump: not
// one device with truncated ids or without its blob. thin_dump --repair
// salvages what it can read as stock, which is no device at all.
func TestToolsRefuseExtended(t *testing.T) {
	for _, bs := range []int{1, 8, 256, thin.MaxBlobSize} {
		for _, snap := range []bool{false, true} {
			t.Run(fmt.Sprintf("blob%d-snap%v", bs, snap), func(t *testing.T) {
				img := extendedImage(t, bs, min(bs, 16), snap)
				orig, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				args := [][]string{{img}}
				if snap {
					args = append(args, []string{"-m", img})
				}
				for _, a := range args {
					tptest.CheckRejects(t, img, a[:len(a)-1]...)
					for _, g := range tptest.Gens {
						if r := tptest.RunGen(t, g, "thin_dump", a...); r.Code == 0 || len(r.Stdout) != 0 {
							t.Fatalf("thin_dump %s %v of an extended pool: exit %d\n%s", g, a, r.Code, r.Stdout)
						}
					}
				}
				if r := tptest.Run(t, "thin_dump", "--repair", img); bytes.Contains(r.Stdout, []byte("<device")) {
					t.Fatalf("thin_dump --repair prints devices of an extended pool:\n%s", r.Stdout)
				}
				if now, _ := os.ReadFile(img); !bytes.Equal(orig, now) {
					t.Fatal("the tools changed the image")
				}
			})
		}
	}
}
