package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/blobindex"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/restore"
)

// randomExtended writes a random extended pool with thinmeta's write path:
// thins with small and 64-bit ids, mappings, snapshots sharing them,
// blobs of every shape (zero, with trailing zeros, full), deleted thins.
func randomExtended(t *testing.T, rng *rand.Rand, blobSize, indexBytes int) *memdev.Dev {
	t.Helper()
	dev := memdev.New(2048 * 4096)
	w, err := blob.Format(dev, dev.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 20000, BlobSize: blobSize, IndexBytes: indexBytes})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	blobOf := func() []byte {
		b := make([]byte, rng.IntN(blobSize+1))
		for i := range b {
			b[i] = byte(rng.IntN(4)) // zeros inside and at the end too
		}
		if rng.IntN(3) == 0 {
			copy(b, "vm")
		}
		return b
	}
	var ids []uint64
	for range 30 + rng.IntN(30) {
		var id uint64
		switch op := rng.IntN(10); {
		case op < 5 || len(ids) == 0:
			if rng.IntN(4) == 0 {
				id = w.NextID() + rng.Uint64N(1<<50)
				must(w.CreateThin(id, blobOf()))
			} else {
				id, err = w.NewThin(blobOf())
				must(err)
			}
			for v := range rng.Uint64N(300) {
				if _, err := w.Metadata().Map(id, v*uint64(1+rng.IntN(3))); err != nil {
					t.Fatal(err)
				}
			}
		case op < 8:
			id, err = w.NewSnapshot(ids[rng.IntN(len(ids))], blobOf())
			must(err)
			if _, err := w.Metadata().Map(id, rng.Uint64N(100)); err != nil {
				t.Fatal(err)
			}
		default:
			i := rng.IntN(len(ids))
			must(w.Delete(ids[i]))
			ids = slices.Delete(ids, i, i+1)
			continue
		}
		ids = append(ids, id)
		if rng.IntN(4) == 0 {
			must(w.Commit())
		}
	}
	must(w.Commit())
	return dev
}

func dumpOf(t *testing.T, img []byte) []byte {
	t.Helper()
	p, err := thin.NewPool(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := dump.Dump(context.Background(), &b, p, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// downgradedDump downgrades a copy of an extended image (ids renumbered)
// and returns thin_dump's XML of it, after thin_check accepts it.
func downgradedDump(t *testing.T, img []byte) []byte {
	t.Helper()
	d := memdev.FromBytes(img)
	md, err := thin.NewMetadata(d, d.Size(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blob.Downgrade(md, true); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stock.img")
	writeFile(t, path, d.Bytes())
	thinCheckClean(t, path)
	return tptest.MustRun(t, "thin_dump", path).Stdout
}

// Extended pools round-trip through dump and restore: the restored pool
// dumps to the same XML; downgraded, it is what the original is once
// downgraded, as thin_check and thin_dump 0.9.0 see them; its thins are
// found by key through the index restore built.
func TestRestoreExtendedRoundTrip(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 12))
		bs := []int{1, 7, 256, thin.MaxBlobSize}[seed%4]
		ib := []int{0, min(bs, 2), bs}[seed%3]
		t.Run(fmt.Sprintf("seed%d-blob%d-index%d", seed, bs, ib), func(t *testing.T) {
			orig := randomExtended(t, rng, bs, ib)
			xml := dumpOf(t, orig.Bytes())
			out := memdev.New(orig.Size())
			st, err := restore.Restore(context.Background(), bytes.NewReader(xml), out, out.Size(), restore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := dumpOf(t, out.Bytes()); !bytes.Equal(got, xml) {
				t.Fatalf("restored pool dumps differently:\n%s", firstDiff(got, xml))
			}
			if got, want := downgradedDump(t, out.Bytes()), downgradedDump(t, orig.Bytes()); !bytes.Equal(got, want) {
				t.Fatalf("downgraded, the restored pool differs from the original:\n%s", firstDiff(got, want))
			}
			a, err := blob.NewPool(bytes.NewReader(orig.Bytes()), orig.Size())
			if err != nil {
				t.Fatal(err)
			}
			b, err := blob.NewPool(bytes.NewReader(out.Bytes()), out.Size())
			if err != nil {
				t.Fatal(err)
			}
			if b.Count() != a.Count() || b.NextID() != a.NextID() || uint64(st.Devices) != a.Count() {
				t.Fatalf("count %d, next id %d; the original's %d, %d (%d restored)", b.Count(), b.NextID(), a.Count(), a.NextID(), st.Devices)
			}
			if (b.View().Superblock().BlobIndexRoot != 0) != (ib > 0) {
				t.Fatalf("index root %d with index_bytes %d", b.View().Superblock().BlobIndexRoot, ib)
			}
			for th, err := range a.Thins() {
				if err != nil {
					t.Fatal(err)
				}
				key := th.Blob[:max(ib, 1)]
				var want, got []uint64
				for x, err := range a.Find(key) {
					if err != nil {
						t.Fatal(err)
					}
					want = append(want, x.ID)
				}
				for x, err := range b.Find(key) {
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, x.ID)
				}
				if _, indexed := blobindex.Hash(key); indexed && ib > 0 {
					// Through the index itself, not a scan.
					got = got[:0]
					for x, err := range b.View().FindByKey(key) {
						if err != nil {
							t.Fatal(err)
						}
						got = append(got, x.ID)
					}
				}
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(got, want) || !slices.Contains(got, th.ID) && ib > 0 {
					t.Fatalf("Find(%x) on the restored pool: %v, on the original %v", key, got, want)
				}
			}
			// The restored pool takes new thins, with new ids.
			w, err := blob.NewWriter(out, out.Size(), nil)
			if err != nil {
				t.Fatal(err)
			}
			id, err := w.NewThin([]byte("n"))
			if err != nil || id != a.NextID() {
				t.Fatalf("new thin %d (%v); next id %d", id, err, a.NextID())
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			downgradedDump(t, out.Bytes())
		})
	}
}

// What the extended form adds is validated as strictly as the rest:
// each input is refused with a message naming the problem, and a stock
// input does not accept the extended attributes of a device.
func TestRestoreExtendedRefusals(t *testing.T) {
	const sb = `<superblock uuid="" time="0" transaction="0" flags="0" version="2" data_block_size="128" nr_data_blocks="100"`
	for _, c := range []struct{ xml, msg string }{
		{sb + ` blob_size="1323">` + "\n</superblock>\n", "blobs go up to 1322"},
		{sb + ` blob_size="8" index_bytes="9">` + "\n</superblock>\n", "more than blob_size"},
		{sb + ` index_bytes="2">` + "\n</superblock>\n", "need blob_size"},
		{sb + ` next_thin_id="2">` + "\n</superblock>\n", "need blob_size"},
		{sb + `>` + "\n" + `  <device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0" blob="00">` + "\n  </device>\n</superblock>\n", "unknown attribute"},
		{sb + `>` + "\n" + `  <device dev_id="4294967296" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">` + "\n  </device>\n</superblock>\n", "not a number from 0 to 4294967295"},
		{sb + ` blob_size="2">` + "\n" + `  <device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0" blob="010203">` + "\n  </device>\n</superblock>\n", "blobs have 2"},
		{sb + ` blob_size="2">` + "\n" + `  <device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0" blob="0g">` + "\n  </device>\n</superblock>\n", "not hexadecimal"},
		{sb + ` blob_size="2">` + "\n" + `  <device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0" blob="012">` + "\n  </device>\n</superblock>\n", "not hexadecimal"},
		{sb + ` blob_size="2">` + "\n" + `  <device dev_id="18446744073709551615" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">` + "\n  </device>\n</superblock>\n", "the largest id"},
		{sb + ` blob_size="2" next_thin_id="5">` + "\n" + `  <device dev_id="5" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">` + "\n  </device>\n</superblock>\n", "not below next_thin_id"},
		{sb + ` blob_size="2">` + "\n" + `  <device dev_id="4294967296" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">` + "\n  </device>\n" +
			`  <device dev_id="4294967296" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">` + "\n  </device>\n</superblock>\n", "already defined"},
	} {
		dev := memdev.New(64 * 4096)
		_, err := restore.Restore(context.Background(), strings.NewReader(c.xml), dev, dev.Size(), restore.Options{})
		var ie *restore.InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s\nrestore: %v; want an input error with %q", c.xml, err, c.msg)
		}
	}
	// A minimal extended input: next id and thin count as the input says;
	// blobs padded; the next id defaults to one above the largest.
	dev := memdev.New(64 * 4096)
	in := sb + ` blob_size="4" index_bytes="4">` + "\n" +
		`  <device dev_id="9000000000" mapped_blocks="0" transaction="3" creation_time="1" snap_time="2" blob="6869">` + "\n  </device>\n</superblock>\n"
	if _, err := restore.Restore(context.Background(), strings.NewReader(in), dev, dev.Size(), restore.Options{}); err != nil {
		t.Fatal(err)
	}
	p, err := blob.NewPool(bytes.NewReader(dev.Bytes()), dev.Size())
	if err != nil {
		t.Fatal(err)
	}
	th, err := p.Thin(9000000000)
	if err != nil || !bytes.Equal(th.Blob, []byte("hi\x00\x00")) || th.TransactionID != 3 || p.NextID() != 9000000001 || p.Count() != 1 {
		t.Fatalf("restored %+v (%v), next id %d, count %d", th, err, p.NextID(), p.Count())
	}
	var found []uint64
	for x, err := range p.Find([]byte("hi")) {
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, x.ID)
	}
	if !slices.Equal(found, []uint64{9000000000}) {
		t.Fatalf("Find(hi) = %v", found)
	}
}
