package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/opscript"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"pgregory.net/rapid"
)

// oracleEvery is how often (in commits) the model test also downgrades a
// copy of the pool and asks thin_check and thin_dump;
// THINMETA_ORACLE_EVERY=1 does it at every commit.
func oracleEvery() int {
	if n, err := strconv.Atoi(os.Getenv("THINMETA_ORACLE_EVERY")); err == nil && n > 0 {
		return n
	}
	return 10
}

type failer interface {
	Helper()
	Fatalf(format string, args ...any)
}

// names are the identities blobs start with: few, so that thins share
// keys and the index holds probe chains.
var names = [][]byte{[]byte("vm-root"), []byte("vm-home"), []byte("a"), {0xff, 0, 1}}

// xharness drives a blob.Writer and the model side by side.
type xharness struct {
	t        failer
	tb       testing.TB
	dev      *memdev.Dev
	w        *blob.Writer
	cur, com *xmodel
	snap     *xmodel // the metadata snapshot, if held
	reserved []uint64
	// spent holds every id a thin had or AllocateID handed out in a
	// transaction that committed: none may be handed out again.
	spent     map[uint64]bool
	pending   map[uint64]bool // ids handed out or used in this transaction
	commits   int
	oracleAt  int
	oracleRan int
	// script is what the harness did, in the operation language of
	// internal/opscript; a failure prints it for testdata/*.txt.
	script opscript.Script
}

// scripted fails with the script of what was done so far.
type scripted struct {
	failer
	s *opscript.Script
}

func (f scripted) Fatalf(format string, args ...any) {
	f.failer.Helper()
	f.failer.Fatalf(format+"\n\nthe case as a script (blob/testdata/*.txt):\n\nrun\n%s----\n", append(args, f.s.String())...)
}

func newXHarness(tb testing.TB, t failer, nrData uint64, blobSize, indexBytes int) *xharness {
	dev := memdev.New(2048 * 4096)
	w, err := blob.Format(dev, dev.Size(), &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: nrData, BlobSize: blobSize, IndexBytes: indexBytes})
	if err != nil {
		tb.Fatal(err)
	}
	h := &xharness{tb: tb, dev: dev, w: w, cur: newXModel(128, nrData, blobSize, indexBytes),
		spent: map[uint64]bool{}, pending: map[uint64]bool{}, oracleAt: oracleEvery()}
	h.t = scripted{t, &h.script}
	h.script.Add("format", fmt.Sprintf("data=%d", nrData), "meta=2048", "extended",
		fmt.Sprintf("blob_size=%d", blobSize), fmt.Sprintf("index_bytes=%d", indexBytes))
	h.com = h.cur.clone()
	return h
}

func (h *xharness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("%v", err)
	}
}

func (h *xharness) ids() []uint64 { return slices.Sorted(maps.Keys(h.cur.devs)) }

// drawBlob makes a blob: one of the names, then perhaps bytes past the
// key (so that thins with equal keys have different blobs), or zeros.
func (h *xharness) drawBlob(t *rapid.T) []byte {
	n := h.cur.blobSize
	b := make([]byte, n)
	switch rapid.IntRange(0, 9).Draw(t, "blobKind") {
	case 0:
		return b // zero: not indexed
	case 1:
		for i := range b {
			b[i] = byte(rapid.IntRange(0, 255).Draw(t, "byte"))
		}
		return b
	}
	copy(b, rapid.SampledFrom(names).Draw(t, "name"))
	if w := h.cur.keyWidth(); w < n && rapid.Bool().Draw(t, "tail") {
		b[w+rapid.IntRange(0, n-w-1).Draw(t, "tailAt")] = byte(rapid.IntRange(1, 255).Draw(t, "tailByte"))
	}
	return b
}

// newID checks an id the pool handed out.
func (h *xharness) newID(id uint64) {
	h.t.Helper()
	if id != h.cur.nextID {
		h.t.Fatalf("AllocateID gave %d, the model expects %d", id, h.cur.nextID)
	}
	if h.spent[id] || h.pending[id] {
		h.t.Fatalf("AllocateID gave %d, which was handed out or used before", id)
	}
	h.cur.nextID = id + 1
	h.pending[id] = true
}

func (h *xharness) addDev(id uint64, blob []byte) {
	h.cur.devs[id] = &xdev{det: thin.Details{TransactionID: h.cur.trans, CreationTime: h.cur.time, SnapshottedTime: h.cur.time},
		blob: padTo(blob, h.cur.blobSize), maps: map[uint64]thin.Mapping{}}
	h.cur.nextID = max(h.cur.nextID, id+1)
	h.pending[id] = true
}

func padTo(b []byte, n int) []byte {
	p := make([]byte, n)
	copy(p, b)
	return p
}

// explicitID draws an id at least the next one: close to it, or far.
func (h *xharness) explicitID(t *rapid.T) uint64 {
	next := h.cur.nextID
	if rapid.IntRange(0, 19).Draw(t, "far") == 0 && next < math.MaxUint64-2 {
		return rapid.Uint64Range(next, math.MaxUint64-2).Draw(t, "farID")
	}
	if next > math.MaxUint64-5 {
		return next
	}
	return next + rapid.Uint64Range(0, 3).Draw(t, "gap")
}

func (h *xharness) createThin(t *rapid.T) {
	b := h.drawBlob(t)
	switch rapid.IntRange(0, 2).Draw(t, "how") {
	case 0:
		if h.cur.nextID == math.MaxUint64 {
			return
		}
		id := h.explicitID(t)
		h.script.Add("create_thin", id, b)
		h.must(h.w.CreateThin(id, b))
		h.addDev(id, b)
	case 1:
		h.script.Add("new_thin", b)
		if h.cur.nextID == math.MaxUint64 {
			if _, err := h.w.NewThin(b); !errors.Is(err, thin.ErrIDRange) {
				h.t.Fatalf("NewThin with every id spent: %v", err)
			}
			return
		}
		id, err := h.w.NewThin(b)
		h.must(err)
		h.newID(id)
		h.addDev(id, b)
	default:
		if len(h.reserved) == 0 {
			return
		}
		i := rapid.IntRange(0, len(h.reserved)-1).Draw(t, "reserved")
		id := h.reserved[i]
		h.reserved = slices.Delete(h.reserved, i, i+1)
		h.script.Add("create_thin", id, b)
		h.must(h.w.CreateThin(id, b))
		h.addDev(id, b)
	}
}

func (h *xharness) allocate() {
	if h.cur.nextID == math.MaxUint64 {
		return
	}
	h.script.Add("allocate_id")
	id, err := h.w.AllocateID()
	h.must(err)
	h.newID(id)
	h.reserved = append(h.reserved, id)
}

// reuse tries to create a thin with an id below the next one that was
// not reserved in this transaction: refused, whether the id is in use,
// deleted, or was never used.
func (h *xharness) reuse(t *rapid.T) {
	if h.cur.nextID == 0 {
		return
	}
	id := rapid.Uint64Range(0, h.cur.nextID-1).Draw(t, "oldID")
	if slices.Contains(h.reserved, id) {
		return
	}
	h.script.Add("create_thin", id)
	err := h.w.CreateThin(id, nil)
	if !errors.Is(err, thin.ErrIDReused) {
		h.t.Fatalf("creating thin %d below the next id %d: %v", id, h.cur.nextID, err)
	}
	h.script.Add("create_thin", uint64(math.MaxUint64))
	if err := h.w.CreateThin(math.MaxUint64, nil); !errors.Is(err, thin.ErrIDRange) {
		h.t.Fatalf("creating thin 2^64-1: %v", err)
	}
}

func (h *xharness) snapshot(t *rapid.T, origin uint64) {
	b := h.drawBlob(t)
	var id uint64
	if len(h.reserved) > 0 && rapid.Bool().Draw(t, "useReserved") {
		id = h.reserved[0]
		h.reserved = h.reserved[1:]
		h.script.Add("create_snap", id, origin, b)
		h.must(h.w.CreateSnapshot(id, origin, b))
	} else {
		if h.cur.nextID == math.MaxUint64 {
			return
		}
		var err error
		h.script.Add("new_snap", origin, b)
		id, err = h.w.NewSnapshot(origin, b)
		h.must(err)
		h.newID(id)
	}
	h.cur.time++
	o := h.cur.devs[origin]
	o.det.SnapshottedTime = h.cur.time
	h.cur.devs[id] = &xdev{det: thin.Details{MappedBlocks: o.det.MappedBlocks, TransactionID: h.cur.trans,
		CreationTime: h.cur.time, SnapshottedTime: h.cur.time}, blob: b, maps: maps.Clone(o.maps)}
	h.cur.nextID = max(h.cur.nextID, id+1)
	h.pending[id] = true
}

func (h *xharness) setBlob(t *rapid.T, id uint64) {
	got, err := h.w.Blob(id)
	h.must(err)
	if !bytes.Equal(got, h.cur.devs[id].blob) {
		h.t.Fatalf("Blob(%d) = %x, model %x", id, got, h.cur.devs[id].blob)
	}
	if rapid.IntRange(0, 3).Draw(t, "clear") == 0 {
		h.script.Add("set_blob", id, "0")
		h.must(h.w.ClearBlob(id))
		h.cur.devs[id].blob = make([]byte, h.cur.blobSize)
		return
	}
	b := h.drawBlob(t)
	h.script.Add("set_blob", id, b)
	h.must(h.w.SetBlob(id, b))
	h.cur.devs[id].blob = b
}

func (h *xharness) delete(id uint64) {
	h.script.Add("delete", id)
	h.must(h.w.Delete(id))
	delete(h.cur.devs, id)
	if _, err := h.w.Blob(id); !errors.Is(err, thin.ErrNoDevice) {
		h.t.Fatalf("deleted thin %d still has a blob: %v", id, err)
	}
}

func (h *xharness) mapBlocks(t *rapid.T, id uint64) {
	md := h.w.Metadata()
	v0 := rapid.Uint64Range(0, 2000).Draw(t, "vblock")
	for v := v0; v < v0+rapid.Uint64Range(1, 30).Draw(t, "run"); v++ {
		h.script.Add("map", id, v, 1)
		b, err := md.Map(id, v)
		if errors.Is(err, spacemap.ErrNoDataSpace) {
			return
		}
		h.must(err)
		d := h.cur.devs[id]
		if _, ok := d.maps[v]; !ok {
			d.det.MappedBlocks++
		}
		d.maps[v] = thin.Mapping{VBlock: v, Block: b, Time: h.cur.time}
	}
}

func (h *xharness) endTransaction() {
	h.reserved = nil
	clear(h.pending)
}

func (h *xharness) commit() {
	h.t.Helper()
	h.script.Add("commit")
	h.must(h.w.Commit())
	for id := range h.pending {
		h.spent[id] = true
	}
	h.endTransaction()
	h.com = h.cur.clone()
	h.commits++
	h.verify(h.commits%h.oracleAt == 0)
}

func (h *xharness) abort() {
	h.script.Add("abort")
	h.must(h.w.Abort())
	h.endTransaction()
	h.cur = h.com.clone()
}

func (h *xharness) reopen() {
	h.script.Add("reopen")
	h.must(h.w.Close())
	w, err := blob.NewWriter(h.dev, h.dev.Size(), nil)
	h.must(err)
	h.w = w
	h.endTransaction()
	h.cur = h.com.clone()
}

func (h *xharness) metadataSnapshot() {
	md := h.w.Metadata()
	if h.snap == nil {
		h.script.Add("commit")
		h.script.Add("reserve_metadata_snap")
		h.script.Add("commit")
		h.must(md.Commit()) // as the kernel: the changes first, then the snapshot
		h.must(md.ReserveMetadataSnapshot())
		h.must(md.Commit())
		h.snap = h.cur.clone()
	} else {
		h.script.Add("release_metadata_snap")
		h.script.Add("commit")
		h.must(md.ReleaseMetadataSnapshot())
		h.snap = nil
		h.must(md.Commit())
	}
	for id := range h.pending {
		h.spent[id] = true
	}
	h.endTransaction()
	h.com = h.cur.clone()
	h.commits++
	h.verify(h.commits%h.oracleAt == 0)
}

// verify compares the committed state with the model: the dump, the
// enumeration, the count, the next id and every lookup by key.
func (h *xharness) verify(oracle bool) {
	h.t.Helper()
	img := bytes.Clone(h.dev.Bytes())
	p, err := blob.NewPool(bytes.NewReader(img), int64(len(img)))
	h.must(err)
	h.verifyPool(p, h.com, true)
	if h.snap != nil {
		sv, err := p.View().MetadataSnapshot()
		h.must(err)
		sp, err := blob.FromView(sv)
		h.must(err)
		h.verifyPool(sp, h.snap, false)
	}
	if oracle {
		h.oracle(img)
	}
}

func (h *xharness) verifyPool(p *blob.Pool, m *xmodel, live bool) {
	h.t.Helper()
	var got bytes.Buffer
	h.must(dump.Dump(context.Background(), &got, p.View(), dump.Options{}))
	nr := m.nrData
	if !live {
		nr = 0 // a snapshot's space-map slots are zero
	}
	if want := m.xml(nr, false, nil); !bytes.Equal(got.Bytes(), want) {
		h.t.Fatalf("dump differs from the model:\n--- dump\n%s\n--- model\n%s", got.Bytes(), want)
	}
	if p.Count() != uint64(len(m.devs)) || p.NextID() != m.nextID || p.BlobSize() != m.blobSize || p.IndexBytes() != m.indexBytes {
		h.t.Fatalf("count %d, next id %d, blob size %d, index bytes %d; model %d, %d, %d, %d",
			p.Count(), p.NextID(), p.BlobSize(), p.IndexBytes(), len(m.devs), m.nextID, m.blobSize, m.indexBytes)
	}
	var ids []uint64
	for th, err := range p.Thins() {
		h.must(err)
		d, ok := m.devs[th.ID]
		if !ok || th.Details != d.det || !bytes.Equal(th.Blob, d.blob) {
			h.t.Fatalf("Thins yields %d %+v %x; model %v", th.ID, th.Details, th.Blob, d)
		}
		ids = append(ids, th.ID)
	}
	if want := slices.Sorted(maps.Keys(m.devs)); !slices.Equal(ids, want) {
		h.t.Fatalf("Thins yields %v, model %v", ids, want)
	}
	keys := append(slices.Clone(names), nil) // nil: the all-zero key
	for _, k := range keys {
		if len(k) > m.keyWidth() {
			continue
		}
		var found []uint64
		for th, err := range p.Find(k) {
			h.must(err)
			if !bytes.Equal(th.Blob, m.devs[th.ID].blob) {
				h.t.Fatalf("Find(%q) yields thin %d with blob %x, model %x", k, th.ID, th.Blob, m.devs[th.ID].blob)
			}
			found = append(found, th.ID)
		}
		slices.Sort(found)
		if want := m.find(k); !slices.Equal(found, want) {
			h.t.Fatalf("Find(%q) = %v, model %v", k, found, want)
		}
	}
}

// oracle checks what thin-provisioning-tools 0.9.0 make of the committed
// image: they refuse the extended pool without printing a dump, and once
// a copy is downgraded, thin_check accepts it and thin_dump prints the
// model (with ids renumbered as the model expects).
func (h *xharness) oracle(img []byte) {
	h.t.Helper()
	h.oracleRan++
	dir := h.tb.TempDir()
	ext := filepath.Join(dir, "extended.img")
	h.must(os.WriteFile(ext, img, 0o644))
	tptest.CheckRejects(h.tb, ext)
	if r := tptest.Run(h.tb, "thin_dump", ext); r.Code == 0 || len(r.Stdout) != 0 {
		h.t.Fatalf("thin_dump of an extended pool: exit %d, output:\n%s", r.Code, r.Stdout)
	}

	d := memdev.FromBytes(img)
	md, err := thin.NewMetadata(d, d.Size(), nil)
	h.must(err)
	if md.Superblock().HeldRoot != 0 {
		h.must(md.ReleaseMetadataSnapshot())
	}
	changes, err := blob.Downgrade(md, true)
	h.must(err)
	want := h.com.renumbering()
	if len(changes) != len(want) {
		h.t.Fatalf("Downgrade renumbered %v, the model expects %v", changes, want)
	}
	for _, c := range changes {
		if want[c.Old] != c.New {
			h.t.Fatalf("Downgrade renumbered %v, the model expects %v", changes, want)
		}
	}
	stock := filepath.Join(dir, "stock.img")
	h.must(os.WriteFile(stock, d.Bytes(), 0o644))
	tptest.CheckClean(h.tb, stock)
	r := tptest.MustRun(h.tb, "thin_dump", stock)
	if w := h.com.xml(h.com.nrData, true, want); !bytes.Equal(r.Stdout, w) {
		h.t.Fatalf("thin_dump of the downgraded pool differs from the model:\n%s\n---\n%s", r.Stdout, w)
	}
	// Our own check agrees on the downgraded pool.
	p, err := thin.NewPool(bytes.NewReader(d.Bytes()), d.Size())
	h.must(err)
	var fs []check.Finding
	if sum, _ := check.Pool(context.Background(), p, check.Options{}, func(f check.Finding) { fs = append(fs, f) }); !sum.OK(false) {
		h.t.Fatalf("check of the downgraded pool: %v", fs)
	}
}

// failingCall makes a call that must fail, and checks that it spent no id
// and changed no thin: the model is left as it was, so the step's check of
// NextID and Count and the next commit's comparison of the whole pool
// with the model catch any change.
func (h *xharness) failingCall(t *rapid.T) {
	long := make([]byte, h.cur.blobSize+rapid.IntRange(1, 9).Draw(t, "excess"))
	long[len(long)-1] = 0xff // too long even without its trailing zeros (as a script writes it)
	missing := h.cur.nextID + rapid.Uint64Range(0, 5).Draw(t, "missing")
	for _, id := range h.ids() {
		if id >= missing {
			missing = id + 1
		}
	}
	var err error
	var want error
	var what string
	switch k := rapid.IntRange(0, 4).Draw(t, "failing"); {
	case k == 0:
		what, want = "NewThin with a blob too long", thin.ErrBlobSize
		h.script.Add("new_thin", long)
		_, err = h.w.NewThin(long)
	case k == 1 && missing < math.MaxUint64:
		what, want = "NewSnapshot of a missing origin", thin.ErrNoDevice
		h.script.Add("new_snap", missing)
		_, err = h.w.NewSnapshot(missing, nil)
	case k == 2 && len(h.cur.devs) > 0:
		what, want = "NewSnapshot with a blob too long", thin.ErrBlobSize
		origin := rapid.SampledFrom(h.ids()).Draw(t, "origin")
		h.script.Add("new_snap", origin, long)
		_, err = h.w.NewSnapshot(origin, long)
	case k == 3 && len(h.reserved) > 0 && missing < math.MaxUint64:
		// The reserved id stays usable.
		what, want = "CreateSnapshot of a missing origin with a reserved id", thin.ErrNoDevice
		h.script.Add("create_snap", h.reserved[0], missing)
		err = h.w.CreateSnapshot(h.reserved[0], missing, nil)
	default:
		what, want = "CreateThin with a blob too long", thin.ErrBlobSize
		h.script.Add("create_thin", h.cur.nextID, long)
		err = h.w.CreateThin(h.cur.nextID, long)
	}
	// With every id spent (the next would be 2^64-1, above the largest),
	// a new snapshot fails for want of an id before its origin is looked up.
	exhausted := h.cur.nextID == math.MaxUint64 && strings.HasPrefix(what, "NewSnapshot")
	if !errors.Is(err, want) && !(exhausted && errors.Is(err, thin.ErrIDRange)) {
		h.t.Fatalf("%s: %v, want %v", what, err, want)
	}
	if h.w.NextID() != h.cur.nextID || h.w.Count() != uint64(len(h.cur.devs)) {
		h.t.Fatalf("after a failed %s: next id %d, %d thins; model %d, %d", what, h.w.NextID(), h.w.Count(), h.cur.nextID, len(h.cur.devs))
	}
}

// step runs one random operation.
func (h *xharness) step(t *rapid.T) {
	ids := h.ids()
	pick := func() uint64 { return rapid.SampledFrom(ids).Draw(t, "thin") }
	op := rapid.IntRange(0, 99).Draw(t, "op")
	switch {
	case op < 14 || len(ids) == 0:
		h.createThin(t)
	case op < 20:
		h.allocate()
	case op < 24:
		h.reuse(t)
	case op < 32:
		h.snapshot(t, pick())
	case op < 46:
		h.setBlob(t, pick())
	case op < 52:
		h.delete(pick())
	case op < 64:
		h.mapBlocks(t, pick())
	case op < 66:
		next := rapid.Uint64().Draw(t, "trans")
		h.script.Add("set_transaction_id", h.cur.trans, next)
		h.must(h.w.Metadata().SetTransactionID(h.cur.trans, next))
		h.cur.trans = next
	case op < 82:
		h.commit()
	case op < 88:
		h.abort()
	case op < 92:
		h.reopen()
	case op < 95:
		h.metadataSnapshot()
	case op < 98:
		h.failingCall(t)
	default:
		// The committed view is the last commit, whatever is pending.
		p, err := h.w.Committed()
		h.must(err)
		h.verifyPool(p, h.com, true)
	}
	if h.w.Count() != uint64(len(h.cur.devs)) || h.w.NextID() != h.cur.nextID {
		h.t.Fatalf("in the transaction: %d thins, next id %d; model %d, %d", h.w.Count(), h.w.NextID(), len(h.cur.devs), h.cur.nextID)
	}
}

// Random operation sequences on extended pools of random blob and index
// sizes against the model: after every commit the dump, the enumeration,
// the count, the next id and every lookup by key equal the model; ids are
// never handed out twice across deletes, aborts and reopens; on sampled
// commits a downgraded copy passes thin_check and thin_dump prints the
// model.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 3, 16, 256, thin.MaxBlobSize}).Draw(rt, "blobSize")
		ib := rapid.SampledFrom([]int{0, 0, 1, min(bs, 3), min(bs, 8), bs}).Draw(rt, "indexBytes")
		h := newXHarness(t, rt, rapid.Uint64Range(500, 20000).Draw(rt, "data"), bs, ib)
		for range rapid.IntRange(1, 120).Draw(rt, "steps") {
			h.step(rt)
		}
		h.commit()
		if h.oracleRan == 0 || rapid.Bool().Draw(rt, "finalOracle") {
			h.oracle(bytes.Clone(h.dev.Bytes()))
		}
	})
}
