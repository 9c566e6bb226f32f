package check_test

// Clean images for the corruption test, and in-place editing of them:
// which block is what, space-map counts, details, metadata snapshots.

import (
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// role is what an in-use metadata block is used as.
type role int

const (
	roleSuperblock role = iota
	roleSnapSuperblock
	roleDetailsInternal
	roleDetailsLeaf
	roleTopInternal
	roleTopLeaf
	roleBottomInternal
	roleBottomLeaf
	roleSnapNode // a node reachable only from the metadata snapshot
	roleDataIndex
	roleDataOverflow
	roleMetaOverflow
	roleDataBitmap
	roleMetaBitmap
	roleMetaIndex
	roleFree   // a block no structure uses
	roleDevice // not a block: the size of the device
	nRoles
)

var roleNames = [nRoles]string{
	"superblock", "snapshot superblock", "details internal", "details leaf",
	"top internal", "top leaf", "mapping internal", "mapping leaf", "snapshot-only node",
	"data index node", "data overflow node", "metadata overflow node",
	"data bitmap", "metadata bitmap", "metadata index", "free block", "device size",
}

func (r role) String() string { return roleNames[r] }

func (r role) salt() uint32 {
	switch r {
	case roleSuperblock, roleSnapSuperblock:
		return transaction.SaltSuperblock
	case roleDataBitmap, roleMetaBitmap:
		return transaction.SaltBitmap
	case roleMetaIndex:
		return transaction.SaltIndex
	}
	return transaction.SaltNode
}

func (r role) isNode() bool { return r.salt() == transaction.SaltNode }

// layout maps the in-use blocks of a clean image to their roles.
type layout struct {
	nrBlocks uint64 // metadata device size in blocks
	nrData   uint64
	roles    map[uint64]role
	byRole   [nRoles][]uint64
	inUse    []uint64
	free     []uint64 // metadata blocks not in use (within the space map)
	data     []uint64 // data blocks in use (a sample)
	held     uint64
	leafDevs map[uint64][]uint64 // live mapping leaf → the devices whose trees hold it
}

// mapLayout walks a clean image with thinmeta's readers (which must
// succeed: the image is clean) and records every block's role.
func mapLayout(t testing.TB, img string) *layout {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	p, err := thin.NewPool(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	l := &layout{nrBlocks: uint64(st.Size()) / transaction.BlockSize, nrData: p.NrDataBlocks(), roles: map[uint64]role{},
		leafDevs: map[uint64][]uint64{}}
	add := func(b uint64, r role) {
		if _, ok := l.roles[b]; !ok {
			l.roles[b] = r
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", img, err)
		}
	}
	nodes := func(tr btree.Tree, internal, leaf role) {
		must(tr.WalkNodes(func(b uint64, n btree.Node) error {
			if n.IsLeaf() {
				add(b, leaf)
			} else {
				add(b, internal)
			}
			return nil
		}))
	}
	dataSeen := map[uint64]bool{}
	trees := func(v *thin.Pool, snap bool) {
		pick := func(r role) role {
			if snap {
				return roleSnapNode
			}
			return r
		}
		nodes(v.DetailsTree(), pick(roleDetailsInternal), pick(roleDetailsLeaf))
		nodes(v.MappingTree(), pick(roleTopInternal), pick(roleTopLeaf))
		for dr, err := range v.DeviceRoots() {
			must(err)
			tr := v.DeviceTree(dr.Root)
			nodes(tr, pick(roleBottomInternal), pick(roleBottomLeaf))
			if snap {
				continue
			}
			must(tr.WalkLeaves(0, ^uint64(0), func(b uint64, _ btree.Node) error {
				l.leafDevs[b] = append(l.leafDevs[b], dr.ID)
				return nil
			}))
			for m, err := range thin.MappingsOf(tr, 0, ^uint64(0)) {
				must(err)
				if !dataSeen[m.Block] && len(dataSeen) < 4096 {
					dataSeen[m.Block] = true
					l.data = append(l.data, m.Block)
				}
			}
		}
	}
	add(0, roleSuperblock)
	trees(p, false)
	if p.HasMetadataSnapshot() {
		l.held = p.LiveSuperblock().HeldRoot
		add(l.held, roleSnapSuperblock)
		s, err := p.MetadataSnapshot()
		must(err)
		trees(s, true)
	}
	ovf := func(root uint64, r role) {
		nodes(btree.Tree{R: p.Reader(), Root: root, ValueSize: spacemap.RefCountValueSize}, r, r)
	}
	dsm, err := p.DataSpaceMap()
	must(err)
	nodes(btree.Tree{R: p.Reader(), Root: dsm.Root().BitmapRoot, ValueSize: spacemap.IndexEntrySize}, roleDataIndex, roleDataIndex)
	for _, ie := range dsm.Index() {
		add(ie.Blocknr, roleDataBitmap)
	}
	ovf(dsm.Root().RefCountRoot, roleDataOverflow)
	msm, err := p.MetadataSpaceMap()
	must(err)
	add(msm.Root().BitmapRoot, roleMetaIndex)
	for _, ie := range msm.Index() {
		add(ie.Blocknr, roleMetaBitmap)
	}
	ovf(msm.Root().RefCountRoot, roleMetaOverflow)
	for b, r := range l.roles {
		l.byRole[r] = append(l.byRole[r], b)
		l.inUse = append(l.inUse, b)
	}
	for r := range l.byRole {
		slices.Sort(l.byRole[r])
	}
	slices.Sort(l.inUse)
	for b := uint64(1); b < min(l.nrBlocks, msm.NrBlocks()) && len(l.free) < 64; b++ {
		if _, ok := l.roles[b]; !ok {
			l.free = append(l.free, b)
		}
	}
	l.byRole[roleFree] = l.free
	return l
}

// bitmapIndex returns, for each bitmap block of the image, its position in
// its space map's index (block b of that map is entry b%EntriesPerBitmap of
// bitmap b/EntriesPerBitmap), and each map's nr_blocks.
func bitmapIndex(t testing.TB, img string) (pos map[uint64]uint64, dataBlocks, metaBlocks uint64) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	p, err := thin.NewPool(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	pos = map[uint64]uint64{}
	dsm, err := p.DataSpaceMap()
	if err != nil {
		t.Fatal(err)
	}
	msm, err := p.MetadataSpaceMap()
	if err != nil {
		t.Fatal(err)
	}
	for i, ie := range dsm.Index() {
		pos[ie.Blocknr] = uint64(i)
	}
	for i, ie := range msm.Index() {
		pos[ie.Blocknr] = uint64(i)
	}
	return pos, dsm.NrBlocks(), msm.NrBlocks()
}

// image is a metadata image opened for editing in place.
type image struct {
	t      testing.TB
	path   string
	f      *os.File
	undo   map[uint64][]byte // originals of the blocks written since begin
	tail   []byte            // with tailAt: what truncate cut off since begin
	tailAt int64
}

// begin starts recording the original contents of written blocks.
func (im *image) begin() { im.undo, im.tail = map[uint64][]byte{}, nil }

// rollback restores every block written, and the size, since begin.
func (im *image) rollback() {
	if im.tail != nil {
		if _, err := im.f.WriteAt(im.tail, im.tailAt); err != nil {
			im.t.Fatal(err)
		}
		im.tail = nil
	}
	u := im.undo
	im.undo = nil
	for b, data := range u {
		im.write(b, data)
	}
}

// truncate cuts the device to size bytes (once between begin and
// rollback).
func (im *image) truncate(size int64) {
	st, err := im.f.Stat()
	if err != nil {
		im.t.Fatal(err)
	}
	im.tail, im.tailAt = make([]byte, st.Size()-size), size
	if _, err := im.f.ReadAt(im.tail, size); err != nil {
		im.t.Fatal(err)
	}
	if err := im.f.Truncate(size); err != nil {
		im.t.Fatal(err)
	}
}

func openImage(t testing.TB, path string) *image {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &image{t: t, path: path, f: f}
}

func (im *image) close() { im.f.Close() }

func (im *image) read(b uint64) []byte {
	buf := make([]byte, transaction.BlockSize)
	if _, err := im.f.ReadAt(buf, int64(b)*transaction.BlockSize); err != nil {
		im.t.Fatalf("read block %d: %v", b, err)
	}
	return buf
}

func (im *image) write(b uint64, buf []byte) {
	if im.undo != nil {
		if _, ok := im.undo[b]; !ok {
			im.undo[b] = im.read(b)
		}
	}
	if _, err := im.f.WriteAt(buf[:transaction.BlockSize], int64(b)*transaction.BlockSize); err != nil {
		im.t.Fatalf("write block %d: %v", b, err)
	}
}

// metaAdd changes the metadata space map's count of block b by delta,
// keeping the bitmap, the overflow tree (which must be a single leaf), the
// index entry and nr_allocated consistent, as the kernel would.
func (im *image) metaAdd(b uint64, delta int) {
	sbBuf := im.read(0)
	sb := superblock.Decode(sbBuf)
	root := spacemap.DecodeRoot(sb.MetadataSpaceMapRoot[:])
	idx := im.read(root.BitmapRoot)
	i := b / spacemap.EntriesPerBitmap
	off := transaction.HeaderSize + spacemap.IndexEntrySize*int(i)
	ie := spacemap.DecodeIndexEntry(idx[off:])
	bm := im.read(ie.Blocknr)
	e := int(b % spacemap.EntriesPerBitmap)
	ov := btree.Node(im.read(root.RefCountRoot))
	if !ov.IsLeaf() {
		im.t.Fatal("metaAdd: overflow tree is not a single leaf")
	}
	old := int(spacemap.BitmapEntry(bm, e))
	if old == 3 {
		j := ov.LowerBound(b)
		if j < 0 || ov.Key(j) != b {
			im.t.Fatalf("metaAdd(%d): no overflow entry", b)
		}
		old = int(spacemap.DecodeRefCount(ov.Value(j)))
	}
	nw := old + delta
	if nw < 0 {
		im.t.Fatalf("metaAdd(%d, %d): count %d", b, delta, old)
	}
	spacemap.SetBitmapEntry(bm, e, uint32(min(nw, 3)))
	transaction.Seal(bm, ie.Blocknr, transaction.SaltBitmap)
	im.write(ie.Blocknr, bm)
	if nw >= 3 || old >= 3 {
		var v [4]byte
		v[0], v[1], v[2], v[3] = byte(nw), byte(nw>>8), byte(nw>>16), byte(nw>>24)
		if nw >= 3 {
			leafUpsert(ov, b, v[:])
		} else {
			leafDelete(ov, b)
		}
		transaction.Seal(ov, root.RefCountRoot, transaction.SaltNode)
		im.write(root.RefCountRoot, ov)
	}
	switch {
	case old == 0 && nw > 0:
		ie.NrFree--
		if ie.NoneFreeBefore == uint32(e) {
			ie.NoneFreeBefore++
		}
		root.NrAllocated++
	case old > 0 && nw == 0:
		ie.NrFree++
		ie.NoneFreeBefore = min(ie.NoneFreeBefore, uint32(e))
		root.NrAllocated--
	default:
		return
	}
	ie.Encode(idx[off:])
	transaction.Seal(idx, root.BitmapRoot, transaction.SaltIndex)
	im.write(root.BitmapRoot, idx)
	root.Encode(sb.MetadataSpaceMapRoot[:])
	im.writeSuperblock(0, sbBuf, &sb)
}

// findLeaf descends a one-level tree from root to the leaf whose range
// holds key.
func (im *image) findLeaf(root, key uint64) uint64 {
	b := root
	for range btree.MaxDepth {
		n := btree.Node(im.read(b))
		if n.IsLeaf() || n.NrEntries() == 0 {
			return b
		}
		b = n.Uint64Value(max(n.LowerBound(key), 0))
	}
	return b
}

// dataAdd changes the data space map's count of data block b by delta
// if the count stays within 0..2 (no overflow tree edits), keeping the
// index entry and nr_allocated consistent. It reports whether it did.
func (im *image) dataAdd(b uint64, delta int) bool {
	sbBuf := im.read(0)
	sb := superblock.Decode(sbBuf)
	root := spacemap.DecodeRoot(sb.DataSpaceMapRoot[:])
	if b >= root.NrBlocks {
		return false
	}
	lb := im.findLeaf(root.BitmapRoot, b/spacemap.EntriesPerBitmap)
	leaf := btree.Node(im.read(lb))
	j := leaf.LowerBound(b / spacemap.EntriesPerBitmap)
	if j < 0 || leaf.Key(j) != b/spacemap.EntriesPerBitmap {
		return false
	}
	ie := spacemap.DecodeIndexEntry(leaf.Value(j))
	bm := im.read(ie.Blocknr)
	e := int(b % spacemap.EntriesPerBitmap)
	old := int(spacemap.BitmapEntry(bm, e))
	nw := old + delta
	if old > 2 || nw < 0 || nw > 2 {
		return false
	}
	spacemap.SetBitmapEntry(bm, e, uint32(nw))
	transaction.Seal(bm, ie.Blocknr, transaction.SaltBitmap)
	im.write(ie.Blocknr, bm)
	switch {
	case old == 0 && nw > 0:
		ie.NrFree--
		root.NrAllocated++
	case old > 0 && nw == 0:
		ie.NrFree++
		ie.NoneFreeBefore = min(ie.NoneFreeBefore, uint32(e))
		root.NrAllocated--
	default:
		return true
	}
	ie.Encode(leaf.Value(j))
	transaction.Seal(leaf, lb, transaction.SaltNode)
	im.write(lb, leaf)
	root.Encode(sb.DataSpaceMapRoot[:])
	im.writeSuperblock(0, sbBuf, &sb)
	return true
}

// editDetails changes one device's details in place.
func (im *image) editDetails(dev uint64, fn func(*thin.Details)) {
	sb := superblock.Decode(im.read(0))
	lb := im.findLeaf(sb.DeviceDetailsRoot, dev)
	n := btree.Node(im.read(lb))
	i := n.LowerBound(dev)
	if i < 0 || n.Key(i) != dev {
		im.t.Fatalf("no details for device %d", dev)
	}
	d := thin.DecodeDetails(n.Value(i))
	fn(&d)
	d.Encode(n.Value(i))
	transaction.Seal(n, lb, transaction.SaltNode)
	im.write(lb, n)
}

// leafUpsert sets key's value in a leaf, inserting it in key order.
func leafUpsert(n btree.Node, key uint64, val []byte) {
	i := n.LowerBound(key)
	if i >= 0 && n.Key(i) == key {
		n.SetValue(i, val)
		return
	}
	nr := n.NrEntries()
	for j := nr; j > i+1; j-- {
		n.SetKey(j, n.Key(j-1))
		n.SetValue(j, n.Value(j-1))
	}
	n.SetNrEntries(nr + 1)
	n.SetKey(i+1, key)
	n.SetValue(i+1, val)
}

// leafDelete removes key from a leaf.
func leafDelete(n btree.Node, key uint64) {
	i := n.LowerBound(key)
	if i < 0 || n.Key(i) != key {
		return
	}
	nr := n.NrEntries()
	for j := i; j+1 < nr; j++ {
		n.SetKey(j, n.Key(j+1))
		n.SetValue(j, n.Value(j+1))
	}
	n.SetNrEntries(nr - 1)
}

// snapshotDevice creates a thin snapshot of device origin the way the
// kernel does: one more reference to the origin's root, a top-level entry
// and a details entry for the new device. Both trees must be single
// leaves. It returns the new device id.
func snapshotDevice(t testing.TB, img string, origin uint64) uint64 {
	t.Helper()
	im := openImage(t, img)
	defer im.close()
	sb := superblock.Decode(im.read(0))
	top := btree.Node(im.read(sb.DataMappingRoot))
	det := btree.Node(im.read(sb.DeviceDetailsRoot))
	if !top.IsLeaf() || !det.IsLeaf() {
		t.Fatal("snapshotDevice needs single-leaf trees")
	}
	i := top.LowerBound(origin)
	j := det.LowerBound(origin)
	if i < 0 || top.Key(i) != origin || j < 0 || det.Key(j) != origin {
		t.Fatalf("no device %d", origin)
	}
	id := top.Key(top.NrEntries()-1) + 1
	root := top.Uint64Value(i)
	leafUpsert(top, id, slices.Clone(top.Value(i)))
	leafUpsert(det, id, slices.Clone(det.Value(j)))
	transaction.Seal(top, sb.DataMappingRoot, transaction.SaltNode)
	im.write(sb.DataMappingRoot, top)
	transaction.Seal(det, sb.DeviceDetailsRoot, transaction.SaltNode)
	im.write(sb.DeviceDetailsRoot, det)
	im.metaAdd(root, 1)
	return id
}

// writeSuperblock encodes sb over the first superblock.Size bytes of buf
// (keeping the rest) and writes it sealed at b.
func (im *image) writeSuperblock(b uint64, buf []byte, sb *superblock.Superblock) {
	tmp := make([]byte, transaction.BlockSize)
	sb.Encode(tmp)
	copy(buf[:superblock.Size], tmp[:superblock.Size])
	transaction.Seal(buf, b, transaction.SaltSuperblock)
	im.write(b, buf)
}

// addMetadataSnapshot takes a metadata snapshot the way the kernel does
// (FORMAT.md §7.7): a copy of the superblock with zeroed space-map slots in
// a free block, one more reference to each tree root, held_root set. With
// diverge, the live pool then shadows its top-level mapping root and one
// device root whose tree has internal nodes, so that the snapshot owns
// nodes the live metadata no longer references.
func addMetadataSnapshot(t testing.TB, img string, diverge bool) {
	t.Helper()
	l := mapLayout(t, img)
	im := openImage(t, img)
	defer im.close()
	free := l.free
	alloc := func() uint64 {
		b := free[0]
		free = free[1:]
		return b
	}
	s := alloc()
	live := im.read(0)
	sb := superblock.Decode(live)
	cp := slices.Clone(live)
	clear(cp[64:320]) // both space-map root slots
	transaction.Seal(cp, s, transaction.SaltSuperblock)
	im.write(s, cp)
	im.metaAdd(s, 1)
	im.metaAdd(sb.DeviceDetailsRoot, 1)
	im.metaAdd(sb.DataMappingRoot, 1)
	live = im.read(0)
	sb = superblock.Decode(live)
	sb.HeldRoot = s
	if diverge {
		top := im.read(sb.DataMappingRoot)
		if !btree.Node(top).IsLeaf() {
			t.Fatal("diverge needs a top-level leaf")
		}
		// Shadow the top-level root.
		nt := alloc()
		n := btree.Node(top)
		im.metaAdd(nt, 1)
		im.metaAdd(sb.DataMappingRoot, -1)
		for i := range n.NrEntries() {
			im.metaAdd(n.Uint64Value(i), 1)
		}
		// Shadow one unshared device root that is an internal node.
		uses := map[uint64]int{}
		for i := range n.NrEntries() {
			uses[n.Uint64Value(i)]++
		}
		for i := range n.NrEntries() {
			d := n.Uint64Value(i)
			dn := btree.Node(im.read(d))
			if dn.IsLeaf() || uses[d] > 1 {
				continue
			}
			nd := alloc()
			im.metaAdd(nd, 1)
			im.metaAdd(d, -1)
			for j := range dn.NrEntries() {
				im.metaAdd(dn.Uint64Value(j), 1)
			}
			transaction.Seal(dn, nd, transaction.SaltNode)
			im.write(nd, dn)
			n.SetUint64Value(i, nd)
			break
		}
		transaction.Seal(top, nt, transaction.SaltNode)
		im.write(nt, top)
		// The kernel rewrites the details of a device whose mappings
		// changed (td->changed), which shadows the details leaf too:
		// thin_check 1.1.0 requires a device whose mapping root moved
		// away from the snapshot's to have its details in a leaf the
		// snapshot does not share.
		dr := sb.DeviceDetailsRoot
		det := im.read(dr)
		if !btree.Node(det).IsLeaf() {
			t.Fatal("diverge needs a details tree of one leaf")
		}
		nd := alloc()
		im.metaAdd(nd, 1)
		im.metaAdd(dr, -1)
		transaction.Seal(det, nd, transaction.SaltNode)
		im.write(nd, det)
		live = im.read(0)
		held := sb.HeldRoot
		sb = superblock.Decode(live)
		sb.HeldRoot = held
		sb.DataMappingRoot = nt
		sb.DeviceDetailsRoot = nd
	}
	im.writeSuperblock(0, live, &sb)
}

// base is a clean image to damage.
type base struct {
	name string
	img  string
}

// genBase describes a generated clean image.
type genBase struct {
	name          string
	spec          genpool.Spec
	snap, diverge bool // take a metadata snapshot; make it own nodes
	thinSnaps     int  // kernel-style snapshots of a device with internal nodes
}

var genBases = []genBase{
	// Snapshots of snapshots: data blocks shared 3+ times (data overflow
	// counts), two-level device trees, two kernel-style snapshots sharing
	// one device's tree (a metadata overflow count), and a metadata
	// snapshot that owns nodes of its own.
	{"gen-snapshots", genpool.Spec{Devices: 8, MinMappings: 300, MaxMappings: 4000, MeanRun: 3, Sparsity: 2,
		SnapshotFraction: 0.6, RewriteFraction: 0.2}, true, true, 2},
	// Three-level device trees.
	{"gen-deep", genpool.Spec{Devices: 2, MinMappings: 70000, MaxMappings: 80000, MeanRun: 1, Sparsity: 1,
		SnapshotFraction: 0.5, RewriteFraction: 0.05}, false, false, 0},
	// Many devices (internal nodes in the details tree and the top level)
	// and a data device large enough for a two-level index.
	{"gen-many", genpool.Spec{Devices: 300, MinMappings: 0, MaxMappings: 60, MeanRun: 2, Sparsity: 4,
		SnapshotFraction: 0.5, RewriteFraction: 0.3, Slack: 350}, true, false, 0},
}

// makeGenBase restores generated base name into a new image.
func makeGenBase(t testing.TB, name string) base {
	t.Helper()
	for i, g := range genBases {
		if g.name != name {
			continue
		}
		p := genpool.Generate(rand.New(rand.NewPCG(uint64(i), 99)), g.spec)
		img, _ := genpool.Restore(t, p)
		if g.thinSnaps > 0 {
			origin := internalRootDevice(t, img)
			for range g.thinSnaps {
				snapshotDevice(t, img, origin)
			}
		}
		if g.snap {
			addMetadataSnapshot(t, img, g.diverge)
		}
		return base{g.name, img}
	}
	t.Fatalf("no generated base %q", name)
	return base{}
}

// cleanBases returns every clean fixture and the generated pools, each in
// its own temporary file.
func cleanBases(t *testing.T) []base {
	var bs []base
	for _, f := range tptest.Fixtures(t) {
		if tptest.DamagedFixtures[tptest.Name(f)] {
			continue
		}
		bs = append(bs, base{tptest.Name(f), tptest.Unpack(t, f)})
	}
	for _, g := range genBases {
		bs = append(bs, makeGenBase(t, g.name))
	}
	return bs
}

// copyImage copies an image into dir.
func copyImage(t testing.TB, img, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	out := dir + "/" + name
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// internalRootDevice returns a device whose mapping tree has internal nodes.
func internalRootDevice(t testing.TB, img string) uint64 {
	t.Helper()
	im := openImage(t, img)
	defer im.close()
	sb := superblock.Decode(im.read(0))
	top := btree.Node(im.read(sb.DataMappingRoot))
	for i := range top.NrEntries() {
		if !btree.Node(im.read(top.Uint64Value(i))).IsLeaf() {
			return top.Key(i)
		}
	}
	t.Fatal("no device with an internal root")
	return 0
}
