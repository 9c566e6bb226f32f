package check_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/oracle"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

var blockCountRE = regexp.MustCompile(`block (\d+) has count`)

// What the real kernel does with a count one too high (docs/CHECK.md,
// "Counts too high"), run in the kernel oracle's guest:
//
//   - a data block counted 2 with one reference: deleting the thin that
//     maps it leaves it counted 1 with none. It stays allocated (a leak);
//     nothing else changes and the pool stays healthy.
//   - a mapping leaf counted 2 with one reference: a write that inserts a
//     mapping into it makes the kernel take the leaf for shared. It writes
//     a copy, lowers the original's count to 1 (now unreferenced: leaked)
//     and raises the count of every data block the leaf maps (the copy's
//     references), which are then one too high: the leak moves down, and
//     no block gets a second owner.
//
// After each run thinmeta's check must report exactly those leaks, all
// non-fatal, and nothing else.
func TestKernelCountTooHigh(t *testing.T) {
	oracle.Dir(t)
	dir := t.TempDir()
	s, err := gen.ParseSpec("thins=1 mappings=3000 run-length=4 sparsity=0.3 data-slack=0.5")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base.img")
	rec, err := gen.GenerateFile(base, s, 3)
	if err != nil {
		t.Fatal(err)
	}
	const dev = 1
	bs := uint64(rec.DataBlockSize)
	data := filepath.Join(dir, "data.img")
	if err := genpool.CreateSparse(data, int64(rec.NrDataBlocks*bs*512)); err != nil {
		t.Fatal(err)
	}
	st, err := rec.Final()
	if err != nil {
		t.Fatal(err)
	}
	var maps []thin.Mapping
	for _, d := range st.Devices {
		if d.ID == dev {
			maps = d.Mappings
		}
	}
	if len(maps) == 0 {
		t.Fatal("device 1 has no mappings")
	}
	sectors := (maps[len(maps)-1].VBlock + 64) * bs

	run := func(t *testing.T, img, script string) {
		t.Helper()
		sh := img + ".sh"
		if err := os.WriteFile(sh, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		res := oracle.Run(t, "script", "--meta", img, "--data", data, "--script", sh,
			"--env", fmt.Sprintf("NRD=%d", rec.NrDataBlocks), "--env", fmt.Sprintf("BS=%d", bs),
			"--env", fmt.Sprintf("SECT=%d", sectors), "--quiet", "--no-xml", "--timeout", "300", "--log", img+".log")
		// The oracle's own last check is thin_check 0.9.0's, which fails a
		// metadata leak (exit 5); the guest must have finished (ORACLE-OK)
		// with the pool healthy throughout (pool_check).
		console, _ := os.ReadFile(img + ".log")
		if !bytes.Contains(console, []byte("ORACLE-OK")) || (res.Code != 0 && res.Code != 5) {
			t.Fatalf("kernel oracle: exit %d\n%s\n%s", res.Code, res.Output, console)
		}
	}
	findings := func(t *testing.T, img string) []check.Finding {
		t.Helper()
		sum, fs, p := checkImage(img, check.Options{})
		if p != nil {
			t.Fatal(p)
		}
		if sum.Fatal != 0 {
			t.Fatalf("fatal findings after the kernel: %v", fs)
		}
		return fs
	}

	// Image paths must hold no comma (qemu's option syntax): the
	// subtests' own temporary directories do.
	t.Run("data block, thin deleted", func(t *testing.T) {
		img := copyImage(t, base, dir, "data.meta.img")
		db := maps[len(maps)/2].Block
		im := openImage(t, img)
		if !im.dataAdd(db, 1) {
			t.Fatal("count not changed")
		}
		im.close()
		run(t, img, `step activate
pool_create pool $(( NRD * BS )) $BS
pool_check pool
step delete
pool_msg pool delete 1
pool_check pool
step teardown
teardown pool
`)
		fs := findings(t, img)
		want := fmt.Sprintf("block %d has count 1, 0 references found", db)
		if len(fs) != 1 || fs[0].Area != "data space map" || fs[0].Severity != check.NonFatal ||
			errors.Is(fs[0].Err, check.ErrExtraCount) || !errors.Is(fs[0].Err, check.ErrLeak) || !bytes.Contains([]byte(fs[0].Err.Error()), []byte(want)) {
			t.Fatalf("after the kernel deleted the thin: %v; want one leak: %s", fs, want)
		}
	})

	t.Run("mapping leaf, write into it", func(t *testing.T) {
		img := copyImage(t, base, dir, "leaf.meta.img")
		l := mapLayout(t, img)
		// A leaf of device 1 (not its root) with a gap between two keys.
		var leaf uint64
		var gap uint64
		var leafData []uint64
		for _, b := range l.byRole[roleBottomLeaf] {
			n := btree.Node(readBlock(img, b))
			for i := 1; i < n.NrEntries(); i++ {
				if n.Key(i) > n.Key(i-1)+1 {
					leaf, gap = b, n.Key(i-1)+1
					break
				}
			}
			if leaf != 0 {
				for i := range n.NrEntries() {
					blk, _ := thin.UnpackBlockTime(n.Uint64Value(i))
					leafData = append(leafData, blk)
				}
				break
			}
		}
		if leaf == 0 {
			t.Fatal("no leaf with a gap")
		}
		im := openImage(t, img)
		im.metaAdd(leaf, 1)
		im.close()
		run(t, img, fmt.Sprintf(`step activate
pool_create pool $(( NRD * BS )) $BS
thin_create thin pool 1 $SECT
step write
make_pattern /tmp/X $(( BS * 512 )) "into a leaf counted twice"
write_file_at /dev/mapper/thin $BS %d /tmp/X
pool_check pool
step teardown
teardown pool thin
`, gap))
		fs := findings(t, img)
		var metaLeaks, extra []uint64
		for _, f := range fs {
			m := countRE.FindStringSubmatch(f.Err.Error())
			if f.Severity != check.NonFatal || m == nil {
				t.Fatalf("unexpected finding %v", f)
			}
			bm := blockCountRE.FindStringSubmatch(f.Err.Error())
			if bm == nil {
				t.Fatalf("no block in %v", f)
			}
			b, _ := strconv.ParseUint(bm[1], 10, 64)
			switch {
			case f.Area == "metadata space map" && !errors.Is(f.Err, check.ErrExtraCount) && m[1] == "1" && m[2] == "0":
				metaLeaks = append(metaLeaks, b)
			case f.Area == "data space map" && errors.Is(f.Err, check.ErrExtraCount):
				extra = append(extra, b)
			default:
				t.Fatalf("unexpected finding %v", f)
			}
		}
		slices.Sort(extra)
		slices.Sort(leafData)
		leafData = slices.Compact(leafData)
		if !slices.Equal(metaLeaks, []uint64{leaf}) || !slices.Equal(extra, leafData) {
			t.Fatalf("after the kernel wrote into leaf %d: leaked metadata %v, data counted too high %v; want the leaf alone and its %d data blocks",
				leaf, metaLeaks, extra, len(leafData))
		}
	})
}
