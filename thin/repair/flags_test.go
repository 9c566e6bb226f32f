package repair_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/repair"
	"github.com/thinmeta/thinmeta/transaction"
)

// Salvage reads a node whose flags word has another bit beside its type
// bit by the type bit, as the kernel and thin_check 0.9.0 do, although
// everything else refuses it (btree.ErrNodeFlags): the repaired pool holds
// every mapping of the clean one. Block 18 of the fixture is an internal
// node shared by several devices' trees, block 19 one of its leaves.
func TestSalvageReadsNodeFlagsByType(t *testing.T) {
	clean := tptest.Unpack(t, filepath.Join(tptest.FixturesDir(t), "tmeta_with_shared_internal_root.pack"))
	want := dumpRepair(t, clean)
	for _, b := range []uint64{18, 19} {
		for _, bit := range []uint32{4, 1 << 31} {
			data, err := os.ReadFile(clean)
			if err != nil {
				t.Fatal(err)
			}
			blk := data[b*transaction.BlockSize : (b+1)*transaction.BlockSize]
			n := btree.Node(blk)
			n.SetFlags(n.Flags() | bit)
			transaction.Seal(blk, b, transaction.SaltNode)
			if err := btree.Validator.Validate(blk, b); err == nil {
				t.Fatalf("block %d with flags %#x passes the validator", b, n.Flags())
			}
			img := filepath.Join(t.TempDir(), "flags.img")
			if err := os.WriteFile(img, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if got := dumpRepair(t, img); !bytes.Equal(got, want) {
				t.Errorf("block %d, flags |= %#x: the salvaged dump differs from the clean pool's", b, bit)
			}
		}
	}
}

func dumpRepair(t *testing.T, img string) []byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	var out bytes.Buffer
	if _, err := repair.DumpRepair(context.Background(), &out, f, st.Size(), repair.Options{}, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
