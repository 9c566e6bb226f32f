package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
)

var (
	superblockTag = regexp.MustCompile(`(?m)^(<superblock [^>]*)>$`)
	deviceTag     = regexp.MustCompile(`(?m)^(  <device dev_id="(\d+)"[^>]*)>$`)
)

// extendedXML turns thin_dump's XML of a stock pool into the extended form
// its upgrade must dump as: the superblock gains blob_size, index_bytes
// and next_thin_id (one above the largest id), each device an empty blob.
func extendedXML(t *testing.T, stock []byte, blobSize, indexBytes int) []byte {
	t.Helper()
	next := uint64(0)
	for _, m := range deviceTag.FindAllSubmatch(stock, -1) {
		id, err := strconv.ParseUint(string(m[2]), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		next = max(next, id+1)
	}
	out := superblockTag.ReplaceAll(stock, []byte(fmt.Sprintf(`$1 blob_size="%d" index_bytes="%d" next_thin_id="%d">`, blobSize, indexBytes, next)))
	return deviceTag.ReplaceAll(out, []byte(`$1 blob="">`))
}

// roots returns the top level of the mapping tree: each device's root.
func roots(t *testing.T, img string) []thin.DeviceRoot {
	t.Helper()
	p, err := thin.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var rs []thin.DeviceRoot
	for r, err := range p.DeviceRoots() {
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

func ourDump(t *testing.T, img string) []byte {
	t.Helper()
	p, err := thin.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var b bytes.Buffer
	if err := dump.Dump(context.Background(), &b, p, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// upgradeDowngrade upgrades the stock pool in img, names every thin, and
// downgrades it again: the upgrade dumps as thin_dump's XML of the stock
// pool in extended form, the downgrade is byte-identical in thin_dump's
// output and passes thin_check, and neither touches the top level of the
// mapping tree, so every mapping tree is the same block, shared as before.
func upgradeDowngrade(t *testing.T, img string) {
	stock := tptest.MustRun(t, "thin_dump", img).Stdout
	before := roots(t, img)
	md, err := thin.OpenMetadata(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	if err := blob.Upgrade(md, 256, 16); err != nil {
		t.Fatal(err)
	}
	if got, want := ourDump(t, img), extendedXML(t, stock, 256, 16); !bytes.Equal(got, want) {
		t.Fatalf("dump of the upgraded pool:\n%s\nwant:\n%s", got, want)
	}
	tptest.CheckRejects(t, img)
	if got := roots(t, img); !slices.Equal(got, before) {
		t.Fatalf("the upgrade changed the mapping tree's top level:\n%v\n%v", got, before)
	}
	// Name every thin.
	var ids []uint64
	for _, r := range before {
		ids = append(ids, r.ID)
		if err := md.SetBlob(r.ID, append([]byte(fmt.Sprintf("thin-%d", r.ID)), make([]byte, 256-len(fmt.Sprintf("thin-%d", r.ID)))...)); err != nil {
			t.Fatal(err)
		}
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := blob.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Count() != uint64(len(ids)) {
		t.Fatalf("count %d, %d thins", p.Count(), len(ids))
	}
	for _, id := range ids {
		var found []uint64
		for th, err := range p.Find([]byte(fmt.Sprintf("thin-%d", id))) {
			if err != nil {
				t.Fatal(err)
			}
			found = append(found, th.ID)
		}
		if !slices.Equal(found, []uint64{id}) {
			t.Fatalf("Find(thin-%d) = %v", id, found)
		}
	}
	p.Close()

	changes, err := blob.Downgrade(md, false)
	if err != nil || len(changes) != 0 {
		t.Fatalf("downgrade: %v %v", changes, err)
	}
	tptest.CheckClean(t, img)
	if got := tptest.MustRun(t, "thin_dump", img).Stdout; !bytes.Equal(got, stock) {
		t.Fatalf("thin_dump after upgrade and downgrade:\n%s\nbefore:\n%s", got, stock)
	}
	if got := roots(t, img); !slices.Equal(got, before) {
		t.Fatal("the downgrade changed the mapping tree's top level")
	}
}

// Kernel-written pools (snapshots sharing internal nodes and leaves,
// refcounts up to 11, deleted snapshots, reused ids) survive an upgrade
// and a downgrade: thin_dump prints the same pool and thin_check accepts
// it. A held metadata snapshot refuses the upgrade and changes nothing.
func TestUpgradeDowngradeFixtures(t *testing.T) {
	for _, pack := range tptest.Fixtures(t) {
		name := tptest.Name(pack)
		if tptest.DamagedFixtures[name] {
			continue
		}
		t.Run(name, func(t *testing.T) {
			img := tptest.Unpack(t, pack)
			md, err := thin.OpenMetadata(img, nil)
			if err != nil {
				t.Fatal(err)
			}
			if md.Superblock().HeldRoot != 0 {
				orig, _ := os.ReadFile(img)
				if err := blob.Upgrade(md, 256, 16); !errors.Is(err, thin.ErrSnapshotHeld) {
					t.Fatalf("upgrade with a metadata snapshot held: %v", err)
				}
				if now, _ := os.ReadFile(img); !bytes.Equal(orig, now) {
					t.Fatal("a refused upgrade changed the image")
				}
				if err := md.ReleaseMetadataSnapshot(); err != nil {
					t.Fatal(err)
				}
				if err := md.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			md.Close()
			upgradeDowngrade(t, img)
		})
	}
}

// Random pools with snapshots sharing data blocks, restored by
// thin_restore, survive an upgrade and a downgrade.
func TestUpgradeDowngradeGenerated(t *testing.T) {
	for seed := range uint64(3) {
		p := genpool.Generate(rand.New(rand.NewPCG(seed, 11)), genpool.Spec{Devices: 12, MinMappings: 50, MaxMappings: 3000,
			MeanRun: 4, Sparsity: 3, SnapshotFraction: 0.5, RewriteFraction: 0.3, Slack: 0.2})
		img, _ := genpool.Restore(t, p)
		upgradeDowngrade(t, img)
	}
}

// Conversions that cannot be made are refused, and change nothing.
func TestConvertRefusals(t *testing.T) {
	img := metadataFile()
	defer os.RemoveAll(filepath.Dir(img))
	md, err := thin.CreateMetadata(img, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	if err := md.CreateThin(3); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(img)
	unchanged := func(what string) {
		t.Helper()
		if now, _ := os.ReadFile(img); !bytes.Equal(orig, now) {
			t.Fatalf("%s changed the image", what)
		}
	}
	if _, err := blob.Downgrade(md, true); !errors.Is(err, blob.ErrNotExtended) {
		t.Fatalf("downgrading a stock pool: %v", err)
	}
	for _, sz := range [][2]int{{0, 0}, {thin.MaxBlobSize + 1, 0}, {16, 17}, {-1, 0}} {
		if err := blob.Upgrade(md, sz[0], sz[1]); !errors.Is(err, blob.ErrBlobSize) {
			t.Fatalf("upgrade to blob size %d, index %d: %v", sz[0], sz[1], err)
		}
	}
	unchanged("a refused upgrade")
	// Pending changes are committed with the upgrade.
	if err := md.CreateThin(7); err != nil {
		t.Fatal(err)
	}
	if err := blob.Upgrade(md, thin.MaxBlobSize, thin.MaxBlobSize); err != nil {
		t.Fatal(err)
	}
	if md.NextID() != 8 || md.NrThins() != 2 {
		t.Fatalf("after the upgrade: next id %d, %d thins", md.NextID(), md.NrThins())
	}
	if err := blob.Upgrade(md, 16, 0); !errors.Is(err, thin.ErrConvert) {
		t.Fatalf("upgrading an extended pool: %v", err)
	}
	if err := md.CreateThinWithBlob(1<<24, make([]byte, thin.MaxBlobSize)); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	orig, _ = os.ReadFile(img)
	if _, err := blob.Downgrade(md, false); !errors.Is(err, thin.ErrIDRange) {
		t.Fatalf("downgrading with an id beyond 24 bits: %v", err)
	}
	unchanged("a refused downgrade")
	if err := md.ReserveMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	orig, _ = os.ReadFile(img)
	if _, err := blob.Downgrade(md, true); !errors.Is(err, thin.ErrSnapshotHeld) {
		t.Fatalf("downgrading with a metadata snapshot held: %v", err)
	}
	unchanged("a downgrade refused for the metadata snapshot")
	if err := md.ReleaseMetadataSnapshot(); err != nil {
		t.Fatal(err)
	}
	changes, err := blob.Downgrade(md, true)
	if err != nil || !slices.Equal(changes, []blob.Renumbered{{Old: 1 << 24, New: 0}}) {
		t.Fatalf("downgrade: %v, %v", changes, err)
	}
	tptest.CheckClean(t, img)
	want := "<superblock uuid=\"\" time=\"0\" transaction=\"0\" flags=\"0\" version=\"2\" data_block_size=\"128\" nr_data_blocks=\"100\">\n" +
		"  <device dev_id=\"0\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n  </device>\n" +
		"  <device dev_id=\"3\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n  </device>\n" +
		"  <device dev_id=\"7\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n  </device>\n" +
		"</superblock>\n"
	if got := tptest.MustRun(t, "thin_dump", img).Stdout; string(got) != want {
		t.Fatalf("thin_dump:\n%s\nwant:\n%s", got, want)
	}
}
