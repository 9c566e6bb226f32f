package restore_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/restore"
	"github.com/thinmeta/thinmeta/transaction"
)

// wrun is a run of mappings for the writer test.
type wrun struct {
	v, b, n uint64
	t       uint32
}

// wpiece is part of a device: its own runs, or a reference to a def.
type wpiece struct {
	runs []wrun
	def  int // -1: runs
}

// randomContent makes defs and devices over disjoint data blocks: each
// device is a sequence of own runs and refs to defs, with virtual blocks
// increasing through it.
func randomContent(rng *rand.Rand) (defs [][]wrun, devs map[uint64][]wpiece) {
	next := uint64(0) // next free data block
	mkRuns := func(v uint64, total int) ([]wrun, uint64) {
		var rs []wrun
		for total > 0 {
			n := uint64(1 + rng.IntN(min(total, 40)))
			rs = append(rs, wrun{v: v, b: next, n: n, t: uint32(rng.IntN(3))})
			next += n + uint64(rng.IntN(2))
			v += n + uint64(rng.IntN(3))
			total -= int(n)
		}
		return rs, v
	}
	for range rng.IntN(4) {
		// Defs at disjoint virtual ranges so devices can use several.
		base := uint64(len(defs)+1) * 100000
		rs, _ := mkRuns(base, 1+rng.IntN(600))
		defs = append(defs, rs)
	}
	devs = map[uint64][]wpiece{}
	for range 1 + rng.IntN(5) {
		id := uint64(rng.IntN(50))
		var ps []wpiece
		v := uint64(rng.IntN(10))
		for d := range defs {
			if rng.IntN(2) == 0 {
				rs, _ := mkRuns(v, rng.IntN(400))
				ps = append(ps, wpiece{runs: rs, def: -1})
			}
			if rng.IntN(3) > 0 {
				ps = append(ps, wpiece{def: d})
			}
			v = uint64(d+2)*100000 - 50000
		}
		rs, _ := mkRuns(uint64(len(defs)+1)*100000+1000, rng.IntN(500))
		ps = append(ps, wpiece{runs: rs, def: -1})
		devs[id] = ps
	}
	return defs, devs
}

// A pool built with restore.Writer dumps exactly as thin_restore 1.1.0's
// restore of the equivalent 1.x XML (with <def> and <ref>), and both
// generations of thin_check pass it.
func TestWriterMatchesThinRestore(t *testing.T) {
	tptest.NeedGen(t, tptest.V110, "thin_restore")
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			defs, devs := randomContent(rng)
			const nrData = 200000
			var xml strings.Builder
			fmt.Fprintf(&xml, "<superblock uuid=\"\" time=\"3\" transaction=\"9\" version=\"2\" data_block_size=\"128\" nr_data_blocks=\"%d\">\n", nrData)
			writeRuns := func(rs []wrun) {
				for _, r := range rs {
					fmt.Fprintf(&xml, "<range_mapping origin_begin=\"%d\" data_begin=\"%d\" length=\"%d\" time=\"%d\"/>\n", r.v, r.b, r.n, r.t)
				}
			}
			for i, rs := range defs {
				fmt.Fprintf(&xml, "<def name=\"d%d\">\n", i)
				writeRuns(rs)
				xml.WriteString("</def>\n")
			}
			dir := t.TempDir()
			ours := filepath.Join(dir, "ours.img")
			f, err := os.Create(ours)
			if err != nil {
				t.Fatal(err)
			}
			const size = 16 << 20
			f.Truncate(size)
			w, err := restore.NewWriter(transaction.FileDevice{File: f}, size, restore.Header{
				Time: 3, TransactionID: 9, DataBlockSize: 128, NrDataBlocks: nrData})
			if err != nil {
				t.Fatal(err)
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			for _, rs := range defs {
				_, err := w.BeginDef()
				must(err)
				for _, r := range rs {
					must(w.Map(r.v, r.b, r.n, r.t))
				}
				must(w.EndDef())
			}
			for id := range uint64(50) {
				ps, ok := devs[id]
				if !ok {
					continue
				}
				// thin_restore 1.x takes mapped_blocks from the XML.
				var mapped uint64
				for _, p := range ps {
					rs := p.runs
					if p.def >= 0 {
						rs = defs[p.def]
					}
					for _, r := range rs {
						mapped += r.n
					}
				}
				fmt.Fprintf(&xml, "<device dev_id=\"%d\" mapped_blocks=\"%d\" transaction=\"%d\" creation_time=\"1\" snap_time=\"2\">\n", id, mapped, id)
				must(w.BeginDevice(id, thin.Details{TransactionID: id, CreationTime: 1, SnapshottedTime: 2}, nil))
				for _, p := range ps {
					if p.def >= 0 {
						fmt.Fprintf(&xml, "<ref name=\"d%d\"/>\n", p.def)
						must(w.Ref(p.def))
						continue
					}
					writeRuns(p.runs)
					for _, r := range p.runs {
						must(w.Map(r.v, r.b, r.n, r.t))
					}
				}
				xml.WriteString("</device>\n")
				must(w.EndDevice())
			}
			xml.WriteString("</superblock>\n")
			if _, err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			f.Close()

			xmlPath, theirs := filepath.Join(dir, "in.xml"), filepath.Join(dir, "theirs.img")
			writeFile(t, xmlPath, []byte(xml.String()))
			sparse(t, theirs, size/4096)
			tptest.MustRunGen(t, tptest.V110, "thin_restore", "-q", "-i", xmlPath, "-o", theirs)
			tptest.CheckClean(t, ours)
			want := tptest.MustRun(t, "thin_dump", theirs).Stdout
			got := tptest.MustRun(t, "thin_dump", ours).Stdout
			if !bytes.Equal(got, want) {
				t.Fatalf("dump of the Writer's pool differs from thin_restore 1.1.0's:\n%s", firstDiff(got, want))
			}
		})
	}
}

// The Writer refuses what the XML parser refuses, and calls out of order;
// after a refusal the pool is not committed (block 0 stays zero).
func TestWriterRefuses(t *testing.T) {
	cases := []struct {
		name string
		f    func(w *restore.Writer) error
	}{
		{"keys out of order", func(w *restore.Writer) error {
			w.BeginDevice(1, thin.Details{}, nil)
			w.Map(10, 0, 5, 0)
			return w.Map(12, 10, 1, 0)
		}},
		{"beyond data device", func(w *restore.Writer) error {
			w.BeginDevice(1, thin.Details{}, nil)
			return w.Map(0, 990, 20, 0)
		}},
		{"time too big", func(w *restore.Writer) error {
			w.BeginDevice(1, thin.Details{}, nil)
			return w.Map(0, 0, 1, thin.MaxTime+1)
		}},
		{"device twice", func(w *restore.Writer) error {
			w.BeginDevice(1, thin.Details{}, nil)
			w.EndDevice()
			return w.BeginDevice(1, thin.Details{}, nil)
		}},
		{"def after device", func(w *restore.Writer) error {
			w.BeginDevice(1, thin.Details{}, nil)
			w.EndDevice()
			_, err := w.BeginDef()
			return err
		}},
		{"map outside tree", func(w *restore.Writer) error { return w.Map(0, 0, 1, 0) }},
		{"ref overlapping", func(w *restore.Writer) error {
			d, _ := w.BeginDef()
			w.Map(5, 0, 5, 0)
			w.EndDef()
			w.BeginDevice(1, thin.Details{}, nil)
			w.Map(7, 100, 1, 0)
			return w.Ref(d)
		}},
		{"commit inside device", func(w *restore.Writer) error {
			w.BeginDevice(1, thin.Details{}, nil)
			_, err := w.Commit()
			return err
		}},
		{"stock id too big", func(w *restore.Writer) error { return w.BeginDevice(1<<32, thin.Details{}, nil) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dev := &memDev{b: make([]byte, 1<<20)}
			dev.b[0] = 1 // block 0 is zeroed by NewWriter
			w, err := restore.NewWriter(dev, int64(len(dev.b)), restore.Header{DataBlockSize: 128, NrDataBlocks: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.f(w); err == nil {
				t.Fatal("accepted")
			}
			if _, err := w.Commit(); err == nil {
				t.Fatal("Commit after a refusal succeeded")
			}
			if !bytes.Equal(dev.b[:4096], make([]byte, 4096)) {
				t.Fatal("block 0 was written")
			}
		})
	}
	if _, err := restore.NewWriter(&memDev{b: make([]byte, 1<<20)}, 1<<20, restore.Header{DataBlockSize: 100}); !errors.Is(err, thin.ErrDataBlockSize) {
		t.Fatalf("data block size 100: %v", err)
	}
}

type memDev struct{ b []byte }

func (d *memDev) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(d.b)) {
		return 0, fmt.Errorf("read beyond the end")
	}
	return copy(p, d.b[off:]), nil
}
func (d *memDev) WriteAt(p []byte, off int64) (int, error) { return copy(d.b[off:], p), nil }
func (d *memDev) Flush() error                             { return nil }
