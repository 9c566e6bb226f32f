package dump_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// A damaged leaf in one device of many: devices are formatted concurrently,
// yet the output up to the damage, and the failure, are thin_dump's.
func TestDumpDamagedLeafAmongMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 3))
	gp := genpool.Generate(rng, genpool.Spec{Devices: 12, MinMappings: 3000, MaxMappings: 9000, MeanRun: 2, Sparsity: 3,
		SnapshotFraction: 0.3, RewriteFraction: 0.3})
	img, _ := genpool.Restore(t, gp)
	for _, which := range []int{0, 5, 11} {
		t.Run(fmt.Sprint(which), func(t *testing.T) {
			id := uint64(gp.Devices[which].ID)
			bad := damageLeaf(t, img, id, rng)
			compare(t, bad, false, dump.Options{})
			compare(t, bad, false, dump.Options{Format: dump.HumanReadable}, "-f", "human_readable")
		})
	}
}

// damageLeaf copies img and garbles one leaf (chosen by rng) of device
// id's mapping tree in the copy.
func damageLeaf(t *testing.T, img string, id uint64, rng *rand.Rand) string {
	t.Helper()
	p, err := thin.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	root, err := p.Root(id)
	if err != nil {
		t.Fatal(err)
	}
	var leaves []uint64
	if err := p.DeviceTree(root).WalkLeaves(0, math.MaxUint64, func(b uint64, _ btree.Node) error {
		leaves = append(leaves, b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p.Close()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	b := leaves[rng.IntN(len(leaves))]
	copy(data[b*4096+600:], "garbage in a mapping leaf")
	bad := t.TempDir() + "/bad.img"
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return bad
}
