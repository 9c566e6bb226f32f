package thin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/opscript"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"pgregory.net/rapid"
)

// oracleEvery is how often (in commits) the model tests also ask
// thin_check and thin_dump; THINMETA_ORACLE_EVERY=1 checks every commit.
func oracleEvery() int {
	if n, err := strconv.Atoi(os.Getenv("THINMETA_ORACLE_EVERY")); err == nil && n > 0 {
		return n
	}
	return 25
}

type failer interface {
	Helper()
	Fatalf(format string, args ...any)
}

// harness drives a Metadata and its model side by side.
type harness struct {
	t        failer     // fails the test (a *testing.T or a *rapid.T)
	tb       testing.TB // runs the tools
	dev      *memdev.Dev
	md       *thin.Metadata
	cur      *model // the transaction in progress
	com      *model // the last commit
	snap     *model // the metadata snapshot, if held
	nextID   uint64
	commits  int
	oracleAt int
	// script is what the harness did, in the operation language of
	// internal/opscript: a failure prints it, ready to paste into a
	// script of testdata/ (see TestScripts).
	script opscript.Script
}

// scripted fails with the script of what was done so far.
type scripted struct {
	failer
	s *opscript.Script
}

func (f scripted) Fatalf(format string, args ...any) {
	f.failer.Helper()
	f.failer.Fatalf(format+"\n\nthe case as a script (thin/testdata/*.txt):\n\nrun\n%s----\n", append(args, f.s.String())...)
}

func newHarness(t testing.TB, metaBlocks int64, nrData uint64) *harness {
	dev := memdev.New(metaBlocks * 4096)
	md, err := thin.Format(dev, dev.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: nrData})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{tb: t, dev: dev, md: md, cur: newModel(128, nrData), oracleAt: oracleEvery()}
	h.t = scripted{t, &h.script}
	h.script.Add("format", fmt.Sprintf("data=%d", nrData), fmt.Sprintf("meta=%d", metaBlocks))
	h.com = h.cur.clone()
	return h
}

func (h *harness) ids() []uint64 {
	var ids []uint64
	for id := range h.cur.devs {
		ids = append(ids, id)
	}
	return ids
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("%v", err)
	}
}

func (h *harness) createThin() {
	id := h.nextID
	h.nextID += 1 + uint64(len(h.cur.devs)%3)
	h.script.Add("create_thin", id)
	h.must(h.md.CreateThin(id))
	h.cur.devs[id] = &mdev{det: thin.Details{TransactionID: h.cur.trans, CreationTime: h.cur.time, SnapshottedTime: h.cur.time}, maps: map[uint64]thin.Mapping{}}
	h.script.Add("create_thin", id)
	if err := h.md.CreateThin(id); !errors.Is(err, thin.ErrExists) {
		h.t.Fatalf("creating device %d twice: %v", id, err)
	}
}

func (h *harness) snapshot(origin uint64) {
	id := h.nextID
	h.nextID++
	h.script.Add("create_snap", id, origin)
	h.must(h.md.CreateSnapshot(id, origin))
	h.cur.time++
	o := h.cur.devs[origin]
	o.det.SnapshottedTime = h.cur.time
	h.cur.devs[id] = &mdev{det: thin.Details{MappedBlocks: o.det.MappedBlocks, TransactionID: h.cur.trans,
		CreationTime: h.cur.time, SnapshottedTime: h.cur.time}, maps: maps_clone(o.maps)}
}

func maps_clone(m map[uint64]thin.Mapping) map[uint64]thin.Mapping {
	c := make(map[uint64]thin.Mapping, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (h *harness) delete(id uint64) {
	h.script.Add("delete", id)
	h.must(h.md.Delete(id))
	delete(h.cur.devs, id)
	if _, err := h.md.Details(id); !errors.Is(err, thin.ErrNoDevice) {
		h.t.Fatalf("deleted device %d still has details: %v", id, err)
	}
}

// inUse reports whether any device maps data block b in model m.
func inUse(m *model, b uint64) bool {
	for _, d := range m.devs {
		for _, mp := range d.maps {
			if mp.Block == b {
				return true
			}
		}
	}
	return false
}

func (h *harness) mapBlock(id, v uint64) {
	h.script.Add("map", id, v, 1)
	b, err := h.md.Map(id, v)
	if errors.Is(err, spacemap.ErrNoDataSpace) {
		return
	}
	h.must(err)
	// A data block must be free now and at the last commit (and in the
	// metadata snapshot, whose mappings are still readable).
	for _, m := range []*model{h.cur, h.com, h.snap} {
		if m != nil && inUse(m, b) {
			h.t.Fatalf("Map(%d, %d) allocated data block %d, which is still in use", id, v, b)
		}
	}
	d := h.cur.devs[id]
	if _, ok := d.maps[v]; !ok {
		d.det.MappedBlocks++
	}
	d.maps[v] = thin.Mapping{VBlock: v, Block: b, Time: h.cur.time}
}

func (h *harness) unmap(id, lo, hi uint64) {
	h.script.Add("unmap", id, lo, hi)
	n, err := h.md.Unmap(id, lo, hi)
	h.must(err)
	d := h.cur.devs[id]
	var want uint64
	for v := range d.maps {
		if v >= lo && v < hi {
			delete(d.maps, v)
			want++
		}
	}
	if n != want {
		h.t.Fatalf("Unmap(%d, %d, %d) removed %d, model %d", id, lo, hi, n, want)
	}
	d.det.MappedBlocks -= n
}

func (h *harness) commit() {
	h.script.Add("commit")
	h.must(h.md.Commit())
	h.com = h.cur.clone()
	h.commits++
	h.verify(h.commits%h.oracleAt == 0)
}

func (h *harness) abort() {
	h.script.Add("abort")
	h.must(h.md.Abort())
	h.cur = h.com.clone()
}

func (h *harness) reopen() {
	h.script.Add("reopen")
	h.must(h.md.Close())
	md, err := thin.NewMetadata(h.dev, h.dev.Size(), nil)
	h.must(err)
	h.md = md
	h.cur = h.com.clone()
}

// viewOfTransaction reads the transaction in progress through
// Metadata.View: check.Pool finds nothing wrong and the dump equals the
// model of the transaction (the data device as the transaction has it).
// The transaction goes on afterwards, so the next commit's verify also
// covers a transaction that a view brought up to date midway.
func (h *harness) viewOfTransaction() {
	h.t.Helper()
	h.script.Add("open", "v", "view")
	h.script.Add("check", "v")
	h.script.Add("dump", "v")
	v := h.md.View()
	var findings []check.Finding
	if sum, _ := check.Pool(context.Background(), v, check.Options{}, func(f check.Finding) { findings = append(findings, f) }); !sum.OK(false) || !sum.SpaceMapsChecked {
		h.t.Fatalf("check of the transaction's view: %v", findings)
	}
	var got bytes.Buffer
	h.must(dump.Dump(context.Background(), &got, v, dump.Options{}))
	if want := h.cur.xml(h.cur.nrData); !bytes.Equal(got.Bytes(), want) {
		h.t.Fatalf("dump of the transaction's view differs from the model:\n--- dump\n%s\n--- model\n%s", got.Bytes(), want)
	}
	if h.snap != nil {
		sv, err := v.MetadataSnapshot()
		h.must(err)
		got.Reset()
		h.must(dump.Dump(context.Background(), &got, sv, dump.Options{}))
		if want := h.snap.xml(0); !bytes.Equal(got.Bytes(), want) {
			h.t.Fatalf("dump of the transaction's snapshot view differs from the model:\n%s\n---\n%s", got.Bytes(), want)
		}
	}
}

// verify compares the committed state with the model: our dump, our check,
// and (if oracle) thin_dump and thin_check on the same bytes.
func (h *harness) verify(oracle bool) {
	h.t.Helper()
	p, err := thin.NewPool(bytes.NewReader(h.dev.Bytes()), h.dev.Size())
	h.must(err)
	var got bytes.Buffer
	h.must(dump.Dump(context.Background(), &got, p, dump.Options{}))
	want := h.com.xml(h.md.DataSpaceMap().NrBlocks())
	if !bytes.Equal(got.Bytes(), want) {
		h.t.Fatalf("dump differs from the model:\n--- dump\n%s\n--- model\n%s", got.Bytes(), want)
	}
	var findings []check.Finding
	sum, _ := check.Pool(context.Background(), p, check.Options{}, func(f check.Finding) { findings = append(findings, f) })
	if !sum.OK(false) || !sum.SpaceMapsChecked {
		h.t.Fatalf("check after commit %d: %v", h.commits, findings)
	}
	if h.snap != nil {
		sp, err := p.MetadataSnapshot()
		h.must(err)
		var sg bytes.Buffer
		h.must(dump.Dump(context.Background(), &sg, sp, dump.Options{}))
		if want := h.snap.xml(0); !bytes.Equal(sg.Bytes(), want) {
			h.t.Fatalf("metadata snapshot dump differs from the model:\n%s\n---\n%s", sg.Bytes(), want)
		}
	}
	if oracle {
		h.oracle()
	}
}

// oracle runs thin_check and thin_dump of both generations on the
// committed image: both checkers pass it (and its metadata snapshot),
// 0.9.0's dumps equal the model byte for byte and 1.1.0's describe the
// same pool.
func (h *harness) oracle() {
	h.t.Helper()
	img := filepath.Join(h.tb.TempDir(), "meta.img")
	h.must(os.WriteFile(img, h.dev.Bytes(), 0o644))
	tptest.CheckClean(h.tb, img)
	want := h.com.xml(h.md.DataSpaceMap().NrBlocks())
	r := tptest.MustRun(h.tb, "thin_dump", img)
	if !bytes.Equal(r.Stdout, want) {
		h.t.Fatalf("thin_dump differs from the model:\n%s\n---\n%s", r.Stdout, want)
	}
	tptest.SameDump(h.t, "thin_dump 1.1.0", tptest.MustRunGen(h.tb, tptest.V110, "thin_dump", img).Stdout, want)
	if h.snap != nil {
		want := h.snap.xml(0)
		r := tptest.MustRun(h.tb, "thin_dump", "-m", img)
		if !bytes.Equal(r.Stdout, want) {
			h.t.Fatalf("thin_dump -m differs from the model:\n%s\n---\n%s", r.Stdout, want)
		}
		tptest.SameDump(h.t, "thin_dump -m 1.1.0", tptest.MustRunGen(h.tb, tptest.V110, "thin_dump", "-m", img).Stdout, want)
		tptest.CheckClean(h.tb, img, "-m")
	}
}

// step runs one random operation.
func (h *harness) step(t *rapid.T) {
	ids := h.ids()
	pick := func() uint64 { return rapid.SampledFrom(ids).Draw(t, "dev") }
	op := rapid.IntRange(0, 99).Draw(t, "op")
	switch {
	case op < 6 || len(ids) == 0:
		h.createThin()
	case op < 10:
		h.snapshot(pick())
	case op < 13:
		h.delete(pick())
	case op < 60:
		id := pick()
		v := rapid.Uint64Range(0, 3000).Draw(t, "vblock")
		n := rapid.Uint64Range(1, 40).Draw(t, "run")
		for i := range n {
			h.mapBlock(id, v+i)
		}
	case op < 68:
		lo := rapid.Uint64Range(0, 3000).Draw(t, "lo")
		h.unmap(pick(), lo, lo+rapid.Uint64Range(1, 600).Draw(t, "len"))
	case op < 70:
		next := rapid.Uint64().Draw(t, "trans")
		h.script.Add("set_transaction_id", h.cur.trans+1, next)
		if err := h.md.SetTransactionID(h.cur.trans+1, next); !errors.Is(err, thin.ErrTransactionID) {
			h.t.Fatalf("set_transaction_id with a wrong current id: %v", err)
		}
		h.script.Add("set_transaction_id", h.cur.trans, next)
		h.must(h.md.SetTransactionID(h.cur.trans, next))
		h.cur.trans = next
	case op < 84:
		h.commit()
	case op < 88:
		h.abort()
	case op < 91:
		h.reopen()
	case op < 95:
		if h.snap == nil {
			h.script.Add("reserve_metadata_snap")
			h.script.Add("commit")
			h.must(h.md.ReserveMetadataSnapshot())
			h.must(h.md.Commit())
			h.com = h.cur.clone()
			h.snap = h.com.clone()
			h.commits++
			h.verify(h.commits%h.oracleAt == 0)
		} else {
			h.script.Add("release_metadata_snap")
			h.must(h.md.ReleaseMetadataSnapshot())
			h.snap = nil
			h.commit()
		}
	case op < 97:
		h.viewOfTransaction()
	default:
		n := h.md.DataSpaceMap().NrBlocks() + rapid.Uint64Range(0, 20000).Draw(t, "grow")
		h.script.Add("resize_data", n)
		h.must(h.md.ResizeData(n))
		h.cur.nrData = n
	}
}

// Random operation sequences against the model: after every commit the
// dump equals the model and the pool checks clean; thin_dump and
// thin_check agree on sampled commits and at the end.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		h := newHarness(t, 4096, rapid.Uint64Range(1000, 40000).Draw(rt, "data"))
		h.t = scripted{rt, &h.script}
		steps := rapid.IntRange(1, 150).Draw(rt, "steps")
		for range steps {
			h.step(rt)
		}
		h.commit()
		h.oracle()
	})
}
