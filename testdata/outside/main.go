// Command outside is a program a new user of the module would write: it uses
// only the public API (thin, blob, thin/dump, thin/restore, spacemap,
// transaction, superblock) from a module of its own. TestOutsideModule builds
// it in a temporary module and runs each scenario; a scenario prints what it
// found as JSON (checked by the test against thin_dump and the counts it
// asked for) and exits 1 with a message on a surprise.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/pack"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/thin/restore"
	"github.com/thinmeta/thinmeta/transaction"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: outside SCENARIO DIR [ARGS]")
		os.Exit(2)
	}
	dir := os.Args[2]
	facts := map[string]any{}
	var err error
	switch os.Args[1] {
	case "extended":
		err = extended(dir, facts)
	case "views":
		err = views(dir, facts)
	case "batch":
		err = batch(dir, facts)
	case "errors":
		err = errorsScenario(dir, facts)
	case "opener":
		err = opener(os.Args[3:], facts)
	case "bad":
		err = bad(dir, facts)
	case "concurrent":
		err = concurrent(os.Args[3], facts)
	default:
		err = fmt.Errorf("unknown scenario %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "outside:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(facts); err != nil {
		fmt.Fprintln(os.Stderr, "outside:", err)
		os.Exit(1)
	}
}

func name(prefix string, i int) []byte { return fmt.Appendf(nil, "%s-%04d", prefix, i) }

// extended formats an extended pool, creates 1,000 named thins, snapshots
// 100 of them, deletes 50, and reads the result back as a manager would.
func extended(dir string, facts map[string]any) error {
	path := filepath.Join(dir, "ext.meta")
	w, err := blob.Create(path, &thin.FormatOptions{
		Variant: thin.Extended, BlobSize: 64, IndexBytes: 16,
		NrDataBlocks: 1 << 16, Size: 16 << 20,
	})
	if err != nil {
		return err
	}
	defer w.Close()
	ids := map[string]uint64{} // the manager's own record: name -> id
	for i := range 1000 {
		id, err := w.NewThin(name("vol", i))
		if err != nil {
			return fmt.Errorf("thin %d: %w", i, err)
		}
		ids[string(name("vol", i))] = id
		if i%100 == 99 {
			if err := w.Commit(); err != nil {
				return err
			}
		}
	}
	// A few writes to the volumes that get snapshots, so sharing shows.
	md := w.Metadata()
	for i := range 100 {
		if err := md.MapRange(ids[string(name("vol", i))], 0, 4); err != nil {
			return err
		}
	}
	for i := range 100 {
		id, err := w.NewSnapshot(ids[string(name("vol", i))], name("snap", i))
		if err != nil {
			return fmt.Errorf("snapshot %d: %w", i, err)
		}
		ids[string(name("snap", i))] = id
	}
	for i := 900; i < 950; i++ {
		n := string(name("vol", i))
		if err := w.Delete(ids[n]); err != nil {
			return err
		}
		delete(ids, n)
	}
	if err := w.Commit(); err != nil {
		return err
	}
	facts["writer_count"] = w.Count()

	p, err := w.Committed()
	if err != nil {
		return err
	}
	defer p.Close()
	facts["count"] = p.Count()
	var n uint64
	seen := map[string]uint64{}
	for th, err := range p.Thins() {
		if err != nil {
			return err
		}
		n++
		seen[string(bytes.TrimRight(th.Blob, "\x00"))] = th.ID
	}
	facts["enumerated"] = n
	mismatched := 0
	for k, id := range ids {
		if seen[k] != id {
			mismatched++
		}
	}
	facts["enumerated_disagree"] = mismatched

	found := func(key string) ([]uint64, error) {
		var out []uint64
		for th, err := range p.Find([]byte(key)) {
			if err != nil {
				return nil, err
			}
			out = append(out, th.ID)
		}
		return out, nil
	}
	f500, err := found("vol-0500")
	if err != nil {
		return err
	}
	facts["find_vol_0500"] = f500
	facts["want_vol_0500"] = ids["vol-0500"]
	f910, err := found("vol-0910")
	if err != nil {
		return err
	}
	facts["find_deleted"] = len(f910)
	if _, err := found(string(make([]byte, 17))); !errors.Is(err, blob.ErrBlobSize) {
		return fmt.Errorf("Find with a key longer than the index: %v, want ErrBlobSize", err)
	}

	// Reconcile the manager's list, with one thin forgotten, one record
	// of a thin that never existed and one wrong identity.
	var list []blob.Entry
	for k, id := range ids {
		if k == "vol-0001" {
			continue // forgotten: an orphan
		}
		ident := []byte(k)
		if k == "vol-0002" {
			ident = []byte("someone-else")
		}
		list = append(list, blob.Entry{ID: id, Identity: ident})
	}
	list = append(list, blob.Entry{ID: 1 << 40, Identity: []byte("ghost")})
	rep, err := p.Reconcile(list)
	if err != nil {
		return err
	}
	facts["reconcile"] = map[string]any{
		"orphans": len(rep.Orphans), "missing": len(rep.Missing),
		"mismatches": len(rep.Mismatches), "matched": rep.Matched, "clean": rep.Clean(),
	}
	if _, err := p.Reconcile(append(list, list[0])); !errors.Is(err, blob.ErrDuplicate) {
		return fmt.Errorf("Reconcile of a list naming a thin twice: %v, want ErrDuplicate", err)
	}

	// A stock copy for thin_dump: Downgrade drops the blobs.
	if err := p.Close(); err != nil {
		return err
	}
	if _, err := blob.Downgrade(md, false); err != nil {
		return err
	}
	facts["manager"] = ids
	return w.Close()
}

type thinState struct {
	ID   uint64
	Blob string
}

func snapshotThins(p *blob.Pool) ([]thinState, error) {
	var out []thinState
	for th, err := range p.Thins() {
		if err != nil {
			return out, err
		}
		out = append(out, thinState{th.ID, string(th.Blob)})
	}
	return out, nil
}

func sameThins(a, b []thinState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// views holds views (Committed, blob.Open and thin.Open in the same
// process) across 200 commits that rewrite blobs, delete and recreate thins
// and remap blocks, and checks each still reads what it read when opened.
func views(dir string, facts map[string]any) error {
	path := filepath.Join(dir, "views.meta")
	w, err := blob.Create(path, &thin.FormatOptions{
		Variant: thin.Extended, BlobSize: 32, NrDataBlocks: 4096, Size: 32 << 20,
	})
	if err != nil {
		return err
	}
	defer w.Close()
	var live []uint64
	for i := range 6 {
		id, err := w.NewThin(name("v", i))
		if err != nil {
			return err
		}
		if err := w.Metadata().MapRange(id, 0, 8); err != nil {
			return err
		}
		live = append(live, id)
	}
	if err := w.Commit(); err != nil {
		return err
	}
	committed, err := w.Committed()
	if err != nil {
		return err
	}
	opened, err := blob.Open(path, nil)
	if err != nil {
		return fmt.Errorf("blob.Open of a file this process writes: %w", err)
	}
	stock, err := thin.Open(path, nil)
	if err != nil {
		return fmt.Errorf("thin.Open of a file this process writes: %w", err)
	}
	before, err := snapshotThins(committed)
	if err != nil {
		return err
	}
	mappingsOf := func(p *thin.Pool) (int, error) {
		n := 0
		for _, id := range live[:1] {
			for _, err := range p.Mappings(id, 0, 1<<20) {
				if err != nil {
					return n, err
				}
				n++
			}
		}
		return n, nil
	}
	mapsBefore, err := mappingsOf(stock)
	if err != nil {
		return err
	}
	md := w.Metadata()
	k := 0
	for c := range 200 {
		for range 2 {
			id, err := w.NewThin(name("x", k))
			if err != nil {
				return err
			}
			k++
			if err := w.SetBlob(id, name("y", k)); err != nil {
				return err
			}
		}
		// Rewrite the first thins' blobs and mappings; delete and recreate.
		if err := w.SetBlob(live[c%6], name("c", c)); err != nil {
			return err
		}
		if _, err := md.Unmap(live[0], 0, 8); err != nil {
			return err
		}
		if err := md.MapRange(live[0], 0, 8); err != nil {
			return err
		}
		if c%10 == 9 {
			old := live[1]
			if err := w.Delete(old); err != nil {
				return err
			}
			id, err := w.NewThin(name("v", 1))
			if err != nil {
				return err
			}
			live[1] = id
		}
		if err := w.Commit(); err != nil {
			return fmt.Errorf("commit %d: %w", c, err)
		}
	}
	facts["writer_count"] = w.Count()
	for what, v := range map[string]*blob.Pool{"Committed": committed, "blob.Open": opened} {
		after, err := snapshotThins(v)
		if err != nil {
			return fmt.Errorf("%s view after 200 commits: %w", what, err)
		}
		if !sameThins(before, after) || v.Count() != uint64(len(before)) {
			return fmt.Errorf("%s view changed across commits: %d thins then, %d now, Count %d",
				what, len(before), len(after), v.Count())
		}
	}
	mapsAfter, err := mappingsOf(stock)
	if err != nil {
		return fmt.Errorf("thin.Open view after 200 commits: %w", err)
	}
	if mapsAfter != mapsBefore {
		return fmt.Errorf("thin.Open view's mappings changed: %d, then %d", mapsBefore, mapsAfter)
	}
	facts["view_thins"] = len(before)
	facts["view_mappings"] = mapsAfter
	// A fresh view sees the last commit.
	fresh, err := w.Committed()
	if err != nil {
		return err
	}
	facts["fresh_count"] = fresh.Count()
	fresh.Close()
	// Views held across commits keep what those commits freed out of
	// reach; closing them gives it back.
	freeHeld, err := w.FreeMetadataBlocks()
	if err != nil {
		return err
	}
	if err := stock.Close(); err != nil {
		return err
	}
	for _, v := range []*blob.Pool{committed, opened} {
		if err := v.Close(); err != nil {
			return err
		}
		if err := v.Close(); err != nil {
			return fmt.Errorf("second Close of a view: %v", err)
		}
		if _, err := snapshotThins(v); !errors.Is(err, blob.ErrClosed) {
			return fmt.Errorf("view read after Close: %v, want ErrClosed", err)
		}
	}
	freeClosed, err := w.FreeMetadataBlocks()
	if err != nil {
		return err
	}
	facts["free_held"], facts["free_closed"] = freeHeld, freeClosed
	// The writer's Close ends the views it handed out, and a thin.Open of
	// the writer's file (which is the writer's Committed view) too.
	held, err := w.Committed()
	if err != nil {
		return err
	}
	opened2, err := thin.Open(path, nil)
	if err != nil {
		return err
	}
	defer opened2.Close()
	if err := w.Close(); err != nil {
		return err
	}
	if _, err := snapshotThins(held); !errors.Is(err, blob.ErrClosed) {
		return fmt.Errorf("view read after its writer's Close: %v, want ErrClosed", err)
	}
	if _, err := mappingsOf(opened2); !errors.Is(err, thin.ErrClosed) {
		return fmt.Errorf("thin.Open view after its writer's Close: %v, want ErrClosed", err)
	}
	return nil
}

// batch runs batches of messages with a metadata snapshot reserved in the
// middle: one fails part way and is aborted, one is committed.
func batch(dir string, facts map[string]any) error {
	path := filepath.Join(dir, "batch.meta")
	md, err := thin.CreateMetadata(path, &thin.FormatOptions{NrDataBlocks: 1024, Size: 4 << 20})
	if err != nil {
		return err
	}
	defer md.Close()
	if err := md.CreateThin(1); err != nil {
		return err
	}
	if err := md.MapRange(1, 0, 10); err != nil {
		return err
	}
	if err := md.Commit(); err != nil {
		return err
	}
	// The batch: create 2, map, reserve a metadata snapshot, create 3,
	// then create 2 again (refused): the caller aborts, as a batch is all
	// or nothing.
	run := func(fail bool) error {
		if err := md.CreateThin(2); err != nil {
			return err
		}
		if err := md.MapRange(2, 0, 5); err != nil {
			return err
		}
		if err := md.ReserveMetadataSnapshot(); err != nil {
			return err
		}
		if err := md.CreateThin(3); err != nil {
			return err
		}
		if fail {
			if err := md.CreateThin(2); !errors.Is(err, thin.ErrExists) {
				return fmt.Errorf("creating thin 2 twice: %v, want ErrExists", err)
			}
			return errors.New("batch failed")
		}
		return nil
	}
	if err := run(true); err == nil {
		return errors.New("the failing batch did not fail")
	}
	if err := md.Abort(); err != nil {
		return err
	}
	// Another process (thin_dump, in the test) reads the file now: copy
	// what the disk holds after the aborted batch.
	if err := copyFile(path, filepath.Join(dir, "aborted.meta")); err != nil {
		return err
	}
	p, err := thin.Open(path, nil)
	if err != nil {
		return err
	}
	facts["aborted_devices"], err = deviceIDs(p)
	if err != nil {
		return err
	}
	facts["aborted_snapshot"] = p.HasMetadataSnapshot()
	p.Close()

	if err := run(false); err != nil {
		return err
	}
	if err := md.Commit(); err != nil {
		return err
	}
	// Reserving a second one is refused and changes nothing.
	if err := md.ReserveMetadataSnapshot(); !errors.Is(err, thin.ErrSnapshotHeld) {
		return fmt.Errorf("second reserve: %v, want ErrSnapshotHeld", err)
	}
	p, err = thin.Open(path, nil)
	if err != nil {
		return err
	}
	defer p.Close()
	facts["committed_devices"], err = deviceIDs(p)
	if err != nil {
		return err
	}
	snap, err := p.MetadataSnapshot()
	if err != nil {
		return err
	}
	facts["snapshot_devices"], err = deviceIDs(snap)
	if err != nil {
		return err
	}
	if _, err := snap.DataSpaceMap(); !errors.Is(err, thin.ErrNoSpaceMaps) {
		return fmt.Errorf("DataSpaceMap of a metadata snapshot: %v, want ErrNoSpaceMaps", err)
	}
	// A view of the transaction in progress reads the transaction, and
	// check and dump read it as they read a commit: its dump is what
	// thin_dump prints once it is committed (the test compares them).
	if err := md.CreateThin(4); err != nil {
		return err
	}
	if err := md.MapRange(4, 100, 7); err != nil {
		return err
	}
	v := md.View()
	ids, err := deviceIDs(v)
	if err != nil {
		return fmt.Errorf("Metadata.View: %w", err)
	}
	facts["view_devices"] = ids
	var findings []string
	sum, err := check.Pool(context.Background(), v, check.Options{}, func(f check.Finding) {
		findings = append(findings, f.String())
	})
	if err != nil {
		return err
	}
	if len(findings) > 0 || !sum.OK(false) {
		return fmt.Errorf("check.Pool of Metadata.View: %q", findings)
	}
	var xml bytes.Buffer
	if err := dump.Dump(context.Background(), &xml, v, dump.Options{}); err != nil {
		return fmt.Errorf("dump of Metadata.View: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "view.xml"), xml.Bytes(), 0o644); err != nil {
		return err
	}
	if err := md.Commit(); err != nil {
		return err
	}
	if _, err := deviceIDs(v); !errors.Is(err, thin.ErrTransactionChanged) {
		return fmt.Errorf("Metadata.View after Commit: %v, want ErrTransactionChanged", err)
	}
	p.Close()
	return md.Close()
}

func deviceIDs(p *thin.Pool) ([]uint64, error) {
	var out []uint64
	for d, err := range p.Devices() {
		if err != nil {
			return out, err
		}
		out = append(out, d.ID)
	}
	return out, nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// errorsScenario provokes each error a program acts on and checks it with
// errors.Is.
func errorsScenario(dir string, facts map[string]any) error {
	check := func(what string, err, want error) error {
		if !errors.Is(err, want) {
			return fmt.Errorf("%s: %v, want %v", what, err, want)
		}
		return nil
	}
	// A data device of 16 blocks.
	path := filepath.Join(dir, "small-data.meta")
	md, err := thin.CreateMetadata(path, &thin.FormatOptions{NrDataBlocks: 16, Size: 1 << 20})
	if err != nil {
		return err
	}
	if err := md.CreateThin(1); err != nil {
		return err
	}
	err = md.MapRange(1, 0, 17)
	if err := check("mapping 17 blocks into 16", err, thin.ErrNoDataSpace); err != nil {
		return err
	}
	if err := check("ErrNoDataSpace", err, spacemap.ErrNoSpace); err != nil {
		return err
	}
	if errors.Is(err, thin.ErrNoMetadataSpace) {
		return fmt.Errorf("a full data device is also ErrNoMetadataSpace: %v", err)
	}
	facts["no_data_space"] = err.Error()
	free, err := md.FreeDataBlocks()
	if err != nil {
		return err
	}
	facts["free_data_after"] = free
	// A refusal leaves the transaction usable: commit what was mapped.
	if err := md.Commit(); err != nil {
		return fmt.Errorf("commit after ErrNoDataSpace: %w", err)
	}
	if err := md.Close(); err != nil {
		return err
	}
	if err := md.Close(); err != nil {
		return fmt.Errorf("second Close: %v", err)
	}
	if err := check("CreateThin after Close", md.CreateThin(2), thin.ErrClosed); err != nil {
		return err
	}
	if err := check("Commit after Close", md.Commit(), thin.ErrClosed); err != nil {
		return err
	}

	// A metadata device of 64 blocks fills up with thins.
	path = filepath.Join(dir, "small-meta.meta")
	md, err = thin.CreateMetadata(path, &thin.FormatOptions{NrDataBlocks: 1000, MetadataBlocks: 64, Size: 64 * 4096})
	if err != nil {
		return err
	}
	var id uint64
	for id = 0; id < 100000; id++ {
		if err = md.CreateThin(id); err != nil {
			break
		}
	}
	if err := check("filling the metadata device", err, thin.ErrNoMetadataSpace); err != nil {
		return err
	}
	if err := check("ErrNoMetadataSpace", err, spacemap.ErrNoSpace); err != nil {
		return err
	}
	if errors.Is(err, thin.ErrNoDataSpace) {
		return fmt.Errorf("a full metadata device is also ErrNoDataSpace: %v", err)
	}
	facts["no_metadata_space"] = err.Error()
	if err := check("Commit after ErrNoMetadataSpace", md.Commit(), transaction.ErrFailed); err != nil {
		return err
	}
	if err := md.Abort(); err != nil {
		return err
	}
	if err := md.CreateThin(0); err != nil {
		return fmt.Errorf("after Abort: %w", err)
	}
	if err := md.Commit(); err != nil {
		return err
	}
	md.Close()

	// Writer and reader exclusion within one process, and after Close.
	w, err := thin.OpenMetadata(path, nil)
	if err != nil {
		return err
	}
	if _, err := thin.OpenMetadata(path, nil); !errors.Is(err, thin.ErrLocked) && !errors.Is(err, thin.ErrBusy) {
		return fmt.Errorf("a second writer of one file: %v, want ErrLocked", err)
	}
	w.Close()

	// Ids: a failed call spends none.
	bpath := filepath.Join(dir, "ids.meta")
	bw, err := blob.Create(bpath, &thin.FormatOptions{Variant: thin.Extended, BlobSize: 8, NrDataBlocks: 16, Size: 1 << 20})
	if err != nil {
		return err
	}
	next := bw.NextID()
	if _, err := bw.NewThin(make([]byte, 9)); !errors.Is(err, blob.ErrBlobSize) {
		return fmt.Errorf("NewThin with a blob too long: %v, want ErrBlobSize", err)
	}
	if _, err := bw.NewSnapshot(12345, nil); !errors.Is(err, thin.ErrNoDevice) {
		return fmt.Errorf("NewSnapshot of a missing origin: %v, want ErrNoDevice", err)
	}
	if bw.NextID() != next {
		return fmt.Errorf("failed calls spent ids: NextID %d, was %d", bw.NextID(), next)
	}
	if err := bw.Close(); err != nil {
		return err
	}
	if _, err := bw.NewThin(nil); !errors.Is(err, blob.ErrClosed) {
		return fmt.Errorf("NewThin after Close: %v, want ErrClosed", err)
	}
	if err := bw.Close(); err != nil {
		return fmt.Errorf("second Close of a blob.Writer: %v", err)
	}

	// ErrStale: a reader that does not lock (NewPool over a file) sees a
	// writer commit underneath it.
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, _ := f.Stat()
	p, err := thin.NewPool(f, st.Size())
	if err != nil {
		return err
	}
	w, err = thin.OpenMetadata(path, nil)
	if err != nil {
		return err
	}
	// Commits that free and reuse blocks the unlocked reader still reads.
	for c := range 50 {
		if err := w.CreateThin(uint64(1000 + c)); err != nil {
			return err
		}
		if err := w.MapRange(uint64(1000+c), 0, 3); err != nil {
			return err
		}
		if c > 0 {
			if err := w.Delete(uint64(1000 + c - 1)); err != nil {
				return err
			}
		}
		if err := w.Commit(); err != nil {
			return err
		}
	}
	w.Close()
	// The read may notice (ErrStale) or not (the check is every MiB
	// read); it must not report corruption, and Stale must tell.
	ids, err := devicesOf(p)
	var ce *transaction.CorruptError
	if errors.As(err, &ce) && !errors.Is(err, thin.ErrStale) {
		return fmt.Errorf("reading a pool committed underneath reports corruption: %v", err)
	}
	if err != nil && !errors.Is(err, thin.ErrStale) {
		return fmt.Errorf("reading a pool committed underneath: %v", err)
	}
	facts["stale_read_error"] = fmt.Sprint(err)
	facts["stale_read_devices"] = len(ids)
	if err := check("Pool.Stale", p.Stale(), thin.ErrStale); err != nil {
		return err
	}
	if _, err := p.Device(0); !errors.Is(err, thin.ErrStale) {
		return fmt.Errorf("a read after Stale said so: %v, want ErrStale", err)
	}
	p.Close()

	// ErrSameFile: restoring a dump onto the file it is read from.
	ctx := context.Background()
	if _, err := restore.RestoreFile(ctx, path, path, restore.Options{}); !errors.Is(err, thin.ErrSameFile) {
		return fmt.Errorf("restoring a file onto itself: %v, want ErrSameFile", err)
	}
	// No metadata snapshot held.
	p, err = thin.Open(path, nil)
	if err != nil {
		return err
	}
	if _, err := p.MetadataSnapshot(); !errors.Is(err, superblock.ErrNoMetadataSnapshot) {
		return fmt.Errorf("MetadataSnapshot of a pool without one: %v", err)
	}
	p.Close()
	if _, err := p.Device(0); !errors.Is(err, thin.ErrClosed) {
		return fmt.Errorf("Device after Close: %v, want ErrClosed", err)
	}
	return nil
}

type deviceFacts struct {
	ID       uint64
	Mapped   uint64 // details
	Mappings uint64 // counted in the tree
	Runs     uint64
}

func devicesOf(p *thin.Pool) ([]deviceFacts, error) {
	var out []deviceFacts
	for d, err := range p.Devices() {
		if err != nil {
			return out, err
		}
		f := deviceFacts{ID: d.ID, Mapped: d.MappedBlocks}
		for _, err := range p.Mappings(d.ID, 0, 1<<62) {
			if err != nil {
				return out, err
			}
			f.Mappings++
		}
		for _, err := range p.Runs(d.ID, 0, 1<<62) {
			if err != nil {
				return out, err
			}
			f.Runs++
		}
		out = append(out, f)
	}
	return out, nil
}

// opener opens each path through thin.Open and thin.OpenImage and reports
// the devices of each.
func opener(paths []string, facts map[string]any) error {
	var first []deviceFacts
	for i, path := range paths {
		p, err := thin.Open(path, nil)
		if err != nil {
			return fmt.Errorf("thin.Open: %w", err)
		}
		devs, err := devicesOf(p)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		p.Close()
		im, err := thin.OpenImage(path, nil)
		if err != nil {
			return fmt.Errorf("thin.OpenImage: %w", err)
		}
		p2, err := thin.NewPool(im, im.Size())
		if err != nil {
			return fmt.Errorf("NewPool over OpenImage of %s: %w", path, err)
		}
		devs2, err := devicesOf(p2)
		if err != nil {
			return err
		}
		if fmt.Sprint(devs) != fmt.Sprint(devs2) {
			return fmt.Errorf("%s: thin.Open and OpenImage disagree", path)
		}
		im.Close()
		if i == 0 {
			first = devs
			facts["devices"] = devs
		} else if fmt.Sprint(devs) != fmt.Sprint(first) {
			return fmt.Errorf("%s reads other devices than %s", path, paths[0])
		}
	}
	facts["opened"] = len(paths)
	return nil
}

// bad opens inputs that are no metadata and reports the errors.
func bad(dir string, facts map[string]any) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	out := map[string]string{}
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		p, err := thin.Open(path, nil)
		if err == nil {
			// Opened: it must fail when read, with a typed error.
			_, err = devicesOf(p)
			p.Close()
		}
		kind := "none"
		var ce *transaction.CorruptError
		var ie *transaction.IOError
		switch {
		case err == nil:
		case errors.Is(err, thin.ErrLZ4):
			kind = "ErrLZ4"
		case errors.Is(err, pack.ErrFormat):
			kind = "pack.ErrFormat"
		case errors.Is(err, thin.ErrNotDevice):
			kind = "ErrNotDevice"
		case errors.As(err, &ce):
			kind = "CorruptError"
		case errors.As(err, &ie):
			kind = "IOError"
		default:
			kind = fmt.Sprintf("untyped %T: %v", err, err)
		}
		out[e.Name()] = kind
	}
	facts["kinds"] = out
	return nil
}

// concurrent reads one Pool from 8 goroutines.
func concurrent(path string, facts map[string]any) error {
	p, err := thin.Open(path, nil)
	if err != nil {
		return err
	}
	defer p.Close()
	want, err := devicesOf(p)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for g := range errs {
		wg.Go(func() {
			for range 3 {
				got, err := devicesOf(p)
				if err == nil && fmt.Sprint(got) != fmt.Sprint(want) {
					err = errors.New("a concurrent reader read other devices")
				}
				if err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ids := make([]uint64, 0, len(want))
	for _, d := range want {
		ids = append(ids, d.ID)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	facts["devices"] = len(ids)
	return nil
}
