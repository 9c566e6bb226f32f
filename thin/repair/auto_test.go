package repair_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/repair"
	"github.com/thinmeta/thinmeta/transaction"
)

const (
	specExt = "metadata-format=extended thins=3 mappings=800 snapshots=3 shape=tree blob-size=40 index-bytes=16 ids=mixed"
	// specFan shares data blocks and nodes among many devices (counts in
	// the overflow trees) and holds a metadata snapshot.
	specFan = "thins=2 mappings=600 snapshots=4 shape=fan rewrite=0.05 metadata-snap=true"
)

// autoFixable says which damage kinds lose no mapping and so are fixed in
// place: the count kinds and mapped_blocks.
var autoFixable = map[gen.DamageKind]bool{
	gen.LeakData: true, gen.LeakMetadata: true, gen.DataRefCount: true,
	gen.MetadataRefCount: true, gen.MappedBlocks: true,
}

// autoInjections are every damage kind at a few victims, with overflow
// counts and other deltas.
func autoInjections() []gen.Injection {
	var ins []gen.Injection
	for _, k := range gen.DamageKinds() {
		for seed := range uint64(3) {
			ins = append(ins, gen.Injection{Kind: k, Seed: seed})
		}
	}
	for seed := range uint64(2) {
		ins = append(ins,
			gen.Injection{Kind: gen.DataRefCount, Seed: seed, Overflow: true},
			gen.Injection{Kind: gen.MetadataRefCount, Seed: seed, Overflow: true},
			gen.Injection{Kind: gen.DataRefCount, Seed: seed, Delta: 1},
			gen.Injection{Kind: gen.MetadataRefCount, Seed: seed, Delta: 1},
			gen.Injection{Kind: gen.DataRefCount, Seed: seed, Delta: 1, Overflow: true},
			gen.Injection{Kind: gen.MappedBlocks, Seed: seed, Delta: -5},
			gen.Injection{Kind: gen.NodeChecksum, Seed: seed, Internal: true})
	}
	return ins
}

func dumpOf(t testing.TB, img []byte) string {
	t.Helper()
	p, err := thin.NewPool(memdev.FromBytes(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := dump.Dump(context.Background(), &b, p, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// check --auto-repair on every damage kind: the fixable kinds give a pool
// that checks clean (thinmeta; both thin_check generations for stock
// pools) and dumps as the clean pool does, each fix named; the others
// change no byte and name the findings that refused the repair. Two
// fixable damages at once are fixed together, in one commit.
func TestAutoRepairFixes(t *testing.T) {
	for _, spec := range []string{spec21, specFan, specExt} {
		p := genPool(t, spec, 21)
		stock := spec != specExt
		cleanDump := dumpOf(t, p.clean)
		cases := [][]gen.Injection{}
		for _, in := range autoInjections() {
			cases = append(cases, []gen.Injection{in})
		}
		cases = append(cases,
			[]gen.Injection{{Kind: gen.LeakData}, {Kind: gen.MetadataRefCount}},
			[]gen.Injection{{Kind: gen.MappedBlocks}, {Kind: gen.DataRefCount, Seed: 1}},
			[]gen.Injection{{Kind: gen.LeakMetadata}, {Kind: gen.NodeChecksum}})
		for _, ins := range cases {
			name := fmt.Sprintf("%s/%v", map[string]string{spec21: "tree", specFan: "fan", specExt: "extended"}[spec], ins)
			t.Run(name, func(t *testing.T) {
				img, _ := p.damaged(t, ins...)
				fixable := true
				for _, in := range ins {
					fixable = fixable && autoFixable[in.Kind]
				}
				before := bytes.Clone(img)
				dev := memdev.FromBytes(img)
				rep, err := repair.AutoRepair(context.Background(), dev, dev.Size())
				if !fixable {
					if !errors.Is(err, repair.ErrNotAutoRepairable) || len(rep.Refused) == 0 || rep.Written {
						t.Fatalf("not refused: %v, %+v", err, rep)
					}
					if !bytes.Equal(dev.Bytes(), before) {
						t.Fatal("a refused auto-repair wrote")
					}
					return
				}
				if err != nil || !rep.Written || len(rep.Fixes) == 0 {
					t.Fatalf("%v, %+v", err, rep)
				}
				out := dev.Bytes()
				mustCheckClean(t, out)
				if got := dumpOf(t, out); got != cleanDump {
					t.Fatal("the repaired pool's dump differs from the clean pool's")
				}
				if stock {
					tptCheck(t, out)
				}
				// Again: nothing left to do, nothing written.
				again := bytes.Clone(out)
				rep, err = repair.AutoRepair(context.Background(), memdev.FromBytes(again), int64(len(again)))
				if err != nil || rep.Written || len(rep.Fixes) != 0 || !bytes.Equal(again, out) {
					t.Fatalf("second auto-repair: %v, %+v", err, rep)
				}
			})
		}
	}
}

// A stale needs_check on a clean pool is cleared, and only it; a
// needs_check on a damaged pool that cannot be fixed stays.
func TestAutoRepairNeedsCheck(t *testing.T) {
	p := genPool(t, spec21, 21)
	setFlag := func(img []byte) []byte {
		dev := memdev.FromBytes(img)
		m, err := thin.NewMetadata(dev, dev.Size(), nil)
		if err != nil {
			t.Fatal(err)
		}
		m.SetNeedsCheck(true)
		if err := m.Commit(); err != nil {
			t.Fatal(err)
		}
		return dev.Bytes()
	}
	flagged := setFlag(bytes.Clone(p.clean))
	dev := memdev.FromBytes(flagged)
	rep, err := repair.AutoRepair(context.Background(), dev, dev.Size())
	if err != nil || !rep.Written || len(rep.Fixes) != 1 {
		t.Fatalf("%v, %+v", err, rep)
	}
	if needsCheck(t, dev.Bytes()) {
		t.Fatal("needs_check still set")
	}
	mustCheckClean(t, dev.Bytes())
	tptCheck(t, dev.Bytes())

	img, _ := p.damaged(t, gen.Injection{Kind: gen.NodeChecksum})
	dev = memdev.FromBytes(setFlag(img))
	before := bytes.Clone(dev.Bytes())
	if _, err := repair.AutoRepair(context.Background(), dev, dev.Size()); !errors.Is(err, repair.ErrNotAutoRepairable) {
		t.Fatal(err)
	}
	if !bytes.Equal(dev.Bytes(), before) {
		t.Fatal("written")
	}
}

func needsCheck(t testing.TB, img []byte) bool {
	t.Helper()
	sb, err := superblock.Read(transaction.NewReader(memdev.FromBytes(img), int64(len(img))), 0, ^uint32(0))
	if err != nil {
		t.Fatal(err)
	}
	return sb.NeedsCheck()
}

// thin_check 1.1.0 --auto-repair on the same fixable damage, for the
// record: it must also give a clean pool for leaks; for the count kinds
// it refuses or leaves findings, which ours fixes.
func TestAutoRepairVersus110(t *testing.T) {
	p := genPool(t, specFan, 21)
	for _, k := range []gen.DamageKind{gen.LeakData, gen.LeakMetadata, gen.DataRefCount, gen.MetadataRefCount, gen.MappedBlocks} {
		dd := memdev.FromBytes(p.clean)
		if _, err := gen.Damage(dd, dd.Size(), p.rec, gen.Injection{Kind: k}); err != nil {
			t.Fatalf("%v: %v", k, err)
		}
		img := dd.Bytes()
		path := filepath.Join(t.TempDir(), "meta.img")
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
		r := tptest.RunGen(t, tptest.V110, "thin_check", "--auto-repair", path)
		after, _ := os.ReadFile(path)
		clean := tptest.RunGen(t, tptest.V110, "thin_check", path).Code == 0
		t.Logf("%v: thin_check 1.1.0 --auto-repair exit %d, clean after: %v, dump equal: %v", k, r.Code, clean, clean && dumpOf(t, after) == dumpOf(t, p.clean))
		dev := memdev.FromBytes(img)
		if _, err := repair.AutoRepair(context.Background(), dev, dev.Size()); err != nil {
			t.Fatalf("%v: %v", k, err)
		}
	}
}

// mustCheckClean requires thinmeta check to find nothing in img.
func mustCheckClean(t testing.TB, img []byte) {
	t.Helper()
	sum, _ := check.Device(context.Background(), memdev.FromBytes(img), int64(len(img)), check.Options{}, func(f check.Finding) {
		t.Errorf("check: %v", f)
	})
	if !sum.OK(false) {
		t.Fatalf("check: %+v", sum)
	}
}

// A sealed leaf whose value was changed to a data block another mapping
// uses: the check sees that block counted too low and the old one leaked;
// raising the count would make the block shared between the two, so that
// one volume shows another's data. Auto-repair refuses and says why.
func TestAutoRepairRefusesCrossMapping(t *testing.T) {
	p := genPool(t, spec21, 21)
	img := bytes.Clone(p.clean)
	leaves := blockRoles(img)["mapping leaf"]
	slices.Sort(leaves)
	node := func(b uint64) btree.Node {
		return btree.Node(img[b*transaction.BlockSize : (b+1)*transaction.BlockSize])
	}
	src, dst := node(leaves[0]), node(leaves[len(leaves)-1])
	target, _ := thin.UnpackBlockTime(dst.Uint64Value(0))
	if src.Key(0) == dst.Key(0) {
		t.Fatal("pick other leaves")
	}
	_, tm := thin.UnpackBlockTime(src.Uint64Value(0))
	src.SetUint64Value(0, thin.PackBlockTime(target, tm))
	btree.Validator.Prepare(src, leaves[0])
	before := bytes.Clone(img)
	dev := memdev.FromBytes(img)
	rep, err := repair.AutoRepair(context.Background(), dev, dev.Size())
	if !errors.Is(err, repair.ErrNotAutoRepairable) || rep.Written {
		t.Fatalf("not refused: %v, %+v", err, rep)
	}
	if !slices.ContainsFunc(rep.Refused, func(s string) bool { return strings.Contains(s, "a corrupted mapping, not sharing") }) {
		t.Fatalf("refused for other reasons: %v", rep.Refused)
	}
	if !bytes.Equal(dev.Bytes(), before) {
		t.Fatal("written")
	}
}

// A cancelled context stops the salvage, the repair and the auto-repair
// with its error: no output file is created, a pool being auto-repaired is
// untouched. Progress reports count the blocks read, in order.
func TestRepairContext(t *testing.T) {
	p := genPool(t, spec9301, 9301)
	img, _ := p.damaged(t, gen.Injection{Kind: gen.NodeChecksum})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := repair.Salvage(ctx, memdev.FromBytes(img), int64(len(img)), repair.Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("salvage: %v", err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.img"), filepath.Join(dir, "out.img")
	if err := os.WriteFile(in, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := repair.RepairFile(ctx, in, out, repair.Options{}, repair.WriteOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("repair: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("files left: %v", ents)
	}
	leaky, _ := genPool(t, specFan, 21).damaged(t, gen.Injection{Kind: gen.LeakData})
	before := bytes.Clone(leaky)
	dev := memdev.FromBytes(leaky)
	if _, err := repair.AutoRepair(ctx, dev, dev.Size()); !errors.Is(err, context.Canceled) || errors.Is(err, repair.ErrNotAutoRepairable) || !bytes.Equal(dev.Bytes(), before) {
		t.Fatalf("auto-repair: %v (unchanged %v)", err, bytes.Equal(dev.Bytes(), before))
	}
	var last uint64
	reports := 0
	opts := repair.Options{Progress: func(pr thin.Progress) {
		if pr.Done < last {
			t.Errorf("progress went back: %d after %d", pr.Done, last)
		}
		last = pr.Done
		reports++
	}}
	if _, err := repair.Salvage(context.Background(), memdev.FromBytes(img), int64(len(img)), opts); err != nil {
		t.Fatal(err)
	}
	if reports == 0 || last < uint64(len(img))/transaction.BlockSize {
		t.Fatalf("%d reports, last %d (the scan reads %d blocks)", reports, last, len(img)/transaction.BlockSize)
	}
}
