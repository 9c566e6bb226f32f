package repair_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/crashtest"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/repair"
	"github.com/thinmeta/thinmeta/transaction"
)

// crashDump dumps the pool on r, or returns "" if there is none; a pool
// must check clean.
func crashDump(t *testing.T, r io.ReaderAt, size int64) string {
	t.Helper()
	p, err := thin.NewPool(r, size)
	if errors.Is(err, superblock.ErrUnformatted) {
		return "" // no pool: block 0 is zeros
	}
	if err != nil {
		t.Fatalf("a crash left a superblock that does not open: %v", err)
	}
	if sum, _ := check.Device(context.Background(), r, size, check.Options{}, func(f check.Finding) { t.Errorf("check: %v", f) }); !sum.OK(false) {
		t.Fatalf("a crash left an inconsistent pool: %+v", sum)
	}
	var b bytes.Buffer
	if err := dump.Dump(context.Background(), &b, p, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// repairWorkloads are the repair paths that write, each run on a device
// that holds a pool (old) from the damaged image. A power cut at any of
// their writes must leave the old pool, no pool, or the whole repaired
// one.
// AutoRepair, which writes onto the damaged pool itself, is held to "the
// damaged pool as it was, or the repaired one" by TestAutoRepairCrash.
var repairWorkloads = []struct {
	name string
	run  func(damaged []byte, dev transaction.Device, size int64) error
}{
	{"salvage and write", func(damaged []byte, dev transaction.Device, size int64) error {
		sv, err := repair.Salvage(context.Background(), bytes.NewReader(damaged), int64(len(damaged)), repair.Options{})
		if err != nil {
			return err
		}
		return sv.Write(context.Background(), dev, size)
	}},
}

// Power cuts at every write and flush of a repair writing its output over
// an existing pool, with the unflushed writes kept, dropped, torn or
// partly lost out of order (crashtest): the device holds the old pool, no
// pool, or the repaired one, never damaged trees; both thin_check
// generations judge the first survivor of each outcome.
func TestRepairCrash(t *testing.T) {
	oracle := crashtest.NewOracle(t)
	points := 0
	for _, w := range repairWorkloads {
		for i, kind := range gen.DamageKinds() {
			p := genPool(t, spec21, 21)
			dd := memdev.FromBytes(p.clean)
			if _, err := gen.Damage(dd, dd.Size(), p.rec, gen.Injection{Kind: kind}); err != nil {
				continue // nothing of that kind in this pool
			}
			damaged := dd.Bytes()
			size := int64(len(damaged)) + 4<<20
			old := memdev.New(size)
			if _, err := gen.Generate(old, size, mustSpec(t, "thins=2 mappings=500 snapshots=1"), uint64(i)); err != nil {
				t.Fatal(err)
			}
			oldDump := crashDump(t, old, size)
			rec := crashtest.NewRecorder(old.Bytes(), nil)
			if err := rec.Commit(nil, func() error { return w.run(damaged, rec, size) }); err != nil {
				t.Fatalf("%s, %v: %v", w.name, kind, err)
			}
			log := rec.Log()
			newDump := crashDump(t, bytes.NewReader(log.Final()), size)
			if newDump == "" {
				t.Fatalf("%s, %v: no pool written", w.name, kind)
			}
			judged := map[string]bool{}
			for c := range log.Cuts(crashtest.Modes, 6) {
				points++
				switch got := crashDump(t, c, c.Size()); got {
				case oldDump, newDump:
					if !judged[got] {
						judged[got] = true
						oracle.Check(c.Bytes(), fmt.Sprintf("%s, %v, cut at %d (%v)", w.name, kind, c.K, c.Mode))
					}
				case "":
				default:
					t.Fatalf("%s, %v: cut at %d of %d (%v): the device holds neither pool", w.name, kind, c.K, log.Ops(), c.Mode)
				}
			}
		}
	}
	oracle.Wait()
	t.Logf("%d cut points", points)
}

func mustSpec(t *testing.T, s string) gen.Spec {
	t.Helper()
	sp, err := gen.ParseSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// findingsOf returns the check's findings on r, one string each.
func findingsOf(r io.ReaderAt, size int64) []string {
	var fs []string
	check.Device(context.Background(), r, size, check.Options{}, func(f check.Finding) { fs = append(fs, f.String()) })
	return fs
}

// Power cuts at every write and flush of check --auto-repair on every
// fixable damage (two at once too): the device holds the damaged pool as
// it was (the same findings) or the repaired one (no findings, the clean
// pool's dump); both thin_check generations judge the repaired survivors.
func TestAutoRepairCrash(t *testing.T) {
	oracle := crashtest.NewOracle(t)
	points := 0
	cases := [][]gen.Injection{}
	for _, k := range gen.DamageKinds() {
		if autoFixable[k] {
			cases = append(cases, []gen.Injection{{Kind: k}})
		}
	}
	cases = append(cases, []gen.Injection{{Kind: gen.LeakData}, {Kind: gen.MetadataRefCount}, {Kind: gen.MappedBlocks}},
		[]gen.Injection{{Kind: gen.DataRefCount, Overflow: true}})
	p := genPool(t, specFan, 21)
	cleanDump := dumpOf(t, p.clean)
	for _, ins := range cases {
		img, _ := p.damaged(t, ins...)
		oldFindings := fmt.Sprint(findingsOf(bytes.NewReader(img), int64(len(img))))
		rec := crashtest.NewRecorder(img, nil)
		if err := rec.Commit(nil, func() error {
			_, err := repair.AutoRepair(context.Background(), rec, rec.Size())
			return err
		}); err != nil {
			t.Fatalf("%v: %v", ins, err)
		}
		log := rec.Log()
		if log.Ops() == 0 {
			t.Fatalf("%v: nothing written", ins)
		}
		judged := false
		for c := range log.Cuts(crashtest.Modes, 6) {
			points++
			fs := findingsOf(c, c.Size())
			switch {
			case len(fs) == 0:
				if got := crashDump(t, c, c.Size()); got != cleanDump {
					t.Fatalf("%v: cut at %d (%v): a clean pool that is not the repaired one", ins, c.K, c.Mode)
				}
				if !judged {
					judged = true
					oracle.Check(c.Bytes(), fmt.Sprintf("auto-repair %v, cut at %d (%v)", ins, c.K, c.Mode))
				}
			case fmt.Sprint(fs) == oldFindings:
			default:
				t.Fatalf("%v: cut at %d of %d (%v): neither the damaged pool nor the repaired one: %v", ins, c.K, log.Ops(), c.Mode, fs)
			}
		}
	}
	oracle.Wait()
	t.Logf("%d cut points", points)
}
