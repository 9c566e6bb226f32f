package gen_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/oracle"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin/check"
)

// fillData writes a distinct pattern into every data block the record
// says is mapped, so that the kernel reading a wrong block is noticed.
func fillData(t *testing.T, path string, rec *gen.Record) {
	t.Helper()
	st, err := rec.Final()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bs := int64(rec.DataBlockSize) * 512
	if err := f.Truncate(int64(rec.NrDataBlocks) * bs); err != nil {
		t.Fatal(err)
	}
	done := map[uint64]bool{}
	for _, d := range st.Devices {
		for _, m := range d.Mappings {
			if done[m.Block] {
				continue
			}
			done[m.Block] = true
			pat := bytes.Repeat([]byte(fmt.Sprintf("gen data block %d\n", m.Block)), 64)
			if _, err := f.WriteAt(pat, int64(m.Block)*bs); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A generated pool with snapshot chains and fans, shared subtrees (counts
// of 3 and more in both overflow trees), discards, deletions and a held
// metadata snapshot is activated by the real dm-thin target: it reads
// exactly the data blocks the record maps, writes to a block the snapshot
// shares (copy-on-write), and leaves metadata that thin_check and our
// check accept.
func TestKernelAcceptsGeneratedPool(t *testing.T) {
	oracle.Dir(t)
	s := spec(t, "thins=2 mappings=1500-3000 snapshots=5 shape=tree rewrite=0.01 discard=0.02 deletions=1 metadata-snap=true")
	meta, rec := generate(t, s, 21)
	assertOverflow(t, meta)
	tptest.CheckClean(t, meta)
	data := filepath.Join(t.TempDir(), "data.img")
	fillData(t, data, rec)
	// Write to a snapshot's block that it still shares.
	st, err := rec.Final()
	if err != nil {
		t.Fatal(err)
	}
	owner := map[uint64]int{}
	for _, d := range st.Devices {
		for _, m := range d.Mappings {
			owner[m.Block]++
		}
	}
	var dev, vblock uint64
	found := false
	for _, d := range st.Devices {
		if d.Details.CreationTime == 0 {
			continue // a thin, not a snapshot
		}
		for _, m := range d.Mappings {
			if owner[m.Block] > 1 {
				dev, vblock, found = d.ID, m.VBlock, true
				break
			}
		}
		if found {
			break
		}
	}
	if !found {
		t.Fatal("no snapshot shares a block")
	}
	res := oracle.Run(t, "verify", "--meta", meta, "--data", data, "--read-mapped", "32",
		"--write-dev", strconv.FormatUint(dev, 10), "--write-block", strconv.FormatUint(vblock, 10),
		"--quiet", "--no-xml", "--timeout", "500")
	if !res.OK() {
		t.Fatalf("kernel oracle: exit %d\n%s", res.Code, res.Output)
	}
	if lines := bytes.Split(bytes.TrimSpace(res.Output), []byte("\n")); len(lines) > 0 {
		t.Logf("oracle: %s (wrote device %d block %d)", lines[len(lines)-1], dev, vblock)
	}
	fs := []check.Finding{}
	if sum := checkImage(t, meta, &fs); !sum.OK(false) || len(fs) > 0 {
		t.Fatalf("our check after the kernel: %v", fs)
	}
	tptest.CheckClean(t, meta)
	tptest.CheckClean(t, meta, "-m")
}
