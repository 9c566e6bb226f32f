package fuzz

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/transaction"
)

// The write path on arbitrary images. A library user may open a damaged
// pool for writing (thin.NewMetadata checks only each node it shadows, and
// only by the rules that do not depend on the node's place), so every
// change on every image must end in success or in a typed error, and
// leave the pool as thin.Metadata documents for a failed call:
//
//   - a call refused for what it was asked (the sentinels of refusals
//     below) changes nothing, and the transaction goes on;
//   - any other error ends the transaction: Commit then fails with
//     transaction.ErrFailed until Abort, which returns to the last commit.
//
// Whatever happens, what is on the device is the last commit: a fresh
// read-only view of it shows what it showed right after that commit, and a
// commit writes what a view of the transaction showed just before it. A
// pool that checked clean stays clean after every commit.

// refusals are the errors of a call refused for what it was asked
// (thin.Metadata's documentation lists them): such a call changes nothing.
var refusals = []error{thin.ErrNoDevice, thin.ErrExists, thin.ErrIDRange, thin.ErrIDReused,
	thin.ErrNotExtended, thin.ErrBlobSize, thin.ErrMapped, thin.ErrMappedTwice, thin.ErrUnmapped,
	thin.ErrTransactionID, thin.ErrShrink, thin.ErrRange, thin.ErrMetadataTooSmall,
	thin.ErrSnapshotHeld, thin.ErrNoDataSpace, superblock.ErrNoMetadataSnapshot}

func isRefusal(err error) bool {
	for _, s := range refusals {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// expectedWriteError reports whether err is one the write path may return
// on a damaged or unusual image: what a reader may return, a refusal, a
// full metadata device, or transaction.ErrFailed wrapping one of those.
func expectedWriteError(err error) bool {
	if expectedError(err) || isRefusal(err) {
		return true
	}
	for _, s := range []error{thin.ErrNoMetadataSpace, thin.ErrNeedsCheck, thin.ErrIndexMissing,
		transaction.ErrFailed} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// opReader hands out the operations' arguments from the fuzz input; once
// it runs out, every argument is zero and no operation is left.
type opReader struct{ b []byte }

func (r *opReader) more() bool { return len(r.b) > 0 }

func (r *opReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// num returns a small number mostly: a byte below 248 is itself, and 248
// to 255 are followed by 1 to 8 bytes of a little-endian number.
func (r *opReader) num() uint64 {
	c := r.byte()
	if c < 248 {
		return uint64(c)
	}
	var v uint64
	for i := range int(c-248) + 1 {
		v |= uint64(r.byte()) << (8 * i)
	}
	return v
}

// writeRun is one sequence of changes on one image.
type writeRun struct {
	t     *testing.T
	dev   *memdev.Sparse
	size  int64
	md    *thin.Metadata
	ids   []uint64 // device ids to pick from: the pool's and those created
	clean bool     // the pool checked clean when opened
	// committed is what a view of the last commit shows.
	committed string
	// maxMappings bounds the mappings a summary reads.
	maxMappings int
	log         []string
	// touchedDataSM is set by a refused map_to, which took and dropped a
	// reference in the data space map.
	touchedDataSM bool
	// rebase takes again the view a refused call must leave unchanged:
	// an operation calls it after the changes it makes before the call.
	rebase func()
}

func (w *writeRun) fatalf(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("after %s: %s", strings.Join(w.log, "; "), fmt.Sprintf(format, args...))
}

// summary is what a view of a pool shows: the superblock's counters, the
// devices with their details and blobs, their mappings (as many as the
// budget allows), the data space map's totals and the metadata snapshot's
// devices. A read error ends the part it is in and is shown with it.
// summaryErr is err as a summary shows it. A damaged pool may have a tree
// reach block 0: a view of a transaction reads there the superblock of the
// last commit, a view of the commit its own, so only what kind of read it
// was is shown.
func summaryErr(err error) any {
	var ce *transaction.CorruptError
	if errors.As(err, &ce) && ce.Block == 0 {
		return fmt.Sprintf("block 0 read as a %s", ce.Kind)
	}
	return err
}

func (w *writeRun) summary(p *thin.Pool) string {
	var b strings.Builder
	sb := p.Superblock()
	fmt.Fprintf(&b, "trans %d time %d flags %d held %v next %d nr %d data %d\n", sb.TransactionID, sb.Time, sb.Flags,
		sb.HeldRoot != 0, sb.NextThinID, sb.NrThins, p.NrDataBlocks())
	dr := spacemap.DecodeRoot(sb.DataSpaceMapRoot[:])
	fmt.Fprintf(&b, "data space map %d of %d\n", dr.NrAllocated, dr.NrBlocks)
	left := w.maxMappings
	n := 0
	for d, err := range p.Devices() {
		if err != nil {
			fmt.Fprintf(&b, "devices: %v\n", summaryErr(err))
			break
		}
		fmt.Fprintf(&b, "device %d %+v %x\n", d.ID, d.Details, d.Blob)
		if n++; n > 64 {
			break
		}
	}
	n = 0
	for r, err := range p.DeviceRoots() {
		if err != nil {
			fmt.Fprintf(&b, "roots: %v\n", summaryErr(err))
			break
		}
		fmt.Fprintf(&b, "mappings of %d:", r.ID)
		for m, err := range p.Mappings(r.ID, 0, math.MaxUint64) {
			if err != nil {
				fmt.Fprintf(&b, " %v", summaryErr(err))
				break
			}
			if left--; left < 0 {
				break
			}
			fmt.Fprintf(&b, " %d:%d@%d", m.VBlock, m.Block, m.Time)
		}
		b.WriteString("\n")
		if n++; n > 64 {
			break
		}
	}
	if p.HasMetadataSnapshot() {
		snap, err := p.MetadataSnapshot()
		if err != nil {
			fmt.Fprintf(&b, "snapshot: %v\n", summaryErr(err))
		} else {
			for d, err := range snap.Devices() {
				if err != nil {
					fmt.Fprintf(&b, "snapshot devices: %v\n", summaryErr(err))
					break
				}
				fmt.Fprintf(&b, "snapshot device %d %+v\n", d.ID, d.Details)
			}
		}
	}
	return b.String()
}

// reopen opens a fresh read-only view of what the device holds; every
// walk must run on it without panicking or an untyped error.
func (w *writeRun) reopen() (*thin.Pool, string) {
	w.t.Helper()
	p, err := thin.NewPool(w.dev, w.size)
	if err != nil {
		if !expectedError(err) {
			w.fatalf("reopen: unexpected error %T %v", err, err)
		}
		return nil, "unreadable: " + err.Error()
	}
	return p, w.summary(p)
}

// clean reports whether thin/check finds nothing fatal in the pool.
func checksClean(t *testing.T, p *thin.Pool) bool {
	sum, err := check.Pool(context.Background(), p, check.Options{}, func(check.Finding) {})
	return err == nil && sum.Fatal == 0
}

// pickID returns a device id: one of the pool's (or of those created)
// mostly, and otherwise a new small id or one at an edge of the ranges.
func (w *writeRun) pickID(r *opReader) uint64 {
	c := r.byte()
	if c&0x80 == 0 && len(w.ids) > 0 {
		return w.ids[int(c)%len(w.ids)]
	}
	switch v := uint64(c & 0x7f); v {
	case 0x7f:
		return math.MaxUint64
	case 0x7e:
		return thin.MaxStockDeviceID + 1
	case 0x7d:
		return w.md.NextID()
	default:
		return v
	}
}

func (w *writeRun) addID(id uint64) {
	if !slices.Contains(w.ids, id) && len(w.ids) < 32 {
		w.ids = append(w.ids, id)
	}
}

// blob returns a blob for the pool: of its size mostly, from the input.
func (w *writeRun) blob(r *opReader) []byte {
	n := w.md.BlobSize()
	c := r.byte()
	if c == 0xff {
		n = int(r.byte())
	}
	b := make([]byte, n)
	for i := range min(n, 4) {
		b[i] = r.byte()
	}
	if c&1 != 0 && n > 0 {
		b[n/2] = c // a blob that differs beyond the index bytes, sometimes
	}
	return b
}

const nWriteOps = 21

// do runs one operation, chosen by op; it returns its name and its error.
func (w *writeRun) do(op byte, r *opReader) (string, error) {
	md := w.md
	switch op % nWriteOps {
	case 0:
		id := w.pickID(r)
		err := md.CreateThin(id)
		if err == nil {
			w.addID(id)
		}
		return fmt.Sprintf("create_thin %d", id), err
	case 1:
		id, origin := w.pickID(r), w.pickID(r)
		err := md.CreateSnapshot(id, origin)
		if err == nil {
			w.addID(id)
		}
		return fmt.Sprintf("create_snap %d %d", id, origin), err
	case 2:
		id := w.pickID(r)
		return fmt.Sprintf("delete %d", id), md.Delete(id)
	case 3:
		// The caller of MapTo holds a reference to the data block, and
		// keeps it if the call fails.
		id, v, d := w.pickID(r), r.num(), r.num()
		name := fmt.Sprintf("map_to %d %d %d", id, v, d)
		dsm := md.DataSpaceMap()
		if d >= dsm.NrBlocks() {
			return name, md.MapTo(id, v, d)
		}
		if err := dsm.Inc(d); err != nil {
			return "inc " + name, err
		}
		err := md.MapTo(id, v, d)
		if err != nil && isRefusal(err) {
			// The reference's bitmap stays loaded for writing: writing
			// it at the next View or Commit can fail (the pool damaged,
			// or full), which is not the refusal's doing.
			w.touchedDataSM = true
			if derr := dsm.Dec(d); derr != nil {
				w.fatalf("%s: dropping the reference taken: %v", name, derr)
			}
		}
		return name, err
	case 4:
		id, v := w.pickID(r), r.num()
		_, err := md.Map(id, v)
		return fmt.Sprintf("map %d %d", id, v), err
	case 5:
		id, v, n := w.pickID(r), r.num(), r.num()%16
		return fmt.Sprintf("map %d %d %d", id, v, n), md.MapRange(id, v, n)
	case 6:
		id, v, n := w.pickID(r), r.num(), r.num()
		end := v + n
		if n == 255 {
			v, end = 0, math.MaxUint64 // the whole device
		}
		_, err := md.Unmap(id, v, end)
		return fmt.Sprintf("unmap %d %d %d", id, v, end), err
	case 7:
		old, new := md.TransactionID(), r.num()
		if c := r.byte(); c&1 != 0 {
			old += uint64(c) // a wrong current id
		}
		return fmt.Sprintf("set_transaction_id %d %d", old, new), md.SetTransactionID(old, new)
	case 8:
		return "reserve_metadata_snap", md.ReserveMetadataSnapshot()
	case 9:
		return "release_metadata_snap", md.ReleaseMetadataSnapshot()
	case 10, 11:
		return "commit", w.commit()
	case 12:
		return "abort", w.abort()
	case 13:
		id, b := w.pickID(r), w.blob(r)
		return fmt.Sprintf("set_blob %d %x", id, b), md.SetBlob(id, b)
	case 14:
		b := w.blob(r)
		id, err := md.AllocateID()
		if err != nil {
			return "allocate_id", err
		}
		w.rebase() // the id is reserved whatever CreateThinWithBlob does
		err = md.CreateThinWithBlob(id, b)
		if err == nil {
			w.addID(id)
		}
		return fmt.Sprintf("create_thin %d with blob %x", id, b), err
	case 15:
		id, origin, b := w.pickID(r), w.pickID(r), w.blob(r)
		err := md.CreateSnapshotWithBlob(id, origin, b)
		if err == nil {
			w.addID(id)
		}
		return fmt.Sprintf("create_snap %d %d with blob %x", id, origin, b), err
	case 16:
		id := w.pickID(r)
		return fmt.Sprintf("clear_blob %d", id), md.ClearBlob(id)
	case 17:
		n := md.DataSpaceMap().NrBlocks() + r.num()
		return fmt.Sprintf("resize_data %d", n), md.ResizeData(n)
	case 18:
		n := md.MetadataSpaceMap().NrBlocks() + r.num()
		return fmt.Sprintf("resize_metadata %d", n), md.ResizeMetadata(n)
	case 19:
		// Convert to either variant, renumbering a few thins (onto
		// ids in use, missing ones and beyond 24 bits included).
		opts := thin.ConvertOptions{Variant: thin.Variant(r.byte() % 2)}
		if opts.Variant == thin.Extended {
			opts.BlobSize = int(r.byte())%thin.MaxBlobSize + 1
			opts.IndexBytes = int(r.byte()) % (opts.BlobSize + 1)
		}
		for range r.byte() % 4 {
			if opts.NewIDs == nil {
				opts.NewIDs = make(map[uint64]uint64)
			}
			opts.NewIDs[w.pickID(r)] = w.pickID(r)
		}
		err := md.Convert(opts)
		if err == nil {
			for _, nid := range opts.NewIDs {
				w.addID(nid)
			}
		}
		return fmt.Sprintf("convert %+v", opts), err
	default:
		// Reads of the transaction, and early write-back of its blocks.
		id, v := w.pickID(r), r.num()
		md.Manager().SetDirtyLimit(int(r.byte() % 8))
		if _, err := md.Details(id); err != nil {
			return fmt.Sprintf("details %d", id), err
		}
		_, _, err := md.Lookup(id, v)
		return fmt.Sprintf("lookup %d %d", id, v), err
	}
}

// commit commits and holds the result to what the view showed before.
func (w *writeRun) commit() error {
	want := w.summary(w.md.View())
	if err := w.md.Commit(); err != nil {
		return err
	}
	p, got := w.reopen()
	if got != want {
		w.fatalf("the commit wrote\n%s\nwhere the transaction's view showed\n%s", got, want)
	}
	if w.clean && !checksClean(w.t, p) {
		w.fatalf("a clean pool does not check clean after a commit")
	}
	w.committed = got
	return nil
}

// abort aborts and requires the view to show the last commit again.
func (w *writeRun) abort() error {
	if err := w.md.Abort(); err != nil {
		return err
	}
	// Unless the pool did not check clean: then early write-back may
	// have written over a live block its metadata space map counts free
	// (see runWrites).
	if got := w.summary(w.md.View()); got != w.committed && w.clean {
		w.fatalf("after abort the transaction shows\n%s\nwhere the last commit showed\n%s", got, w.committed)
	}
	return nil
}

// step runs one operation and holds its outcome to the contract. With
// observe, the views before and after a refused call must agree.
func (w *writeRun) step(op byte, r *opReader) bool {
	w.t.Helper()
	observe := op&0x80 != 0
	var before string
	w.rebase = func() {}
	if observe {
		before = w.summary(w.md.View())
		w.rebase = func() { before = w.summary(w.md.View()) }
	}
	failedBefore := w.md.Manager().Failed() != nil
	name, err := w.do(op&0x7f, r)
	w.log = append(w.log, name)
	if err == nil {
		return true
	}
	if !expectedWriteError(err) {
		w.fatalf("unexpected error %T %v", err, err)
	}
	if errors.Is(err, transaction.ErrFailed) {
		if f := w.md.Manager().Failed(); f == nil || !expectedWriteError(f) {
			w.fatalf("ErrFailed (%v) with first failure %T %v", err, f, f)
		}
		return true
	}
	if strings.HasPrefix(name, "inc ") {
		// A space map of the harness's own (no contract): stop here.
		return false
	}
	if name == "abort" {
		// The last commit cannot be read back: nothing more to do.
		return false
	}
	if isRefusal(err) {
		// After map_to's own space map change (see there), a transaction
		// ended when the view wrote the bitmap (damage met, or no
		// metadata block to shadow it into) is that change's doing; so
		// is, in a pool that did not check clean, a view changed by that
		// write (its metadata space map may hand out a block in use).
		touched := w.touchedDataSM
		w.touchedDataSM = false
		damage := func() bool {
			if !touched {
				return false
			}
			f := w.md.Manager().Failed()
			return f != nil && expectedWriteError(f) || !w.clean
		}
		if !failedBefore && w.md.Manager().Failed() != nil && damage() {
			return false
		}
		if !failedBefore && w.md.Manager().Failed() != nil {
			w.fatalf("a refusal (%v) ended the transaction (%v)", err, w.md.Manager().Failed())
		}
		// MapRange keeps what it mapped before the data device filled.
		partial := errors.Is(err, thin.ErrNoDataSpace) && strings.Count(name, " ") == 3 && strings.HasPrefix(name, "map ")
		if observe && !partial && !failedBefore {
			if after := w.summary(w.md.View()); after != before && !damage() {
				w.fatalf("refused with %v, yet the view changed from\n%s\nto\n%s", err, before, after)
			}
		}
		return true
	}
	if strings.HasPrefix(name, "details ") || strings.HasPrefix(name, "lookup ") {
		// A read changes nothing, whatever it met (thin.Metadata: the
		// errors that end a transaction are those of calls that change
		// it): the transaction goes on.
		if !failedBefore && w.md.Manager().Failed() != nil {
			w.fatalf("a read (%v) ended the transaction (%v)", err, w.md.Manager().Failed())
		}
		return true
	}
	// Any other error ends the transaction.
	if cerr := w.md.Commit(); !errors.Is(cerr, transaction.ErrFailed) {
		w.fatalf("%v did not end the transaction: Commit gave %v", err, cerr)
	}
	w.log = append(w.log, "commit (failed)")
	return true
}

// runWrites opens img for writing and runs the operations of ops on it.
func runWrites(t *testing.T, img *sparseImage, ops []byte, maxOps int) {
	dev := memdev.NewSparse(nil, img.size)
	for _, b := range slices.Sorted(maps.Keys(img.blocks)) {
		if b >= img.size/bs {
			continue // beyond the device: only ever read as absent
		}
		if _, err := dev.WriteAt(img.blocks[b], b*bs); err != nil {
			t.Fatal(err)
		}
	}
	w := &writeRun{t: t, dev: dev, size: img.size, maxMappings: 2000}
	p, committed := w.reopen()
	if p == nil {
		return
	}
	w.committed = committed
	for d, err := range p.Devices() {
		if err != nil || len(w.ids) >= 8 {
			break
		}
		w.ids = append(w.ids, d.ID)
	}
	w.clean = checksClean(t, p)
	md, err := thin.NewMetadata(dev, img.size, &thin.WriteOptions{Force: true})
	if err != nil {
		if !expectedWriteError(err) {
			t.Fatalf("NewMetadata: unexpected error %T %v", err, err)
		}
		return
	}
	defer md.Close()
	w.md = md
	r := &opReader{b: ops}
	for i := 0; i < maxOps && r.more(); i++ {
		if !w.step(r.byte(), r) {
			return
		}
	}
	// Whatever the operations did, the device holds the last commit;
	// unless the pool did not check clean: a metadata space map that
	// counts a live block as free hands it out, and early write-back
	// (SetDirtyLimit) writes over it before any commit, as the kernel
	// would.
	if _, got := w.reopen(); got != w.committed && w.clean {
		w.fatalf("the device shows\n%s\nwhere the last commit showed\n%s", got, w.committed)
	}
}

// writeSeedOps are operation sequences for the seeds: each kind of change
// on the pool's devices, with and without views around it, and commits.
var writeSeedOps = [][]byte{
	{0, 0x85, 10, 0, 4, 0, 7, 10, 3, 0, 9, 10},
	{4, 0, 1, 4, 1, 200, 10, 6, 0, 0, 255, 10, 2, 1, 10},
	{0x81, 0x85, 0x80, 0x84, 0x81, 0x01, 10, 8, 4, 0, 3, 10, 9, 10},
	{5, 0, 0, 15, 6, 0, 2, 5, 8, 3, 0, 5, 1, 10, 12},
	{0x87, 0, 0, 0x88, 0x88, 0x89, 0x89, 10, 17, 10, 18, 1, 10},
	{14, 0, 1, 2, 3, 4, 10, 13, 0, 0, 9, 9, 9, 9, 16, 0, 15, 0x85, 0, 0, 10, 2, 0, 10},
	{19, 0, 0, 1, 4, 0, 9, 5, 0, 20, 15, 10, 2, 0, 10},
	{0x82, 0, 2, 1, 2, 2, 10, 0, 0x85, 0x85, 10},
}

// FuzzWrite opens an arbitrary small image (the sparse format of
// FuzzImage) for writing on an in-memory device and runs up to 16
// operations chosen by ops on it: creating thins and snapshots, deleting,
// mapping, unmapping, transaction ids, metadata snapshots, blobs, resizes,
// reads, early write-back, commits and aborts. Nothing may panic, every
// error must be typed, a failed call must leave what thin.Metadata
// documents (see refusals), and the device always holds the last commit.
func FuzzWrite(f *testing.F) {
	seeds := seedFiles(f, "FuzzImage")
	for _, name := range slices.Sorted(maps.Keys(fixtureImagesCached(f))) {
		if enc := encodeImage(fixtureImagesCached(f)[name]); len(enc) <= maxSeedSize {
			seeds = append(seeds, enc)
		}
	}
	for _, img := range damagedImages(f) {
		seeds = append(seeds, encodeImage(img.img))
	}
	for i, s := range seeds {
		f.Add(s, writeSeedOps[i%len(writeSeedOps)])
	}
	f.Fuzz(func(t *testing.T, image, ops []byte) {
		runWrites(t, parseImage(image), ops, 16)
	})
}

// TestWriteSeeds runs every seed sequence of operations over every shared
// fixture (healthy or damaged) and over pools damaged in the ways the
// write path must notice (damagedImages).
func TestWriteSeeds(t *testing.T) {
	imgs := map[string]*sparseImage{}
	for name, img := range fixtureImagesCached(t) {
		imgs[name] = img
	}
	for _, d := range damagedImages(t) {
		imgs[d.name] = d.img
	}
	for _, name := range slices.Sorted(maps.Keys(imgs)) {
		t.Run(name, func(t *testing.T) {
			for i, ops := range writeSeedOps {
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					runWrites(t, cloneImage(imgs[name]), ops, len(ops))
				})
			}
		})
	}
}

func cloneImage(img *sparseImage) *sparseImage {
	return &sparseImage{size: img.size, blocks: maps.Clone(img.blocks)}
}

var fixtureCache map[string]*sparseImage

// fixtureImagesCached is fixtureImages, unpacked once per process.
func fixtureImagesCached(tb testing.TB) map[string]*sparseImage {
	if fixtureCache == nil {
		fixtureCache = fixtureImages(tb)
	}
	return fixtureCache
}

// damaged is a pool written by thinmeta and then damaged in one way.
type damaged struct {
	name string
	img  *sparseImage
}

// damagedImages returns small pools with multi-level mapping trees, each
// damaged in one way the write path meets only by shadowing: an empty leaf
// that is not the root, an internal node pointing beyond the device, a
// cycle, a leaf whose keys are outside its parent's range, and a live
// node whose metadata space map count is 0.
func damagedImages(tb testing.TB) []damaged {
	base := func() (*memdev.Sparse, int64, btree.Node, uint64) {
		size := int64(256 * bs)
		dev := memdev.NewSparse(nil, size)
		md, err := thin.Format(dev, size, &thin.FormatOptions{NrDataBlocks: 10000})
		if err != nil {
			tb.Fatal(err)
		}
		for _, id := range []uint64{0, 1} {
			if err := md.CreateThin(id); err != nil {
				tb.Fatal(err)
			}
			if err := md.MapRange(id, 0, 1200); err != nil {
				tb.Fatal(err)
			}
		}
		if err := md.Commit(); err != nil {
			tb.Fatal(err)
		}
		p, err := md.Committed()
		if err != nil {
			tb.Fatal(err)
		}
		root, err := p.Root(0)
		if err != nil {
			tb.Fatal(err)
		}
		p.Close()
		md.Close()
		n := btree.Node(dev.Block(int64(root)))
		if !n.IsInternal() || n.NrEntries() < 3 {
			tb.Fatalf("thin 0's root %d has %d entries, internal %v: want a multi-level tree", root, n.NrEntries(), n.IsInternal())
		}
		return dev, size, n, root
	}
	toImage := func(dev *memdev.Sparse, size int64) *sparseImage {
		img := &sparseImage{size: size, blocks: map[int64][]byte{}}
		for b := range size / bs {
			blk := dev.Block(b)
			if salt, ok := transaction.SaltOf(blk); ok && salt != 0 {
				img.blocks[b] = blk
			}
		}
		return img
	}
	seal := func(dev *memdev.Sparse, b uint64, n []byte) {
		transaction.Seal(n, b, transaction.SaltNode)
		if _, err := dev.WriteAt(n, int64(b)*bs); err != nil {
			tb.Fatal(err)
		}
	}
	var out []damaged

	// An empty leaf that is not the root.
	dev, size, root, _ := base()
	leafB := root.Uint64Value(1)
	leaf := btree.Node(dev.Block(int64(leafB)))
	leaf.SetNrEntries(0)
	seal(dev, leafB, leaf)
	out = append(out, damaged{"empty-non-root-leaf", toImage(dev, size)})

	// An internal node pointing beyond the device.
	dev, size, root, rootB := base()
	root.SetUint64Value(1, uint64(size/bs)+100)
	seal(dev, rootB, root)
	out = append(out, damaged{"child-beyond-device", toImage(dev, size)})

	// A cycle: the root is its own child.
	dev, size, root, rootB = base()
	root.SetUint64Value(1, rootB)
	seal(dev, rootB, root)
	out = append(out, damaged{"cycle", toImage(dev, size)})

	// A leaf whose keys are below its parent's key for it.
	dev, size, root, _ = base()
	leafB = root.Uint64Value(2)
	leaf = btree.Node(dev.Block(int64(leafB)))
	for i := range leaf.NrEntries() {
		leaf.SetKey(i, uint64(i)) // keys of the first leaf
	}
	seal(dev, leafB, leaf)
	out = append(out, damaged{"keys-out-of-parent-range", toImage(dev, size)})

	// A live leaf with a metadata space map count of 0.
	dev, size, root, _ = base()
	md, err := thin.NewMetadata(dev, size, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := md.MetadataSpaceMap().SetCount(root.Uint64Value(1), 0); err != nil {
		tb.Fatal(err)
	}
	if err := md.Commit(); err != nil {
		tb.Fatal(err)
	}
	md.Close()
	out = append(out, damaged{"live-block-count-0", toImage(dev, size)})
	return out
}

// An empty leaf below a parent is refused by every reader, but the write
// path (which does not know a node's place) accepts it: it must still give
// right results there. Mapping into the leaf's range fills it, removals
// around it rebalance it away, and afterwards the pool reads back exactly
// the mappings a model of the changes holds.
func TestWriteEmptyNonRootLeaf(t *testing.T) {
	img := damagedImages(t)[0].img
	p, err := thin.NewPool(img, img.size)
	if err != nil {
		t.Fatal(err)
	}
	refused := false
	for _, err := range p.Mappings(0, 0, math.MaxUint64) {
		if err != nil {
			if !errors.Is(err, btree.ErrNodeHeader) {
				t.Fatalf("reading the damaged thin: %v, want ErrNodeHeader", err)
			}
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("a reader accepts the empty non-root leaf")
	}
	dev := memdev.NewSparse(nil, img.size)
	for b, blk := range img.blocks {
		if _, err := dev.WriteAt(blk, b*bs); err != nil {
			t.Fatal(err)
		}
	}
	root := btree.Node(nil)
	for b, blk := range img.blocks {
		if n := btree.Node(blk); b != 0 && n.IsInternal() && n.NrEntries() >= 3 && n.Key(0) == 0 {
			if leaf := btree.Node(img.blocks[int64(n.Uint64Value(1))]); leaf.NrEntries() == 0 {
				root = n
			}
		}
	}
	if root == nil {
		t.Fatal("no internal node with the empty leaf below it")
	}
	lo, hi := root.Key(1), root.Key(2) // the empty leaf's range
	model := map[uint64]bool{}
	for v := range uint64(1200) {
		if v < lo || v >= hi {
			model[v] = true
		}
	}
	md, err := thin.NewMetadata(dev, img.size, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	for v := lo; v < hi; v += 3 {
		if _, err := md.Map(0, v); err != nil {
			t.Fatal(err)
		}
		model[v] = true
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	// Remove most of the leaves around it, which merges and evens them out.
	for v := uint64(0); v < 1200; v++ {
		if v%4 != 0 {
			n, err := md.Unmap(0, v, v+1)
			if err != nil {
				t.Fatal(err)
			}
			if (n == 1) != model[v] {
				t.Fatalf("unmap %d removed %d, the model has it: %v", v, n, model[v])
			}
			delete(model, v)
		}
	}
	if err := md.Commit(); err != nil {
		t.Fatal(err)
	}
	if p, err = thin.NewPool(dev, img.size); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]bool{}
	for m, err := range p.Mappings(0, 0, math.MaxUint64) {
		if err != nil {
			t.Fatalf("reading thin 0 back: %v", err)
		}
		got[m.VBlock] = true
	}
	if !maps.Equal(got, model) {
		t.Fatalf("thin 0 maps %d blocks, the model %d", len(got), len(model))
	}
	// Thin 1 never shared the damage.
	n := 0
	for _, err := range p.Mappings(1, 0, math.MaxUint64) {
		if err != nil {
			t.Fatalf("reading thin 1 back: %v", err)
		}
		n++
	}
	if n != 1200 {
		t.Fatalf("thin 1 maps %d blocks, want 1200", n)
	}
}
