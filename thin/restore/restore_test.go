package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/restore"
)

// sparse creates a zero-filled file of blocks 4 KiB blocks.
func sparse(t testing.TB, path string, blocks uint64) {
	t.Helper()
	if err := genpool.CreateSparse(path, int64(blocks)*4096); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// thinCheckClean runs thin_check of both generations on img and fails the
// test unless both pass without complaint; our own checker must agree,
// with no leaks.
func thinCheckClean(t *testing.T, img string) {
	t.Helper()
	tptest.CheckClean(t, img)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	sum, _ := check.Device(context.Background(), f, st.Size(), check.Options{}, func(fd check.Finding) {
		t.Errorf("check: %s: %v", fd.Area, fd.Err)
	})
	if !sum.OK(false) || sum.LeakedMetadata != 0 || sum.LeakedData != 0 {
		t.Fatalf("check: %+v", sum)
	}
}

// compareWithThinRestore restores the XML file with thin_restore 0.9.0 and
// with restore.RestoreFile into files of blocks blocks each, and requires
// our image to be thin_check clean and to dump (with thin_dump) exactly as
// thin_restore's does. It returns our image's path and its dump.
func compareWithThinRestore(t *testing.T, xml string, blocks uint64) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	theirs, ours := filepath.Join(dir, "theirs.img"), filepath.Join(dir, "ours.img")
	sparse(t, theirs, blocks)
	sparse(t, ours, blocks)
	tptest.MustRun(t, "thin_restore", "-q", "-i", xml, "-o", theirs)
	if _, err := restore.RestoreFile(context.Background(), xml, ours, restore.Options{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	thinCheckClean(t, ours)
	want := tptest.MustRun(t, "thin_dump", theirs).Stdout
	got := tptest.MustRun(t, "thin_dump", ours).Stdout
	if !bytes.Equal(got, want) {
		t.Fatalf("thin_dump of our image differs from thin_dump of thin_restore's:\n%s", firstDiff(got, want))
	}
	return ours, got
}

// firstDiff shows the first differing line of two texts.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n got: %s\nwant: %s", i+1, a, b)
		}
	}
	return "(no difference)"
}

// Random pools of many shapes, from a handful of mappings to a million,
// with snapshots sharing data blocks, restore to images that thin_check
// accepts and that dump as thin_restore's images of the same XML do.
func TestGeneratedPoolsMatchThinRestore(t *testing.T) {
	specs := []genpool.Spec{
		{Devices: 1, MinMappings: 0, MaxMappings: 0},
		{Devices: 1, MinMappings: 1, MaxMappings: 1},
		{Devices: 3, MinMappings: 100, MaxMappings: 300, MeanRun: 1, Sparsity: 2},
		{Devices: 5, MinMappings: 250, MaxMappings: 260, MeanRun: 3, Sparsity: 0, SnapshotFraction: 0.5, RewriteFraction: 0.3},
		{Devices: 8, MinMappings: 500, MaxMappings: 5000, MeanRun: 8, Sparsity: 10, SnapshotFraction: 0.4, RewriteFraction: 0.2},
		{Devices: 20, MinMappings: 0, MaxMappings: 2000, MeanRun: 2, Sparsity: 1000, SnapshotFraction: 0.6, RewriteFraction: 0.05},
		{Devices: 4, MinMappings: 60000, MaxMappings: 70000, MeanRun: 16, Sparsity: 4, SnapshotFraction: 0.5, RewriteFraction: 0.2, Slack: 0.5},
	}
	if !testing.Short() {
		specs = append(specs, genpool.Spec{Devices: 10, MinMappings: 100000, MaxMappings: 100000,
			MeanRun: 4, Sparsity: 3, SnapshotFraction: 0.4, RewriteFraction: 0.2})
	}
	for i, spec := range specs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 99))
			p := genpool.Generate(rng, spec)
			xml := filepath.Join(t.TempDir(), "pool.xml")
			var buf bytes.Buffer
			if err := p.WriteXML(&buf); err != nil {
				t.Fatal(err)
			}
			writeFile(t, xml, buf.Bytes())
			_, dump := compareWithThinRestore(t, xml, p.MetadataBlocks())
			// genpool writes thin_dump's exact format.
			if !bytes.Equal(dump, buf.Bytes()) {
				t.Errorf("dump differs from the input:\n%s", firstDiff(dump, buf.Bytes()))
			}
		})
	}
}

// The XML that thin_dump 0.9.0 writes for every kernel-written fixture it
// can dump restores to an image that dumps the same as thin_restore's.
func TestFixturesMatchThinRestore(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		name := tptest.Name(f)
		t.Run(name, func(t *testing.T) {
			img := tptest.Unpack(t, f)
			r := tptest.Run(t, "thin_dump", img)
			if r.Code != 0 {
				if !tptest.DamagedFixtures[name] {
					t.Fatalf("thin_dump: exit %d: %s", r.Code, r.Stderr)
				}
				t.Skipf("thin_dump fails on this damaged fixture: %s", bytes.TrimSpace(r.Stderr))
			}
			xml := filepath.Join(t.TempDir(), name+".xml")
			writeFile(t, xml, r.Stdout)
			st, err := os.Stat(img)
			if err != nil {
				t.Fatal(err)
			}
			// thin_restore's insertions need more room than the kernel's
			// pool did.
			_, dump := compareWithThinRestore(t, xml, 4*uint64(st.Size())/4096)
			if !bytes.Equal(dump, r.Stdout) {
				t.Errorf("dump of the restored fixture differs from the fixture's:\n%s", firstDiff(dump, r.Stdout))
			}
		})
	}
}

// A device's mapping tree's leaves, in key order.
func leafBlocks(t *testing.T, p *thin.Pool, id uint64) []uint64 {
	t.Helper()
	root, err := p.Root(id)
	if err != nil {
		t.Fatal(err)
	}
	var ls []uint64
	err = p.DeviceTree(root).WalkLeaves(0, ^uint64(0), func(b uint64, _ btree.Node) error {
		ls = append(ls, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// xmlBuilder writes thin_dump 1.x XML with shared subtrees, and the same
// pool with every <ref> expanded, for thin_restore 0.9.0.
type xmlBuilder struct {
	shared, expanded strings.Builder
	defs             map[string][]mapping
	next             uint64 // next free data block
}

type mapping struct{ v, d uint64 }

func newXMLBuilder() *xmlBuilder {
	b := &xmlBuilder{defs: map[string][]mapping{}}
	return b
}

// run returns n mappings from virtual block v to fresh data blocks.
func (b *xmlBuilder) run(v uint64, n int) []mapping {
	ms := make([]mapping, n)
	for i := range ms {
		ms[i] = mapping{v + uint64(i), b.next}
		b.next++
	}
	return ms
}

func writeMappings(w *strings.Builder, ms []mapping) {
	for _, m := range ms {
		fmt.Fprintf(w, "    <single_mapping origin_block=\"%d\" data_block=\"%d\" time=\"0\"/>\n", m.v, m.d)
	}
}

func (b *xmlBuilder) def(name string, ms []mapping) {
	b.defs[name] = ms
	fmt.Fprintf(&b.shared, "  <def name=\"%s\">\n", name)
	writeMappings(&b.shared, ms)
	b.shared.WriteString("  </def>\n")
}

// device writes a device from parts: []mapping, or a string naming a def.
func (b *xmlBuilder) device(id int, parts ...any) {
	var n int
	for _, p := range parts {
		switch p := p.(type) {
		case []mapping:
			n += len(p)
		case string:
			n += len(b.defs[p])
		}
	}
	for _, w := range []*strings.Builder{&b.shared, &b.expanded} {
		fmt.Fprintf(w, "  <device dev_id=\"%d\" mapped_blocks=\"%d\" transaction=\"1\" creation_time=\"2\" snap_time=\"3\">\n", id, n)
	}
	for _, p := range parts {
		switch p := p.(type) {
		case []mapping:
			writeMappings(&b.shared, p)
			writeMappings(&b.expanded, p)
		case string:
			fmt.Fprintf(&b.shared, "    <ref name=\"%s\"/>\n", p)
			writeMappings(&b.expanded, b.defs[p])
		}
	}
	for _, w := range []*strings.Builder{&b.shared, &b.expanded} {
		w.WriteString("  </device>\n")
	}
}

func (b *xmlBuilder) documents() (shared, expanded []byte) {
	// thin_dump 1.x always writes the version; both documents name it.
	head := fmt.Sprintf("<superblock uuid=\"\" time=\"5\" transaction=\"7\" version=\"2\" data_block_size=\"128\" nr_data_blocks=\"%d\">\n", b.next+100)
	return []byte(head + b.shared.String() + "</superblock>\n"),
		[]byte(head + b.expanded.String() + "</superblock>\n")
}

// Shared subtrees of thin_dump 1.x: the leaves of a <def> are written once
// and every device that refers to it shares them (where the packing rules
// allow), the image is thin_check clean, and it dumps as thin_restore's
// image of the XML with the refs expanded.
func TestDefRefShared(t *testing.T) {
	b := newXMLBuilder()
	big := b.run(10000, 1000)   // four leaves
	small := b.run(20000, 50)   // under half a leaf
	one := b.run(30000, 200)    // one leaf
	unused := b.run(40000, 600) // referred to by no device
	tail := b.run(31000, 3)
	b.def("big", big)
	b.def("small", small)
	b.def("one", one)
	b.def("unused", unused)
	b.def("empty", nil)
	b.device(1, "big")
	b.device(2, b.run(0, 300), "big", b.run(11000, 200))
	b.device(3, b.run(0, 20), "big", "small", "one", tail)
	b.device(4, "small")
	b.device(5, "one", "empty")
	b.device(6, "big", "one")
	b.device(7, "big", b.run(11000, 400), "one", b.run(31000, 200))
	b.device(8)
	shared, expanded := b.documents()

	dir := t.TempDir()
	sharedXML, expandedXML := filepath.Join(dir, "shared.xml"), filepath.Join(dir, "expanded.xml")
	writeFile(t, sharedXML, shared)
	writeFile(t, expandedXML, expanded)
	const blocks = 4096
	theirs, ours := filepath.Join(dir, "theirs.img"), filepath.Join(dir, "ours.img")
	sparse(t, theirs, blocks)
	sparse(t, ours, blocks)
	tptest.MustRun(t, "thin_restore", "-q", "-i", expandedXML, "-o", theirs)
	st, err := restore.RestoreFile(context.Background(), sharedXML, ours, restore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	thinCheckClean(t, ours)
	want := tptest.MustRun(t, "thin_dump", theirs).Stdout
	got := tptest.MustRun(t, "thin_dump", ours).Stdout
	if !bytes.Equal(got, want) {
		t.Fatalf("dump differs from thin_restore's of the expanded XML:\n%s", firstDiff(got, want))
	}
	if st.Devices != 8 || st.Defs != 5 || st.SharedLeaves == 0 {
		t.Errorf("stats %+v", st)
	}

	p, err := thin.Open(ours, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msm, err := p.MetadataSpaceMap()
	if err != nil {
		t.Fatal(err)
	}
	leaves := map[uint64][]uint64{}
	users := map[uint64]int{} // leaf -> devices using it
	for id := uint64(1); id <= 8; id++ {
		leaves[id] = leafBlocks(t, p, id)
		for _, l := range leaves[id] {
			users[l]++
		}
	}
	for l, n := range users {
		c, err := msm.Count(l)
		if err != nil {
			t.Fatal(err)
		}
		if c != uint32(n) {
			t.Errorf("leaf %d: used by %d devices, count %d", l, n, c)
		}
	}
	// "big"'s four leaves are shared by devices 1, 2, 6 and 7, which
	// refer to it where a full leaf may start. Device 3 has 20 mappings
	// before it, too few for a leaf: it copies the first of big's leaves
	// and shares the other three.
	bigLeaves := leaves[1]
	if len(bigLeaves) != 4 {
		t.Fatalf("device 1 (all of big) has %d leaves, want 4", len(bigLeaves))
	}
	for _, id := range []uint64{2, 6, 7} {
		if !containsRun(leaves[id], bigLeaves) {
			t.Errorf("device %d does not share big's leaves %v: %v", id, bigLeaves, leaves[id])
		}
	}
	if containsRun(leaves[3], bigLeaves[:1]) || !containsRun(leaves[3], bigLeaves[1:]) {
		t.Errorf("device 3 should copy big's first leaf and share the rest %v: %v", bigLeaves, leaves[3])
	}
	// "one" is the whole of device 5 (its root); devices 6 and 7 share
	// it. Device 3 has too few mappings around it and copies it.
	if len(leaves[5]) != 1 {
		t.Fatalf("device 5 has %d leaves", len(leaves[5]))
	}
	for _, id := range []uint64{6, 7} {
		if !containsRun(leaves[id], leaves[5]) {
			t.Errorf("device %d does not share one's leaf %d: %v", id, leaves[5][0], leaves[id])
		}
	}
	// "small" is under half a leaf: only device 4, where it is the whole
	// tree, uses its leaf.
	if c, _ := msm.Count(leaves[4][0]); c != 1 {
		t.Errorf("small's leaf has count %d", c)
	}
}

// containsRun reports whether sub occurs as a contiguous run in s.
func containsRun(s, sub []uint64) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		ok := true
		for j := range sub {
			if s[i+j] != sub[j] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// Random 1.x XML with defs and refs in random places, sizes around the
// leaf-packing thresholds: always thin_check clean and dumping as
// thin_restore's image of the expansion.
func TestDefRefRandom(t *testing.T) {
	n := 12
	if testing.Short() {
		n = 4
	}
	for seed := range n {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 5))
			b := newXMLBuilder()
			sizes := []int{1, 10, 83, 84, 85, 125, 126, 127, 200, 251, 252, 253, 300, 377, 504, 505, 700, 1500}
			var names []string
			v := uint64(1 << 20)
			for i := range 3 + rng.IntN(5) {
				name := fmt.Sprint(i)
				b.def(name, b.run(v, sizes[rng.IntN(len(sizes))]))
				names = append(names, name)
				v += 1 << 16
			}
			for id := range 6 {
				// A device's parts must have increasing keys: own runs
				// below 1<<20, the defs in name order above, own runs
				// between them at their tops.
				var parts []any
				base := uint64(0)
				if rng.IntN(2) == 0 {
					parts = append(parts, b.run(base, sizes[rng.IntN(len(sizes))]))
				}
				for i, name := range names {
					if rng.IntN(2) == 0 {
						continue
					}
					parts = append(parts, name)
					if rng.IntN(2) == 0 {
						parts = append(parts, b.run(uint64(1<<20)+uint64(i)<<16+4000, rng.IntN(300)+1))
					}
				}
				b.device(id, parts...)
			}
			shared, expanded := b.documents()
			dir := t.TempDir()
			sharedXML, expandedXML := filepath.Join(dir, "shared.xml"), filepath.Join(dir, "expanded.xml")
			writeFile(t, sharedXML, shared)
			writeFile(t, expandedXML, expanded)
			theirs, ours := filepath.Join(dir, "theirs.img"), filepath.Join(dir, "ours.img")
			sparse(t, theirs, 8192)
			sparse(t, ours, 8192)
			tptest.MustRun(t, "thin_restore", "-q", "-i", expandedXML, "-o", theirs)
			if _, err := restore.RestoreFile(context.Background(), sharedXML, ours, restore.Options{}); err != nil {
				t.Fatal(err)
			}
			thinCheckClean(t, ours)
			want := tptest.MustRun(t, "thin_dump", theirs).Stdout
			got := tptest.MustRun(t, "thin_dump", ours).Stdout
			if !bytes.Equal(got, want) {
				t.Fatalf("dump differs from thin_restore's of the expanded XML:\n%s", firstDiff(got, want))
			}
		})
	}
}

// thin_restore's overrides replace the superblock's values.
func TestOverridesMatchThinRestore(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	p := genpool.Generate(rng, genpool.Spec{Devices: 3, MinMappings: 100, MaxMappings: 1000, MeanRun: 3, Sparsity: 2, SnapshotFraction: 0.3})
	dir := t.TempDir()
	xml := filepath.Join(dir, "pool.xml")
	var buf bytes.Buffer
	p.WriteXML(&buf)
	writeFile(t, xml, buf.Bytes())
	theirs, ours := filepath.Join(dir, "theirs.img"), filepath.Join(dir, "ours.img")
	sparse(t, theirs, 2048)
	sparse(t, ours, 2048)
	tid, bs, nr := uint64(12345), uint32(1024), p.NrDataBlocks+77777
	tptest.MustRun(t, "thin_restore", "-q", "-i", xml, "-o", theirs,
		"--transaction-id", fmt.Sprint(tid), "--data-block-size", fmt.Sprint(bs), "--nr-data-blocks", fmt.Sprint(nr))
	if _, err := restore.RestoreFile(context.Background(), xml, ours, restore.Options{TransactionID: &tid, DataBlockSize: &bs, NrDataBlocks: &nr}); err != nil {
		t.Fatal(err)
	}
	thinCheckClean(t, ours)
	want := tptest.MustRun(t, "thin_dump", theirs).Stdout
	got := tptest.MustRun(t, "thin_dump", ours).Stdout
	if !bytes.Equal(got, want) {
		t.Fatalf("dump differs:\n%s", firstDiff(got, want))
	}
}

// A metadata device too small for the pool fails with an error naming
// the line being restored, and leaves no valid superblock.
func TestMetadataTooSmall(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	p := genpool.Generate(rng, genpool.Spec{Devices: 2, MinMappings: 20000, MaxMappings: 20000, MeanRun: 3})
	var buf bytes.Buffer
	p.WriteXML(&buf)
	dir := t.TempDir()
	img := filepath.Join(dir, "small.img")
	sparse(t, img, 64)
	xml := filepath.Join(dir, "pool.xml")
	writeFile(t, xml, buf.Bytes())
	_, err := restore.RestoreFile(context.Background(), xml, img, restore.Options{})
	var be *restore.BuildError
	if !errors.As(err, &be) || be.Line < 2 || !strings.Contains(err.Error(), "too small") {
		t.Fatalf("error %v, want a BuildError naming a line and 'too small'", err)
	}
	if _, err := thin.Open(img, nil); err == nil {
		t.Error("a failed restore left a pool that opens")
	}
}

// XML without a version, and with mapped_blocks that do not match the
// mappings: thin_restore 0.9.0 writes version 1 and counts mapped_blocks
// itself; our image dumps the same.
func TestVersionAndMappedBlocksAsThinRestore(t *testing.T) {
	xml := `<superblock uuid="" time="3" transaction="9" data_block_size="128" nr_data_blocks="500">
  <device dev_id="4" mapped_blocks="77" transaction="1" creation_time="2" snap_time="3">
    <range_mapping origin_begin="0" data_begin="10" length="20" time="1"/>
    <single_mapping origin_block="40" data_block="99" time="3"/>
  </device>
  <device dev_id="6" mapped_blocks="0" transaction="2" creation_time="3" snap_time="3">
    <single_mapping origin_block="1" data_block="200" time="3"/>
  </device>
</superblock>
`
	path := filepath.Join(t.TempDir(), "pool.xml")
	writeFile(t, path, []byte(xml))
	img, dumped := compareWithThinRestore(t, path, 1024)
	thinCheckClean(t, img)
	if !bytes.Contains(dumped, []byte(`version="1"`)) || !bytes.Contains(dumped, []byte(`dev_id="4" mapped_blocks="21"`)) {
		t.Fatalf("unexpected dump:\n%s", dumped)
	}
}
