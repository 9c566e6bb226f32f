package gen

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/blobindex"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/transaction"
)

// DamageKind is a kind of damage Damage can inject.
type DamageKind int

const (
	// LeakData marks a free data block as in use (count 1) in the data
	// space map: a leak, harmless to the kernel.
	LeakData DamageKind = iota + 1
	// LeakMetadata marks a free metadata block as in use.
	LeakMetadata
	// DataRefCount changes the reference count of a data block in use by
	// Injection.Delta (default -1: too low, so the block could be
	// reallocated while still mapped; +1 is a leak).
	DataRefCount
	// MetadataRefCount changes the reference count of a metadata block in
	// use by Injection.Delta (default -1).
	MetadataRefCount
	// NodeChecksum corrupts the checksum of a node of a device's mapping
	// tree (a leaf, or an internal node with Injection.Internal).
	NodeChecksum
	// KeyOrder swaps two adjacent entries of a mapping-tree leaf, so its
	// keys are out of order; the node is resealed.
	KeyOrder
	// MissingDetails removes a device's entry from the device-details
	// tree (through the write path: only that entry is missing).
	MissingDetails
	// MappedBlocks changes a device's mapped_blocks by Injection.Delta
	// (default +1), through the write path.
	MappedBlocks
	// SnapshotChecksum corrupts the checksum of the metadata snapshot's
	// superblock copy (the held root).
	SnapshotChecksum
	// TornSuperblock replaces the superblock by a torn write of the last
	// commit over the one before: the first bytes new, the rest old.
	TornSuperblock
)

var damageNames = []string{"", "leak-data", "leak-metadata", "data-refcount", "metadata-refcount",
	"node-checksum", "key-order", "missing-details", "mapped-blocks", "metadata-snap", "torn-superblock"}

// DamageKinds lists every kind.
func DamageKinds() []DamageKind {
	var ks []DamageKind
	for k := LeakData; k <= TornSuperblock; k++ {
		ks = append(ks, k)
	}
	return ks
}

// String returns the kind's name (as ParseDamage reads it).
func (k DamageKind) String() string {
	if k > 0 && int(k) < len(damageNames) {
		return damageNames[k]
	}
	return "damage(" + strconv.Itoa(int(k)) + ")"
}

// Injection is one damage to inject.
type Injection struct {
	Kind DamageKind
	// Seed chooses the block or device among the candidates.
	Seed uint64
	// Delta is the change of a count (RefCount kinds: default -1;
	// MappedBlocks: default +1).
	Delta int
	// Overflow makes the RefCount kinds pick a count held in the overflow
	// tree (3 or more).
	Overflow bool
	// Internal makes NodeChecksum pick an internal node.
	Internal bool
}

// String returns the injection in the form ParseDamage reads.
func (in Injection) String() string {
	s := in.Kind.String()
	var opts []string
	if in.Seed != 0 {
		opts = append(opts, "seed="+strconv.FormatUint(in.Seed, 10))
	}
	if in.Delta != 0 {
		opts = append(opts, "delta="+strconv.Itoa(in.Delta))
	}
	if in.Overflow {
		opts = append(opts, "overflow")
	}
	if in.Internal {
		opts = append(opts, "internal")
	}
	if len(opts) > 0 {
		s += ":" + strings.Join(opts, ",")
	}
	return s
}

// ParseDamage reads "KIND[:opt,...]" where the options are seed=N,
// delta=N, overflow and internal.
func ParseDamage(s string) (Injection, error) {
	name, rest, _ := strings.Cut(s, ":")
	in := Injection{}
	for k := LeakData; k <= TornSuperblock; k++ {
		if k.String() == name {
			in.Kind = k
		}
	}
	if in.Kind == 0 {
		return in, fmt.Errorf("gen: unknown damage %q (one of %s)", name, strings.Join(damageNames[1:], ", "))
	}
	if rest == "" {
		return in, nil
	}
	for _, o := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(o, "=")
		var err error
		switch k {
		case "seed":
			in.Seed, err = strconv.ParseUint(v, 10, 64)
		case "delta":
			in.Delta, err = strconv.Atoi(v)
		case "overflow":
			in.Overflow = true
		case "internal":
			in.Internal = true
		default:
			err = errors.New("unknown option")
		}
		if err != nil {
			return in, fmt.Errorf("gen: damage %q: option %q: %v", s, o, err)
		}
	}
	return in, nil
}

// Verdict is what a thin_check makes of a pool.
type Verdict int

const (
	// Clean: exit 0.
	Clean Verdict = iota
	// NonFatal: only non-fatal errors (leaks): exit 1, but exit 0 with
	// --ignore-non-fatal-errors.
	NonFatal
	// Fatal: exit 1 with or without --ignore-non-fatal-errors.
	Fatal
)

// String names the verdict.
func (v Verdict) String() string {
	return [...]string{"clean", "non-fatal", "fatal"}[v]
}

// Expected is a finding thinmeta's check (thin/check) must report.
type Expected struct {
	Severity  check.Severity
	Area      string
	Device    uint64
	HasDevice bool
	// Err is the sentinel the finding's error wraps.
	Err error
	// Block, if HasBlock, is the block the finding names: the
	// *transaction.CorruptError's Block, or else "block N" in its text
	// (a metadata or data block, by Area).
	Block    uint64
	HasBlock bool
}

// String formats the expectation like a check.Finding.
func (e Expected) String() string {
	var b strings.Builder
	b.WriteString(e.Area)
	if e.HasDevice {
		fmt.Fprintf(&b, ", thin device %d", e.Device)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if e.HasBlock {
		fmt.Fprintf(&b, " (block %d)", e.Block)
	}
	if e.Severity == check.NonFatal {
		b.WriteString(" (non-fatal)")
	}
	return b.String()
}

// Matches reports whether f is the expected finding.
func (e Expected) Matches(f check.Finding) bool {
	if f.Severity != e.Severity || f.Area != e.Area || f.HasDevice != e.HasDevice ||
		(e.HasDevice && f.Device != e.Device) || !errors.Is(f.Err, e.Err) {
		return false
	}
	if !e.HasBlock {
		return true
	}
	var ce *transaction.CorruptError
	if errors.As(f.Err, &ce) {
		return ce.Block == e.Block
	}
	return regexp.MustCompile(`\bblock ` + strconv.FormatUint(e.Block, 10) + `\b`).MatchString(f.Err.Error())
}

// Report says precisely what Damage did and what a check must find.
type Report struct {
	Injection Injection
	// Description says what was changed, in words.
	Description string
	// Written lists the metadata blocks written, in order.
	Written []uint64
	// Block is the metadata block damaged (or, for LeakData and
	// DataRefCount, the data block whose count changed).
	Block uint64
	// Device is the thin device concerned, if HasDevice.
	Device    uint64
	HasDevice bool
	// ThinCheck is thin_check 0.9.0's verdict on the damaged pool (Fatal
	// for every extended pool, which it refuses).
	ThinCheck Verdict
	// ThinCheck110 is thin_check 1.1.0's verdict (docs/CHECK.md says
	// where and why it differs from 0.9.0's): Fatal for every extended
	// pool too.
	ThinCheck110 Verdict
	// Findings are exactly the findings thin/check reports.
	Findings []Expected
}

// String formats the report on one line.
func (r *Report) String() string {
	fs := make([]string, len(r.Findings))
	for i, f := range r.Findings {
		fs[i] = f.String()
	}
	return fmt.Sprintf("%v: %s; thin_check: %v (1.1.0: %v); findings: %s", r.Injection.Kind, r.Description, r.ThinCheck, r.ThinCheck110, strings.Join(fs, "; "))
}

// Match compares the findings of a check with the expected ones: the
// same number, each matched once.
func (r *Report) Match(fs []check.Finding) error {
	used := make([]bool, len(fs))
	var missing []string
	for _, e := range r.Findings {
		found := false
		for i, f := range fs {
			if !used[i] && e.Matches(f) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, e.String())
		}
	}
	var extra []string
	for i, f := range fs {
		if !used[i] {
			extra = append(extra, f.String())
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return nil
	}
	return fmt.Errorf("gen: findings differ from the report of %v: missing [%s], unexpected [%s]",
		r.Injection.Kind, strings.Join(missing, "; "), strings.Join(extra, "; "))
}

// Image is a metadata image that Damage edits in place.
type Image interface {
	io.ReaderAt
	io.WriterAt
}

// ErrNoCandidate means the pool has nothing the injection can damage (no
// free block, no shared block, no metadata snapshot...).
var ErrNoCandidate = errors.New("nothing in the pool to damage that way")

// Damage injects one damage into the clean pool in img (size bytes) and
// reports it. rec is the Record of the pool's generation; only
// TornSuperblock needs it (it may be nil otherwise). Semantic edits are
// resealed, or made through the write path, so that only the intended
// inconsistency is visible.
func Damage(img Image, size int64, rec *Record, in Injection) (*Report, error) {
	d := &damager{
		img:  &trackingImage{Image: img},
		size: size,
		rng:  rand.New(rand.NewPCG(in.Seed, uint64(in.Kind)^seedSalt)),
		rep:  &Report{Injection: in},
	}
	var err error
	d.p, err = thin.NewPool(d.img, size)
	if err != nil {
		return nil, err
	}
	switch in.Kind {
	case LeakData, LeakMetadata:
		err = d.leak(in.Kind == LeakMetadata)
	case DataRefCount, MetadataRefCount:
		delta := in.Delta
		if delta == 0 {
			delta = -1
		}
		err = d.refCount(in.Kind == MetadataRefCount, delta, in.Overflow)
	case NodeChecksum, KeyOrder:
		err = d.node(in.Kind, in.Internal)
	case MissingDetails:
		err = d.missingDetails()
	case MappedBlocks:
		delta := in.Delta
		if delta == 0 {
			delta = 1
		}
		err = d.mappedBlocks(delta)
	case SnapshotChecksum:
		err = d.snapshotChecksum()
	case TornSuperblock:
		if rec == nil || len(rec.PreviousSuperblock) != transaction.BlockSize {
			return nil, fmt.Errorf("%w: a torn superblock needs the previous superblock (Record)", ErrNoCandidate)
		}
		err = d.torn(rec.PreviousSuperblock)
	default:
		err = fmt.Errorf("gen: unknown damage kind %d", in.Kind)
	}
	if err != nil {
		return nil, err
	}
	if d.p.Variant() == thin.Extended {
		// thin_check 0.9.0 refuses an extended pool whatever it holds
		// (its details values are not 24 bytes).
		d.rep.ThinCheck, d.rep.ThinCheck110 = Fatal, Fatal
	}
	d.rep.Written = d.img.written
	return d.rep, nil
}

// trackingImage records the blocks written.
type trackingImage struct {
	Image
	written []uint64
}

// WriteAt writes and records the blocks written.
func (t *trackingImage) WriteAt(b []byte, off int64) (int, error) {
	for o := off; o < off+int64(len(b)); o += transaction.BlockSize {
		blk := uint64(o / transaction.BlockSize)
		if !slices.Contains(t.written, blk) {
			t.written = append(t.written, blk)
		}
	}
	return t.Image.WriteAt(b, off)
}

// Flush flushes the image if it can be.
func (t *trackingImage) Flush() error {
	if f, ok := t.Image.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	if f, ok := t.Image.(interface{ Sync() error }); ok {
		return f.Sync()
	}
	return nil
}

type damager struct {
	img  *trackingImage
	size int64
	rng  *rand.Rand
	p    *thin.Pool
	rep  *Report
}

func (d *damager) read(b uint64) ([]byte, error) {
	buf := make([]byte, transaction.BlockSize)
	if _, err := d.img.ReadAt(buf, int64(b)*transaction.BlockSize); err != nil {
		return nil, &transaction.IOError{Block: b, Op: "read", Err: err}
	}
	return buf, nil
}

// write seals buf for location b with salt and writes it.
func (d *damager) write(b uint64, buf []byte, salt uint32) error {
	transaction.Seal(buf, b, salt)
	return d.writeRaw(b, buf)
}

func (d *damager) writeRaw(b uint64, buf []byte) error {
	if _, err := d.img.WriteAt(buf, int64(b)*transaction.BlockSize); err != nil {
		return &transaction.IOError{Block: b, Op: "write", Err: err}
	}
	return nil
}

func (d *damager) expect(e Expected) { d.rep.Findings = append(d.rep.Findings, e) }

func (d *damager) setDevice(id uint64) { d.rep.Device, d.rep.HasDevice = id, true }

// findLeaf descends a tree whose nodes are sound from root to the leaf
// whose range holds key, returning its block.
func (d *damager) findLeaf(root, key uint64) (uint64, btree.Node, error) {
	b := root
	for range btree.MaxDepth {
		buf, err := d.read(b)
		if err != nil {
			return 0, nil, err
		}
		n := btree.Node(buf)
		if n.IsLeaf() {
			return b, n, nil
		}
		i := n.LowerBound(key)
		if i < 0 {
			return 0, nil, fmt.Errorf("gen: key %d below tree %d", key, root)
		}
		b = n.Uint64Value(i)
	}
	return 0, nil, fmt.Errorf("gen: tree %d too deep", root)
}

// smName is a space map's area name in check findings.
func smName(metadata bool) string {
	if metadata {
		return "metadata space map"
	}
	return "data space map"
}

// counts reads a space map's non-zero counts.
func (d *damager) counts(metadata bool) (*spacemap.Map, map[uint64]uint32, error) {
	var m *spacemap.Map
	var err error
	if metadata {
		m, err = d.p.MetadataSpaceMap()
	} else {
		m, err = d.p.DataSpaceMap()
	}
	if err != nil {
		return nil, nil, err
	}
	cs := make(map[uint64]uint32)
	for bc, err := range m.Counts() {
		if err != nil {
			return nil, nil, err
		}
		cs[bc.Block] = bc.Count
	}
	return m, cs, nil
}

// setCount changes block b's count in a space map from old to c, keeping
// the bitmap, the overflow tree, the index and nr_allocated consistent.
// Changes that cross 3 (moving a count into or out of the overflow tree)
// are not supported.
func (d *damager) setCount(metadata bool, b uint64, old, c uint32) error {
	if (old >= 3) != (c >= 3) {
		return fmt.Errorf("gen: count %d -> %d crosses the overflow threshold", old, c)
	}
	sbBuf, err := d.read(superblock.Location)
	if err != nil {
		return err
	}
	sb := superblock.Decode(sbBuf)
	slot := sb.DataSpaceMapRoot[:]
	if metadata {
		slot = sb.MetadataSpaceMapRoot[:]
	}
	root := spacemap.DecodeRoot(slot)
	i, e := b/spacemap.EntriesPerBitmap, int(b%spacemap.EntriesPerBitmap)

	// The index entry of the bitmap: in the index block, or a leaf of
	// the index tree.
	var idxBlock uint64
	var idxBuf []byte
	var ieBytes []byte
	idxSalt := transaction.SaltIndex
	if metadata {
		idxBlock = root.BitmapRoot
		if idxBuf, err = d.read(idxBlock); err != nil {
			return err
		}
		off := transaction.HeaderSize + spacemap.IndexEntrySize*int(i)
		ieBytes = idxBuf[off : off+spacemap.IndexEntrySize]
	} else {
		idxSalt = transaction.SaltNode
		var n btree.Node
		if idxBlock, n, err = d.findLeaf(root.BitmapRoot, i); err != nil {
			return err
		}
		j := n.LowerBound(i)
		if j < 0 || n.Key(j) != i {
			return fmt.Errorf("gen: no index entry for bitmap %d", i)
		}
		idxBuf, ieBytes = n, n.Value(j)
	}
	ie := spacemap.DecodeIndexEntry(ieBytes)
	bm, err := d.read(ie.Blocknr)
	if err != nil {
		return err
	}
	if old >= 3 {
		lb, n, err := d.findLeaf(root.RefCountRoot, b)
		if err != nil {
			return err
		}
		j := n.LowerBound(b)
		if j < 0 || n.Key(j) != b {
			return fmt.Errorf("gen: no overflow count for block %d", b)
		}
		spacemap.EncodeRefCount(n.Value(j), c)
		return d.write(lb, n, transaction.SaltNode)
	}
	spacemap.SetBitmapEntry(bm, e, c)
	if err := d.write(ie.Blocknr, bm, transaction.SaltBitmap); err != nil {
		return err
	}
	switch {
	case old == 0 && c > 0:
		ie.NrFree--
		if ie.NoneFreeBefore == uint32(e) {
			ie.NoneFreeBefore++
		}
		root.NrAllocated++
	case old > 0 && c == 0:
		ie.NrFree++
		ie.NoneFreeBefore = min(ie.NoneFreeBefore, uint32(e))
		root.NrAllocated--
	default:
		return nil
	}
	ie.Encode(ieBytes)
	if err := d.write(idxBlock, idxBuf, idxSalt); err != nil {
		return err
	}
	root.Encode(slot)
	sb.Encode(sbBuf)
	return d.write(superblock.Location, sbBuf, transaction.SaltSuperblock)
}

// leak marks a random free block of a space map as in use.
func (d *damager) leak(metadata bool) error {
	m, cs, err := d.counts(metadata)
	if err != nil {
		return err
	}
	n := m.NrBlocks()
	if metadata {
		n = min(n, uint64(d.size)/transaction.BlockSize)
	}
	if uint64(len(cs)) >= n {
		return fmt.Errorf("%w: the %s has no free block", ErrNoCandidate, smName(metadata))
	}
	var b uint64
	for {
		b = d.rng.Uint64N(n)
		if _, used := cs[b]; !used {
			break
		}
	}
	if err := d.setCount(metadata, b, 0, 1); err != nil {
		return err
	}
	d.rep.Block = b
	kind := "data"
	if metadata {
		kind = "metadata"
	}
	d.rep.Description = fmt.Sprintf("free %s block %d marked in use (count 1) in the %s", kind, b, smName(metadata))
	d.rep.ThinCheck = dataVerdict(metadata, NonFatal)
	d.rep.ThinCheck110 = NonFatal // a count of 1 on an unreferenced block
	d.expect(Expected{Severity: check.NonFatal, Area: smName(metadata), Err: check.ErrLeak, Block: b, HasBlock: true})
	return nil
}

// dataVerdict returns v for the metadata space map and Clean for the data
// space map: thin_check 0.9.0 does not count data block references ("data
// block reference counting is disabled", metadata_checker.cc), so it
// passes any damage to the data space map's counts.
func dataVerdict(metadata bool, v Verdict) Verdict {
	if metadata {
		return v
	}
	return Clean
}

// refCount changes a block's count by delta.
func (d *damager) refCount(metadata bool, delta int, overflow bool) error {
	if delta != 1 && delta != -1 {
		return fmt.Errorf("gen: reference count delta %d: only +1 and -1 are supported", delta)
	}
	_, cs, err := d.counts(metadata)
	if err != nil {
		return err
	}
	ok := func(c uint32) bool {
		nc := int64(c) + int64(delta)
		if overflow {
			return c >= 3 && nc >= 3
		}
		// Below 3 (the bitmap alone), and still in use: a block freed
		// by the damage would change the allocation summaries too.
		return c < 3 && nc >= 1 && nc < 3
	}
	var cands []uint64
	for b, c := range cs {
		if ok(c) && !(metadata && b == superblock.Location) {
			cands = append(cands, b)
		}
	}
	if len(cands) == 0 {
		return fmt.Errorf("%w: no %s count fits (overflow %v, delta %d)", ErrNoCandidate, smName(metadata), overflow, delta)
	}
	slices.Sort(cands)
	b := cands[d.rng.IntN(len(cands))]
	old := cs[b]
	nc := uint32(int64(old) + int64(delta))
	if err := d.setCount(metadata, b, old, nc); err != nil {
		return err
	}
	d.rep.Block = b
	where := "bitmap"
	if overflow {
		where = "overflow tree"
	}
	d.rep.Description = fmt.Sprintf("count of block %d in the %s changed from %d to %d (in its %s)", b, smName(metadata), old, nc, where)
	// 1.1.0 takes any other difference of count for fatal, a count too
	// high on a block in use included.
	d.rep.ThinCheck110 = Fatal
	if delta < 0 {
		d.rep.ThinCheck = dataVerdict(metadata, Fatal)
		d.expect(Expected{Severity: check.Fatal, Area: smName(metadata), Err: check.ErrRefCount, Block: b, HasBlock: true})
	} else {
		d.rep.ThinCheck = dataVerdict(metadata, NonFatal)
		d.expect(Expected{Severity: check.NonFatal, Area: smName(metadata), Err: check.ErrExtraCount, Block: b, HasBlock: true})
	}
	return nil
}

// reach records, for every node of the live devices' mapping trees, the
// devices that reach it, and every block reachable from the metadata
// snapshot.
type reach struct {
	devs     map[uint64][]uint64 // node -> live devices, ascending
	leaf     map[uint64]bool
	entries  map[uint64]int
	snapshot map[uint64]bool
}

func (d *damager) reach() (*reach, error) {
	r := &reach{devs: map[uint64][]uint64{}, leaf: map[uint64]bool{}, entries: map[uint64]int{}, snapshot: map[uint64]bool{}}
	for dr, err := range d.p.DeviceRoots() {
		if err != nil {
			return nil, err
		}
		err := d.p.DeviceTree(dr.Root).WalkNodes(func(b uint64, n btree.Node) error {
			if ds := r.devs[b]; len(ds) == 0 || ds[len(ds)-1] != dr.ID {
				r.devs[b] = append(ds, dr.ID)
			}
			r.leaf[b] = n.IsLeaf()
			r.entries[b] = n.NrEntries()
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if !d.p.HasMetadataSnapshot() {
		return r, nil
	}
	s, err := d.p.MetadataSnapshot()
	if err != nil {
		return nil, err
	}
	mark := func(b uint64, _ btree.Node) error { r.snapshot[b] = true; return nil }
	if err := s.DetailsTree().WalkNodes(mark); err != nil {
		return nil, err
	}
	if err := s.MappingTree().WalkNodes(mark); err != nil {
		return nil, err
	}
	for dr, err := range s.DeviceRoots() {
		if err != nil {
			return nil, err
		}
		if err := s.DeviceTree(dr.Root).WalkNodes(mark); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// node damages a node of a device's mapping tree: one only that device
// reaches (and not the metadata snapshot) if there is one.
func (d *damager) node(kind DamageKind, internal bool) error {
	r, err := d.reach()
	if err != nil {
		return err
	}
	var own, any []uint64
	for b, ds := range r.devs {
		if r.leaf[b] == internal || (kind == KeyOrder && r.entries[b] < 2) {
			continue
		}
		any = append(any, b)
		if len(ds) == 1 && !r.snapshot[b] {
			own = append(own, b)
		}
	}
	cands := own
	if len(cands) == 0 {
		cands = any
	}
	if len(cands) == 0 {
		return fmt.Errorf("%w: no %s mapping node", ErrNoCandidate, map[bool]string{true: "internal", false: "leaf"}[internal])
	}
	slices.Sort(cands)
	b := cands[d.rng.IntN(len(cands))]
	buf, err := d.read(b)
	if err != nil {
		return err
	}
	dev := r.devs[b][0] // the check walks devices in id order
	d.rep.Block = b
	d.setDevice(dev)
	what := "leaf"
	if internal {
		what = "internal node"
	}
	shared := ""
	if len(r.devs[b]) > 1 || r.snapshot[b] {
		shared = fmt.Sprintf(" (shared: devices %v, metadata snapshot %v)", r.devs[b], r.snapshot[b])
	}
	var sentinel error
	if kind == NodeChecksum {
		buf[0] ^= 0xff
		if err := d.writeRaw(b, buf); err != nil {
			return err
		}
		sentinel = transaction.ErrChecksum
		d.rep.Description = fmt.Sprintf("checksum of mapping %s %d of device %d corrupted%s", what, b, dev, shared)
	} else {
		n := btree.Node(buf)
		i := d.rng.IntN(n.NrEntries() - 1)
		ki, vi := n.Key(i), slices.Clone(n.Value(i))
		n.SetKey(i, n.Key(i+1))
		n.SetValue(i, n.Value(i+1))
		n.SetKey(i+1, ki)
		n.SetValue(i+1, vi)
		if err := d.write(b, buf, transaction.SaltNode); err != nil {
			return err
		}
		sentinel = btree.ErrKeyOrder
		d.rep.Description = fmt.Sprintf("entries %d and %d (keys %d, %d) of mapping leaf %d of device %d swapped%s",
			i, i+1, n.Key(i+1), n.Key(i), b, dev, shared)
	}
	d.rep.ThinCheck, d.rep.ThinCheck110 = Fatal, Fatal
	d.expect(Expected{Severity: check.Fatal, Area: "mapping tree", Device: dev, HasDevice: true, Err: sentinel, Block: b, HasBlock: true})
	return nil
}

// liveDevice picks a live device at random.
func (d *damager) liveDevice() (uint64, thin.Details, error) {
	var devs []thin.Device
	for dv, err := range d.p.Devices() {
		if err != nil {
			return 0, thin.Details{}, err
		}
		devs = append(devs, dv)
	}
	if len(devs) == 0 {
		return 0, thin.Details{}, fmt.Errorf("%w: the pool has no device", ErrNoCandidate)
	}
	dv := devs[d.rng.IntN(len(devs))]
	return dv.ID, dv.Details, nil
}

// device returns img as a transaction.Device for the write path.
func (d *damager) device() transaction.Device { return d.img }

// missingDetails removes a device's details entry through the write path.
func (d *damager) missingDetails() error {
	id, _, err := d.liveDevice()
	if err != nil {
		return err
	}
	tm := transaction.NewManager(d.device(), d.size)
	sb, err := superblock.Read(tm.Reader(), superblock.Location, superblock.IncompatBlobs)
	if err != nil {
		return err
	}
	msm, err := spacemap.OpenWritable(tm, sb.MetadataSpaceMapRoot[:], true)
	if err != nil {
		return err
	}
	tm.SetSpaceMap(msm)
	vt := &btree.ValueType{Size: thin.DetailsSize + int(sb.BlobSize)}
	root, removed, err := btree.Remove(tm, sb.DeviceDetailsRoot, vt, id)
	if err != nil {
		return err
	}
	if !removed {
		return fmt.Errorf("gen: device %d has no details entry", id)
	}
	sb.DeviceDetailsRoot = root
	if err := msm.Commit(); err != nil {
		return err
	}
	if err := tm.Flush(); err != nil {
		return err
	}
	msm.Root().Encode(sb.MetadataSpaceMapRoot[:])
	buf := make([]byte, transaction.BlockSize)
	sb.Encode(buf)
	if err := tm.CommitSuperblock(buf, superblock.Validator); err != nil {
		return err
	}
	d.setDevice(id)
	d.rep.Block = root
	d.rep.Description = fmt.Sprintf("details entry of device %d removed (new details root %d, committed through the write path)", id, root)
	// thin_check 0.9.0 walks the details and mapping trees separately
	// and does not compare their keys; 1.1.0 does.
	d.rep.ThinCheck, d.rep.ThinCheck110 = Clean, Fatal
	d.expect(Expected{Severity: check.Fatal, Area: "device details", Device: id, HasDevice: true, Err: thin.ErrDetailsMismatch})
	if sb.Extended() {
		// The thin count still counts the device, and its entry in the
		// blob index names a thin the details no longer have.
		d.expect(Expected{Severity: check.Fatal, Area: "extended superblock", Err: check.ErrExtendedCounters})
		dev, err := d.p.Device(id)
		if err != nil {
			return err
		}
		if _, indexed := blobindex.Hash(dev.Blob[:sb.IndexBytes]); indexed && sb.BlobIndexRoot != 0 {
			d.expect(Expected{Severity: check.Fatal, Area: "blob index", Err: check.ErrBlobIndex, Block: sb.BlobIndexRoot, HasBlock: true})
		}
	}
	return nil
}

// mappedBlocks changes a device's mapped_blocks through the write path.
func (d *damager) mappedBlocks(delta int) error {
	id, det, err := d.liveDevice()
	if err != nil {
		return err
	}
	nv := int64(det.MappedBlocks) + int64(delta)
	if delta == 0 || nv < 0 {
		return fmt.Errorf("%w: mapped_blocks %d of device %d cannot change by %d", ErrNoCandidate, det.MappedBlocks, id, delta)
	}
	md, err := thin.NewMetadata(d.device(), d.size, nil)
	if err != nil {
		return err
	}
	det.MappedBlocks = uint64(nv)
	if err := md.SetDetails(id, det); err != nil {
		return err
	}
	if err := md.Commit(); err != nil {
		return err
	}
	d.setDevice(id)
	d.rep.Description = fmt.Sprintf("mapped_blocks of device %d changed from %d to %d (committed through the write path)",
		id, int64(det.MappedBlocks)-int64(delta), nv)
	// thin_check 0.9.0 does not compare mapped_blocks with the tree;
	// 1.1.0 does.
	d.rep.ThinCheck, d.rep.ThinCheck110 = Clean, Fatal
	d.expect(Expected{Severity: check.Fatal, Area: "mapping tree", Device: id, HasDevice: true, Err: check.ErrMappedBlocks})
	return nil
}

// snapshotChecksum corrupts the metadata snapshot's superblock copy.
func (d *damager) snapshotChecksum() error {
	held := d.p.LiveSuperblock().HeldRoot
	if held == 0 {
		return fmt.Errorf("%w: the pool holds no metadata snapshot", ErrNoCandidate)
	}
	buf, err := d.read(held)
	if err != nil {
		return err
	}
	buf[0] ^= 0xff
	if err := d.writeRaw(held, buf); err != nil {
		return err
	}
	d.rep.Block = held
	d.rep.Description = fmt.Sprintf("checksum of the metadata snapshot's superblock (block %d) corrupted", held)
	d.rep.ThinCheck, d.rep.ThinCheck110 = Fatal, Fatal
	d.expect(Expected{Severity: check.Fatal, Area: "metadata snapshot", Err: transaction.ErrChecksum, Block: held, HasBlock: true})
	return nil
}

// torn writes block 0 as a torn write of the current superblock over prev.
func (d *damager) torn(prev []byte) error {
	cur, err := d.read(superblock.Location)
	if err != nil {
		return err
	}
	first, last := -1, -1
	for i := 4; i < transaction.BlockSize; i++ { // bytes 0-3: the checksum
		if cur[i] != prev[i] {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return fmt.Errorf("%w: the last two commits wrote the same superblock", ErrNoCandidate)
	}
	// The write stops after t bytes, first <= t <= last: the old bytes
	// from t on include one that differs from the new.
	var t int
	var torn []byte
	for range 64 {
		t = first + d.rng.IntN(last-first+1)
		torn = append(slices.Clone(cur[:t]), prev[t:]...)
		if superblock.Validator.Validate(torn, superblock.Location) != nil {
			break
		}
	}
	if err := d.writeRaw(superblock.Location, torn); err != nil {
		return err
	}
	d.rep.Block = superblock.Location
	d.rep.Description = fmt.Sprintf("superblock torn after byte %d: bytes [0, %d) from the last commit, the rest from the one before", t, t)
	d.rep.ThinCheck, d.rep.ThinCheck110 = Fatal, Fatal
	d.expect(Expected{Severity: check.Fatal, Area: "superblock", Err: transaction.ErrChecksum, Block: superblock.Location, HasBlock: true})
	return nil
}
