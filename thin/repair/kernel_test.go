package repair_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/oracle"
	"github.com/thinmeta/thinmeta/thin/repair"
)

// fillData writes a distinct pattern into every data block the clean
// pool maps, so that a volume reading another's block is noticed.
func fillData(t *testing.T, path string, p *pool) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bs := int64(p.rec.DataBlockSize) * 512
	if err := f.Truncate(int64(p.rec.NrDataBlocks) * bs); err != nil {
		t.Fatal(err)
	}
	done := map[uint64]bool{}
	for _, d := range p.truth.Devices {
		for _, m := range d.Mappings {
			if !done[m.Block] {
				done[m.Block] = true
				pat := bytes.Repeat([]byte(fmt.Sprintf("data block %d\n", m.Block)), 64)
				if _, err := f.WriteAt(pat, int64(m.Block)*bs); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// Repaired pools on the real dm-thin target (kernel oracle, one boot
// each): the pool with discards, a deletion and a damaged leaf,
// and a torn superblock over a damaged leaf. The kernel activates the
// repaired pool, reads mapped blocks of every device and the virtual
// blocks the report says came from older copies, writes one, and the
// oracle holds every read to the repaired metadata and the data image;
// the repaired metadata is held to the clean pool (compareTruth: every
// mapping kept is exact or reported), so what the kernel reads is the
// data each volume really had. Both thin_check generations accept what
// the kernel leaves.
func TestRepairKernel(t *testing.T) {
	oracle.Dir(t)
	for _, c := range []struct {
		name       string
		spec       string
		seed       uint64
		injections []gen.Injection
	}{
		{"discards and a damaged leaf", spec9301, 9301, []gen.Injection{{Kind: gen.NodeChecksum}}},
		{"a damaged leaf and a torn superblock", spec21, 21, []gen.Injection{{Kind: gen.NodeChecksum}, {Kind: gen.TornSuperblock}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := genPool(t, c.spec, c.seed)
			img, _ := p.damaged(t, c.injections...)
			out, rep := salvage(t, img, repair.Options{})
			o := compareTruth(t, p, out, rep)
			if o.stale != 0 || o.leaks != 0 || len(o.unreported) != 0 {
				t.Fatalf("salvage: %v", o)
			}
			dir := t.TempDir()
			meta, data := filepath.Join(dir, "meta.img"), filepath.Join(dir, "data.img")
			if err := os.WriteFile(meta, out, 0o644); err != nil {
				t.Fatal(err)
			}
			fillData(t, data, p)
			// The recovered virtual blocks (older copies), a few.
			var reads []string
			var writeDev uint64
			for _, d := range rep.Devices {
				for _, r := range d.Older {
					if len(reads) < 6 {
						reads = append(reads, fmt.Sprint(r.VBlock))
						writeDev = d.ID
					}
				}
			}
			if len(reads) == 0 {
				t.Fatal("nothing taken from older copies: the case does not test recovery")
			}
			res := oracle.Run(t, "verify", "--meta", meta, "--data", data, "--read-mapped", "12",
				"--read", strings.Join(reads, " "), "--write-dev", fmt.Sprint(writeDev), "--write-block", reads[0],
				"--quiet", "--no-xml", "--timeout", "500")
			if !res.OK() {
				t.Fatalf("kernel oracle: exit %d\n%s", res.Code, res.Output)
			}
			if lines := bytes.Split(bytes.TrimSpace(res.Output), []byte("\n")); len(lines) > 0 {
				t.Logf("oracle: %s (%v; read %v)", lines[len(lines)-1], o, reads)
			}
			b, err := os.ReadFile(meta)
			if err != nil {
				t.Fatal(err)
			}
			mustCheckClean(t, b)
			tptCheck(t, b)
		})
	}
}
