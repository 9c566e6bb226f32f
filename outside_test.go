package thinmeta_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/thinmeta/thinmeta/internal/tptest"
)

// TestOutsideModule is the library as a new user meets it: a module of its
// own (testdata/outside/main.go) that requires this one through a replace
// directive and uses only the public API. It is built once, offline
// (GOPROXY=off: the module cache has the dependencies), and each scenario's
// outcome is held to facts the test knows on its own: the counts it asked
// for, and thin_dump and thin_check of both generations on the files the
// program leaves behind.
func TestOutsideModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	mod := t.TempDir()
	src, err := os.ReadFile(filepath.Join(root, "testdata", "outside", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	gomod := fmt.Sprintf("module example.com/outside\n\ngo 1.26.0\n\nrequire github.com/thinmeta/thinmeta v0.0.0\n\nreplace github.com/thinmeta/thinmeta => %s\n", root)
	for name, b := range map[string][]byte{"main.go": src, "go.sum": sum, "go.mod": []byte(gomod)} {
		if err := os.WriteFile(filepath.Join(mod, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(mod, "outside")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = mod
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the outside module: %v\n%s", err, out)
	}
	run := func(t *testing.T, facts any, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("outside %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		if err := json.Unmarshal(out, facts); err != nil {
			t.Fatalf("outside %s: %v\n%s", args[0], err, out)
		}
	}

	t.Run("extended", func(t *testing.T) {
		dir := t.TempDir()
		var f struct {
			Count, Enumerated  uint64
			WriterCount        uint64   `json:"writer_count"`
			EnumeratedDisagree int      `json:"enumerated_disagree"`
			FindVol0500        []uint64 `json:"find_vol_0500"`
			FindDeleted        int      `json:"find_deleted"`
			Reconcile          struct {
				Orphans, Missing, Mismatches int
				Matched                      uint64
				Clean                        bool
			}
			Manager map[string]uint64
		}
		run(t, &f, "extended", dir)
		// 1,000 thins, 100 snapshots, 50 deleted.
		const want = 1000 + 100 - 50
		if f.Count != want || f.Enumerated != want || f.EnumeratedDisagree != 0 || len(f.Manager) != want {
			t.Errorf("count %d, enumerated %d (%d disagree with the manager), manager %d; want %d",
				f.Count, f.Enumerated, f.EnumeratedDisagree, len(f.Manager), want)
		}
		if !slices.Equal(f.FindVol0500, []uint64{f.Manager["vol-0500"]}) || f.FindDeleted != 0 {
			t.Errorf("Find vol-0500 = %v (want [%d]), Find of a deleted name found %d",
				f.FindVol0500, f.Manager["vol-0500"], f.FindDeleted)
		}
		r := f.Reconcile
		if r.Orphans != 1 || r.Missing != 1 || r.Mismatches != 1 || r.Matched != want-2 || r.Clean {
			t.Errorf("Reconcile: %+v, want 1 orphan, 1 missing, 1 mismatch, %d matched", r, want-2)
		}
		// The pool, downgraded to stock, as thin_dump sees it.
		path := filepath.Join(dir, "ext.meta")
		tptest.CheckClean(t, path)
		for _, g := range tptest.Gens {
			devs := dumpDevices(t, g, path)
			if len(devs) != want {
				t.Fatalf("thin_dump %s: %d devices, want %d", g, len(devs), want)
			}
			for name, id := range f.Manager {
				d, ok := devs[id]
				var origin uint64
				switch {
				case !ok:
					t.Fatalf("thin_dump %s: no device %d (%s)", g, id, name)
				case strings.HasPrefix(name, "snap-"):
					origin = f.Manager["vol-"+strings.TrimPrefix(name, "snap-")]
				}
				wantMapped, n := 0, 0
				if _, err := fmt.Sscanf(name[len(name)-4:], "%d", &n); err != nil {
					t.Fatal(err)
				}
				if n < 100 {
					wantMapped = 4
				}
				if d.mapped != uint64(wantMapped) || len(d.blocks) != wantMapped {
					t.Errorf("thin_dump %s: %s (%d) maps %d (details %d), want %d", g, name, id, len(d.blocks), d.mapped, wantMapped)
				}
				if origin != 0 && !maps(d.blocks, devs[origin].blocks) {
					t.Errorf("thin_dump %s: snapshot %s does not share its origin's blocks", g, name)
				}
			}
		}
	})

	t.Run("views", func(t *testing.T) {
		var f struct {
			ViewThins    int    `json:"view_thins"`
			ViewMappings int    `json:"view_mappings"`
			WriterCount  uint64 `json:"writer_count"`
			FreshCount   uint64 `json:"fresh_count"`
			FreeHeld     uint64 `json:"free_held"`
			FreeClosed   uint64 `json:"free_closed"`
		}
		run(t, &f, "views", t.TempDir())
		// 6 thins of 8 mappings when the views were taken; 200 commits
		// each add two thins (deletes are recreated).
		if f.ViewThins != 6 || f.ViewMappings != 8 {
			t.Errorf("views held %d thins, %d mappings; want 6 and 8", f.ViewThins, f.ViewMappings)
		}
		if f.WriterCount != 406 || f.FreshCount != 406 {
			t.Errorf("after 200 commits: writer %d thins, a new view %d; want 406", f.WriterCount, f.FreshCount)
		}
		if f.FreeClosed <= f.FreeHeld {
			t.Errorf("closing the views gave no metadata blocks back: %d free held, %d closed", f.FreeHeld, f.FreeClosed)
		}
	})

	t.Run("batch", func(t *testing.T) {
		dir := t.TempDir()
		var f struct {
			AbortedDevices   []uint64 `json:"aborted_devices"`
			CommittedDevices []uint64 `json:"committed_devices"`
			SnapshotDevices  []uint64 `json:"snapshot_devices"`
			ViewDevices      []uint64 `json:"view_devices"`
			AbortedSnapshot  bool     `json:"aborted_snapshot"`
		}
		run(t, &f, "batch", dir)
		if !slices.Equal(f.AbortedDevices, []uint64{1}) || f.AbortedSnapshot ||
			!slices.Equal(f.CommittedDevices, []uint64{1, 2, 3}) ||
			!slices.Equal(f.SnapshotDevices, []uint64{1, 2}) ||
			!slices.Equal(f.ViewDevices, []uint64{1, 2, 3, 4}) {
			t.Errorf("program saw %+v", f)
		}
		// The dump of Metadata.View, made before the commit, is what
		// thin_dump 0.9.0 prints of the commit.
		view, err := os.ReadFile(filepath.Join(dir, "view.xml"))
		if err != nil {
			t.Fatal(err)
		}
		want := tptest.MustRunGen(t, tptest.V090, "thin_dump", filepath.Join(dir, "batch.meta")).Stdout
		if !bytes.Equal(view, want) {
			t.Errorf("dump of Metadata.View differs from thin_dump 0.9.0 of its commit:\n%s\nthin_dump:\n%s", view, want)
		}
		aborted, final := filepath.Join(dir, "aborted.meta"), filepath.Join(dir, "batch.meta")
		tptest.CheckClean(t, aborted)
		tptest.CheckClean(t, final)
		for _, g := range tptest.Gens {
			if ids := sortedIDs(dumpDevices(t, g, aborted)); !slices.Equal(ids, []uint64{1}) {
				t.Errorf("thin_dump %s after the aborted batch: devices %v, want [1]", g, ids)
			}
			if r := tptest.RunGen(t, g, "thin_dump", "-m", aborted); r.Code == 0 {
				t.Errorf("thin_dump -m %s after the aborted batch found a metadata snapshot", g)
			}
			if ids := sortedIDs(dumpDevices(t, g, final)); !slices.Equal(ids, []uint64{1, 2, 3, 4}) {
				t.Errorf("thin_dump %s after the batch and thin 4: devices %v, want [1 2 3 4]", g, ids)
			}
			snap := dumpDevices(t, g, final, "-m")
			if ids := sortedIDs(snap); !slices.Equal(ids, []uint64{1, 2}) || len(snap[2].blocks) != 5 {
				t.Errorf("thin_dump -m %s: devices %v, want [1 2] (2 with 5 mappings)", g, ids)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		dir := t.TempDir()
		var f struct {
			FreeDataAfter   uint64 `json:"free_data_after"`
			NoDataSpace     string `json:"no_data_space"`
			NoMetadataSpace string `json:"no_metadata_space"`
		}
		run(t, &f, "errors", dir)
		for _, msg := range []string{f.NoDataSpace, f.NoMetadataSpace} {
			if strings.Count(msg, "thinmeta:") > 1 {
				t.Errorf("prefix doubled: %q", msg)
			}
		}
		// The data device of 16 blocks: the 16 blocks mapped before it
		// filled up were committed.
		data := filepath.Join(dir, "small-data.meta")
		tptest.CheckClean(t, data)
		for _, g := range tptest.Gens {
			if d := dumpDevices(t, g, data); len(d) != 1 || len(d[1].blocks) != 16 || f.FreeDataAfter != 0 {
				t.Errorf("thin_dump %s of the full data device: %v, free %d; want device 1 with 16 mappings, none free", g, d, f.FreeDataAfter)
			}
		}
		meta := filepath.Join(dir, "small-meta.meta")
		tptest.CheckClean(t, meta)
		for _, g := range tptest.Gens {
			if ids := sortedIDs(dumpDevices(t, g, meta)); !slices.Equal(ids, []uint64{0, 1049}) {
				t.Errorf("thin_dump %s of the small metadata device: %v, want [0 1049]", g, ids)
			}
		}
	})

	// One fixture written by the kernel, as thin_metadata_pack made it,
	// unpacked by thin_metadata_unpack 1.1.0 and compressed by lz4(1).
	img := func(t *testing.T) (dir, packed, plain, lz4 string) {
		dir = t.TempDir()
		packed = filepath.Join(tptest.FixturesDir(t), "tmeta.pack")
		plain = filepath.Join(dir, "tmeta.img")
		tptest.MustRunGen(t, tptest.V110, "thin_metadata_unpack", "-i", packed, "-o", plain)
		lz4 = filepath.Join(dir, "tmeta.lz4")
		if out, err := exec.Command("lz4", "-q", plain, lz4).CombinedOutput(); err != nil {
			if os.Getenv("CI") == "" {
				t.Skipf("lz4: %v", err)
			}
			t.Fatalf("lz4: %v\n%s", err, out)
		}
		return
	}

	t.Run("opener", func(t *testing.T) {
		_, packed, plain, lz4 := img(t)
		var f struct {
			Devices []struct{ ID, Mapped, Mappings uint64 }
			Opened  int
		}
		run(t, &f, "opener", "-", packed, lz4, plain)
		for _, g := range tptest.Gens {
			want := dumpDevices(t, g, plain)
			if len(f.Devices) != len(want) || f.Opened != 3 {
				t.Fatalf("%d devices (of %d files), thin_dump %s has %d", len(f.Devices), f.Opened, g, len(want))
			}
			for _, d := range f.Devices {
				w, ok := want[d.ID]
				if !ok || d.Mapped != w.mapped || d.Mappings != uint64(len(w.blocks)) {
					t.Errorf("device %d: %d mapped, %d mappings; thin_dump %s: %d, %d", d.ID, d.Mapped, d.Mappings, g, w.mapped, len(w.blocks))
				}
			}
		}
	})

	t.Run("bad", func(t *testing.T) {
		_, packed, plain, lz4 := img(t)
		dir := t.TempDir()
		head := func(from, to string, n int) {
			b, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, to), b[:n], 0o644); err != nil {
				t.Fatal(err)
			}
		}
		garbage := make([]byte, 64<<10)
		for i := range garbage {
			garbage[i] = byte(i*7919 + i/13)
		}
		for name, b := range map[string][]byte{"garbage": garbage, "empty": nil, "zeros": make([]byte, 64<<10)} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		head(plain, "trunc.img", 3*4096)
		head(packed, "trunc.pack", 30000)
		head(lz4, "trunc.lz4", 300000)
		if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, "dir"), 0o755); err != nil {
			t.Fatal(err)
		}
		var f struct{ Kinds map[string]string }
		run(t, &f, "bad", dir)
		want := map[string]string{
			"garbage": "CorruptError", "empty": "CorruptError", "zeros": "CorruptError",
			"trunc.img": "CorruptError", "trunc.pack": "pack.ErrFormat", "trunc.lz4": "ErrLZ4",
			"fifo": "ErrNotDevice", "dir": "ErrNotDevice",
		}
		for name, kind := range want {
			if f.Kinds[name] != kind {
				t.Errorf("%s: %s, want %s", name, f.Kinds[name], kind)
			}
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		_, _, plain, _ := img(t)
		var f struct{ Devices int }
		run(t, &f, "concurrent", "-", plain)
		if want := len(dumpDevices(t, tptest.V090, plain)); f.Devices != want {
			t.Errorf("%d devices, thin_dump has %d", f.Devices, want)
		}
	})
}

type dumpedDevice struct {
	mapped uint64
	blocks map[uint64]uint64 // virtual block -> data block
}

// dumpDevices runs thin_dump of generation g and returns its devices.
func dumpDevices(t *testing.T, g tptest.Gen, path string, args ...string) map[uint64]dumpedDevice {
	t.Helper()
	r := tptest.MustRunGen(t, g, "thin_dump", append(args, path)...)
	// 1.1.0 writes leaves shared between devices once, as <def>, and
	// each device that has them as <ref>; origins stay absolute.
	type mappings struct {
		Single []struct {
			Origin uint64 `xml:"origin_block,attr"`
			Data   uint64 `xml:"data_block,attr"`
		} `xml:"single_mapping"`
		Range []struct {
			Origin uint64 `xml:"origin_begin,attr"`
			Data   uint64 `xml:"data_begin,attr"`
			Length uint64 `xml:"length,attr"`
		} `xml:"range_mapping"`
		Ref []struct {
			Name string `xml:"name,attr"`
		} `xml:"ref"`
	}
	var doc struct {
		Defs []struct {
			Name string `xml:"name,attr"`
			mappings
		} `xml:"def"`
		Devices []struct {
			ID     uint64 `xml:"dev_id,attr"`
			Mapped uint64 `xml:"mapped_blocks,attr"`
			mappings
		} `xml:"device"`
	}
	if err := xml.Unmarshal(r.Stdout, &doc); err != nil {
		t.Fatalf("thin_dump %s %s: %v", g, path, err)
	}
	defs := map[string]mappings{}
	for _, d := range doc.Defs {
		defs[d.Name] = d.mappings
	}
	var add func(blocks map[uint64]uint64, m mappings)
	add = func(blocks map[uint64]uint64, m mappings) {
		for _, s := range m.Single {
			blocks[s.Origin] = s.Data
		}
		for _, r := range m.Range {
			for i := range r.Length {
				blocks[r.Origin+i] = r.Data + i
			}
		}
		for _, ref := range m.Ref {
			def, ok := defs[ref.Name]
			if !ok {
				t.Fatalf("thin_dump %s %s: <ref> to no <def> %q", g, path, ref.Name)
			}
			add(blocks, def)
		}
	}
	out := map[uint64]dumpedDevice{}
	for _, d := range doc.Devices {
		dd := dumpedDevice{mapped: d.Mapped, blocks: map[uint64]uint64{}}
		add(dd.blocks, d.mappings)
		out[d.ID] = dd
	}
	return out
}

func sortedIDs(devs map[uint64]dumpedDevice) []uint64 {
	var ids []uint64
	for id := range devs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func maps(a, b map[uint64]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
