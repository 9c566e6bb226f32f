package gen_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/opscript"
	"github.com/thinmeta/thinmeta/internal/opscript/oprun"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// A generator's record, printed as a script of the tests' operation
// language, rebuilds the pool: replayed by the script runner, its dump
// (and its metadata snapshot's) equals the record's own replay
// (Record.Final, an independent model) and the dump of the generated
// image; for a stock pool thin_dump of the replay agrees too.
func TestRecordScript(t *testing.T) {
	for _, c := range []struct{ spec, ops string }{
		{"thins=3 mappings=40 run-length=3 sparsity=0.3 snapshots=2 rewrite=0.3 discard=0.2 deletions=1 metadata-snap=true",
			"create_thin create_snap map_to unmap delete set_transaction_id reserve_metadata_snap commit"},
		{"metadata-format=extended blob-size=16 index-bytes=4 thins=4 mappings=20 snapshots=1 deletions=1",
			"create_thin create_snap map_to delete commit"},
	} {
		spec := c.spec
		s, err := gen.ParseSpec(spec)
		if err != nil {
			t.Fatal(err)
		}
		dev := memdev.New(8 << 20)
		rec, err := gen.Generate(dev, dev.Size(), s, 3)
		if err != nil {
			t.Fatal(err)
		}
		script := rec.Script()
		for _, name := range strings.Fields(c.ops) {
			if !slices.ContainsFunc(script, func(o opscript.Op) bool { return o.Name == name }) {
				t.Fatalf("%s: no %s in the script:\n%s", spec, name, script)
			}
		}
		r := oprun.New(t)
		if out := r.Run(script.String()); out != "" {
			t.Fatalf("%s: the replay printed\n%s\nscript:\n%s", spec, out, script)
		}
		p, err := thin.NewPool(bytes.NewReader(dev.Bytes()), dev.Size())
		if err != nil {
			t.Fatal(err)
		}
		var generated, model bytes.Buffer
		if err := dump.Dump(context.Background(), &generated, p, dump.Options{}); err != nil {
			t.Fatal(err)
		}
		final, err := rec.Final()
		if err != nil {
			t.Fatal(err)
		}
		if err := final.WriteXML(&model); err != nil {
			t.Fatal(err)
		}
		replayed, err := r.Exec(opscript.Op{Name: "dump"})
		if err != nil {
			t.Fatal(err)
		}
		if replayed != model.String() || replayed != generated.String() {
			t.Fatalf("%s: the replayed script dumps\n%s\nthe record's model\n%s\nthe generated pool\n%s", spec, replayed, model.String(), generated.String())
		}
		if snap, _ := rec.MetadataSnapshot(); snap != nil {
			var want bytes.Buffer
			if err := snap.WriteXML(&want); err != nil {
				t.Fatal(err)
			}
			got, err := r.Exec(opscript.Op{Name: "dump", Args: []string{"-m"}})
			if err != nil || got != want.String() {
				t.Fatalf("%s: the replay's metadata snapshot (%v):\n%s\nthe model:\n%s", spec, err, got, want.String())
			}
		}
		if s.Variant != thin.Extended {
			if got := r.Run("thin_dump"); got != model.String() {
				t.Fatalf("%s: thin_dump of the replay:\n%s\nthe model:\n%s", spec, got, model.String())
			}
		}
		if !strings.HasPrefix(script.String(), "format ") {
			t.Fatalf("the script does not start with format:\n%s", script)
		}
	}
}
