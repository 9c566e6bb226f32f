package ls_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/ls"
	"github.com/thinmeta/thinmeta/thin/restore"
)

// benchPool returns the shared benchmark pool's image.
func benchPool(b *testing.B) string {
	img, _ := genpool.BenchPool(b)
	return img
}

func TestMain(m *testing.M) {
	code := m.Run()
	genpool.BenchCleanup()
	os.Exit(code)
}

// BenchmarkList lists the benchmark pool with exclusive counts.
func BenchmarkList(b *testing.B) {
	img := benchPool(b)
	p, err := thin.Open(img, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		if _, err := ls.List(context.Background(), p, ls.Options{Exclusive: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListOneWorker is BenchmarkList on a single goroutine.
func BenchmarkListOneWorker(b *testing.B) {
	img := benchPool(b)
	p, err := thin.Open(img, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		if _, err := ls.List(context.Background(), p, ls.Options{Exclusive: true, Workers: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThinLs runs thin_ls 0.9.0 with an exclusive field on the same
// pool, for comparison.
func BenchmarkThinLs(b *testing.B) {
	img := benchPool(b)
	for b.Loop() {
		tptest.MustRun(b, "thin_ls", "-o", "DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS", img)
	}
}

// BenchmarkListScattered lists, with exclusive counts, one thin of 200,000
// mappings whose data blocks are scattered over 4M blocks in no order (as
// in a pool whose freed blocks were handed out again): its leaves span far
// more data blocks than they map, so the exclusive walk cannot settle them
// from their summaries and must not spend longer trying than reading them
// again would take.
func BenchmarkListScattered(b *testing.B) {
	const mappings, dataBlocks = 200000, 1 << 22
	r := rand.New(rand.NewPCG(3, 3))
	var xml bytes.Buffer
	fmt.Fprintf(&xml, "<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"128\" nr_data_blocks=\"%d\">\n", dataBlocks)
	fmt.Fprintf(&xml, "<device dev_id=\"0\" mapped_blocks=\"%d\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n", mappings)
	for i, d := range r.Perm(dataBlocks)[:mappings] {
		fmt.Fprintf(&xml, "<single_mapping origin_block=\"%d\" data_block=\"%d\" time=\"0\"/>\n", i, d)
	}
	xml.WriteString("</device>\n</superblock>\n")
	dir := b.TempDir()
	in, img := filepath.Join(dir, "scattered.xml"), filepath.Join(dir, "scattered.img")
	if err := os.WriteFile(in, xml.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		b.Fatal(err)
	}
	if _, err := restore.RestoreFile(context.Background(), in, img, restore.Options{}); err != nil {
		b.Fatal(err)
	}
	p, err := thin.Open(img, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		if _, err := ls.List(context.Background(), p, ls.Options{Exclusive: true}); err != nil {
			b.Fatal(err)
		}
	}
}
