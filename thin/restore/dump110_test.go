package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin/restore"
)

var nrDataRE = regexp.MustCompile(`nr_data_blocks="(\d+)"`)

// thin_dump 1.1.0's own output restores: every clean kernel fixture and
// generated pools whose devices share subtrees (snapshots not rewritten,
// so 1.1.0 writes <def>/<ref>), each dumped by thin_dump 1.1.0 live and,
// where a metadata snapshot is held, with -m. The restored image must be
// clean for both generations of thin_check and thinmeta's, and dump with
// thin_dump 0.9.0 exactly as the original does (with -m, as the original's
// metadata snapshot does).
func TestRestoresThinDump110(t *testing.T) {
	tptest.NeedGen(t, tptest.V110, "thin_dump")
	type source struct {
		name string
		img  string
	}
	var srcs []source
	for _, f := range tptest.Fixtures(t) {
		if tptest.DamagedFixtures[tptest.Name(f)] {
			continue
		}
		srcs = append(srcs, source{tptest.Name(f), tptest.Unpack(t, f)})
	}
	dir := t.TempDir()
	for i, text := range []string{
		"thins=2 mappings=2000-4000 snapshots=4 shape=fan rewrite=0.02 metadata-snap=true",
		"thins=3 mappings=300-1500 snapshots=6 shape=tree rewrite=0.05 target=snapshot discard=0.05 deletions=1 metadata-snap=true",
		"thins=1 mappings=20000 run-length=4 snapshots=3 shape=chain rewrite=0 bulk=true",
	} {
		spec, err := gen.ParseSpec(text)
		if err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(dir, fmt.Sprintf("gen%d.img", i))
		if _, err := gen.GenerateFile(img, spec, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, source{fmt.Sprintf("gen%d", i), img})
	}

	var mu sync.Mutex
	defs := 0
	var wg sync.WaitGroup
	for _, src := range srcs {
		for _, snap := range []bool{false, true} {
			name := src.name
			var args []string
			if snap {
				name += " -m"
				args = []string{"-m"}
			}
			wg.Go(func() {
				t.Run(name, func(t *testing.T) {
					if snap && tptest.RunGen(t, tptest.V090, "thin_dump", "-m", src.img).Code != 0 {
						return // no metadata snapshot held
					}
					d := t.TempDir()
					xml110 := tptest.MustRunGen(t, tptest.V110, "thin_dump", append(args, src.img)...).Stdout
					var opts restore.Options
					if snap {
						// Both generations' -m dumps say nr_data_blocks="0"
						// (the snapshot's copy of the superblock has no
						// space-map roots; 1.1.0 ignores thin_dump's
						// --nr-data-blocks with -m). Restore refuses such
						// a dump with mappings, as both thin_restores do;
						// the data device's size is given to restore, as
						// a user must.
						if bytes.Contains(xml110, []byte("_mapping ")) {
							plain := filepath.Join(d, "plain.xml")
							writeFile(t, plain, xml110)
							refused := filepath.Join(d, "refused.img")
							sparse(t, refused, 1024)
							if _, err := restore.RestoreFile(context.Background(), plain, refused, restore.Options{}); err == nil {
								t.Fatal("restore accepted a -m dump with nr_data_blocks 0 and mappings")
							}
							for _, g := range tptest.Gens {
								if tptest.RunGen(t, g, "thin_restore", "-i", plain, "-o", refused).Code == 0 {
									t.Fatalf("thin_restore %s accepted a -m dump with nr_data_blocks 0", g)
								}
							}
						}
						m := nrDataRE.FindSubmatch(tptest.MustRunGen(t, tptest.V090, "thin_dump", src.img).Stdout)
						if m == nil {
							t.Fatal("no nr_data_blocks in the live dump")
						}
						n, err := strconv.ParseUint(string(m[1]), 10, 64)
						if err != nil {
							t.Fatal(err)
						}
						opts.NrDataBlocks = &n
						args = append(args, "--nr-data-blocks", string(m[1]))
					}
					want := tptest.MustRunGen(t, tptest.V090, "thin_dump", append(args, src.img)...).Stdout
					if bytes.Contains(xml110, []byte("<def ")) {
						mu.Lock()
						defs++
						mu.Unlock()
					}
					xml := filepath.Join(d, "dump110.xml")
					writeFile(t, xml, xml110)
					st, err := os.Stat(src.img)
					if err != nil {
						t.Fatal(err)
					}
					out := filepath.Join(d, "restored.img")
					sparse(t, out, uint64(st.Size())/4096)
					if _, err := restore.RestoreFile(context.Background(), xml, out, opts); err != nil {
						t.Fatalf("restoring thin_dump 1.1.0's output: %v", err)
					}
					thinCheckClean(t, out)
					got := tptest.MustRunGen(t, tptest.V090, "thin_dump", out).Stdout
					if !bytes.Equal(got, want) {
						t.Fatalf("thin_dump 0.9.0 of the restored image differs from the original's:\n%s", firstDiff(got, want))
					}
				})
			})
		}
	}
	wg.Wait()
	if defs < 3 {
		t.Errorf("only %d of thin_dump 1.1.0's dumps had shared subtrees (<def>); the test means to restore several", defs)
	}
}
