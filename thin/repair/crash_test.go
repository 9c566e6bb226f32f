package repair_test

import (
	"bytes"
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
	if sum := check.Device(r, size, check.Options{}, func(f check.Finding) { t.Errorf("check: %v", f) }); !sum.OK(false) {
		t.Fatalf("a crash left an inconsistent pool: %+v", sum)
	}
	var b bytes.Buffer
	if err := dump.Dump(&b, p, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// repairWorkloads are the repair paths that write, each run on a device
// that holds a pool (old) from the damaged image. A power cut at any of
// their writes must leave the old pool, no pool, or the whole repaired
// one.
//
// Hook for AutoRepair (check --auto-repair, which fixes in place in one
// commit): when it lands, add it here as {"auto-repair", ...} writing onto
// the damaged image itself; the test below then holds it to "the damaged
// pool as it was, or the repaired one".
var repairWorkloads = []struct {
	name string
	run  func(damaged []byte, dev transaction.Device, size int64) error
}{
	{"salvage and write", func(damaged []byte, dev transaction.Device, size int64) error {
		sv, err := repair.Salvage(bytes.NewReader(damaged), int64(len(damaged)), repair.Options{})
		if err != nil {
			return err
		}
		return sv.Write(dev, size)
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
