package check_test

// The damage the corruption test does to one block (or to the device).

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// mutator damages blocks of one base image.
type mutator struct {
	rng        *rand.Rand
	l          *layout
	im         *image
	bmPos      map[uint64]uint64 // bitmap block → its index in its space map
	dataBlocks uint64            // data space map nr_blocks
	metaBlocks uint64            // metadata space map nr_blocks
}

// damage is one corruption of one block.
type damage struct {
	kind  string // family of the corruption, for the summary
	desc  string // specifics, for failure messages
	block uint64
	role  role
	data  []byte // the new block contents
	// newRefs are blocks the damaged block points to and did not before:
	// they may now be reached twice.
	newRefs map[uint64]bool
	// after, if set, runs once data is written: it makes other blocks
	// consistent with the damage (reference counts, mapped_blocks), so
	// that only the deeper checks can tell.
	after func()
}

// refsOf returns the block numbers a block of role r points to (for a
// node, every value that could be a block number).
func refsOf(r role, blk []byte, nrBlocks uint64) []uint64 {
	var refs []uint64
	le64 := func(b []byte) uint64 {
		var x uint64
		for j := 7; j >= 0; j-- {
			x = x<<8 | uint64(b[j])
		}
		return x
	}
	switch {
	case r == roleSuperblock || r == roleSnapSuperblock:
		sb := superblock.Decode(blk)
		refs = append(refs, sb.DataMappingRoot, sb.DeviceDetailsRoot, sb.HeldRoot)
		for _, slot := range [][]byte{sb.DataSpaceMapRoot[:], sb.MetadataSpaceMapRoot[:]} {
			sm := spacemap.DecodeRoot(slot)
			refs = append(refs, sm.BitmapRoot, sm.RefCountRoot)
		}
	case r == roleMetaIndex:
		for i := range spacemap.MaxMetadataBitmaps {
			refs = append(refs, le64(blk[transaction.HeaderSize+spacemap.IndexEntrySize*i:]))
		}
	case r.isNode():
		n := btree.Node(blk)
		nr, vs, me := uint64(n.NrEntries()), uint64(n.ValueSize()), uint64(n.MaxEntries())
		if nr > me || vs < 8 || vs > transaction.BlockSize || me > transaction.BlockSize || btree.HeaderSize+(8+vs)*me > transaction.BlockSize {
			return nil
		}
		for i := range int(nr) {
			if b := le64(n.Value(i)); b < nrBlocks {
				refs = append(refs, b)
			}
		}
	}
	return refs
}

// pick returns a random element of bs (0 if it is empty).
func (m *mutator) pick(bs []uint64) uint64 {
	if len(bs) == 0 {
		return 0
	}
	return bs[m.rng.IntN(len(bs))]
}

// otherBlock returns a block number to point at instead of a real one: a
// block of the same role, any block in use, block 0, a free block, the
// block itself, or one beyond the device.
func (m *mutator) otherBlock(self uint64, r role) (uint64, string) {
	switch m.rng.IntN(7) {
	case 0, 1:
		if bs := m.l.byRole[r]; len(bs) > 1 {
			return m.pick(bs), "same-role block"
		}
		fallthrough
	case 2:
		return m.pick(m.l.inUse), "in-use block"
	case 3:
		return 0, "block 0"
	case 4:
		if len(m.l.free) > 0 {
			return m.pick(m.l.free), "free block"
		}
		fallthrough
	case 5:
		return self, "itself"
	}
	return m.l.nrBlocks + uint64(m.rng.IntN(3))*uint64(m.rng.IntN(1000)), "beyond the device"
}

// damageBlock returns a random corruption of block b, whose role is r.
func (m *mutator) damageBlock(b uint64, r role) damage {
	orig := m.im.read(b)
	d := damage{block: b, role: r, data: slices.Clone(orig)}
	seal, keep := true, false
	x := m.rng.IntN(100)
	if r == roleFree { // anything written to an unused block is harmless
		x = 10 + m.rng.IntN(24)
		if x >= 26 {
			d.kind = "free.stale-copy"
			d.desc = fmt.Sprintf("%s block %d: %s: contents of an in-use node", r, b, d.kind)
			d.data = m.im.read(m.pick(m.l.byRole[roleBottomLeaf]))
			transaction.Seal(d.data, b, transaction.SaltNode)
			return d
		}
	}
	switch {
	case x < 4:
		d.kind = "raw.bitflip"
		n := 1 + m.rng.IntN(4)
		for range n {
			i := m.rng.IntN(transaction.BlockSize * 8)
			d.data[i/8] ^= 1 << (i % 8)
		}
		d.desc = fmt.Sprintf("%d bits flipped", n)
		seal = false
	case x < 8:
		d.kind = "raw.bytes"
		n := 1 + m.rng.IntN(32)
		off := m.rng.IntN(transaction.BlockSize - n)
		for i := range n {
			d.data[off+i] = byte(m.rng.Uint32())
		}
		d.desc = fmt.Sprintf("%d bytes at %d", n, off)
		seal = false
	case x < 10:
		d.kind = "raw.zero"
		clear(d.data)
		seal = false
	case x < 22:
		d.kind = "seal.garbage"
		n := 1 + m.rng.IntN(64)
		off := transaction.HeaderSize + m.rng.IntN(transaction.BlockSize-transaction.HeaderSize-n)
		if m.rng.IntN(3) == 0 { // aim at the header and the first keys
			off = transaction.HeaderSize + m.rng.IntN(64)
		}
		for i := range n {
			d.data[off+i] = byte(m.rng.Uint32())
		}
		d.desc = fmt.Sprintf("%d random bytes at %d, resealed", n, off)
	case x < 26:
		d.kind = "seal.wrong-salt"
		salts := []uint32{transaction.SaltSuperblock, transaction.SaltNode, transaction.SaltBitmap, transaction.SaltIndex}
		s := salts[m.rng.IntN(len(salts))]
		for s == r.salt() {
			s = salts[m.rng.IntN(len(salts))]
		}
		transaction.Seal(d.data, b, s)
		d.desc = fmt.Sprintf("sealed with salt %d", s)
		seal = false
	case x < 34 && len(m.l.byRole[r]) > 1:
		d.kind = "seal.stale-copy"
		o := m.pick(m.l.byRole[r])
		for o == b {
			o = m.pick(m.l.byRole[r])
		}
		d.data = m.im.read(o)
		d.desc = fmt.Sprintf("contents of block %d", o)
	default:
		switch {
		case r == roleSuperblock || r == roleSnapSuperblock:
			keep = m.superblockField(&d)
		case r == roleDataBitmap || r == roleMetaBitmap:
			m.bitmapCount(&d)
		case r == roleMetaIndex:
			m.indexEntry(&d, d.data[transaction.HeaderSize:], spacemap.NrBitmaps(m.metaBlocks), spacemap.MaxMetadataBitmaps)
		default:
			keep = m.nodeEdit(&d)
		}
	}
	if seal {
		if keep {
			sealKeep(d.data, r.salt())
		} else {
			transaction.Seal(d.data, b, r.salt())
		}
	}
	d.desc = fmt.Sprintf("%s block %d: %s: %s", r, b, d.kind, d.desc)
	d.newRefs = map[uint64]bool{}
	for _, x := range refsOf(r, d.data, m.l.nrBlocks) {
		d.newRefs[x] = true
	}
	for _, x := range refsOf(r, orig, m.l.nrBlocks) {
		delete(d.newRefs, x)
	}
	return d
}

// truncateDevice shortens the metadata device: below its last block in
// use, or only by unused blocks, or to a size that is not a whole number of
// blocks.
// damageOne damages the image once: one block of a role drawn from roles
// (a block of that role drawn from the layout), or, one time in forty, the
// device's length. The image's undo log starts anew first.
func (m *mutator) damageOne(im *image, roles []role) damage {
	r := roles[m.rng.IntN(len(roles))]
	blk := m.pick(m.l.byRole[r])
	im.begin()
	if m.rng.IntN(40) == 0 {
		return m.truncateDevice()
	}
	d := m.damageBlock(blk, r)
	im.write(blk, d.data)
	if d.after != nil {
		d.after()
	}
	return d
}

func (m *mutator) truncateDevice() damage {
	d := damage{kind: "device.truncate", role: roleDevice}
	last := m.l.inUse[len(m.l.inUse)-1]
	size := int64(m.l.nrBlocks) * transaction.BlockSize
	switch m.rng.IntN(3) {
	case 0:
		size = int64(1+m.rng.Uint64N(last)) * transaction.BlockSize
	case 1:
		if last+1 < m.l.nrBlocks {
			size = int64(last+1+m.rng.Uint64N(m.l.nrBlocks-last-1)) * transaction.BlockSize
		}
	case 2:
		size -= int64(1 + m.rng.IntN(transaction.BlockSize-1))
	}
	m.im.truncate(size)
	d.desc = fmt.Sprintf("device cut to %d bytes (%d blocks; last in use %d, was %d)",
		size, size/transaction.BlockSize, last, m.l.nrBlocks)
	return d
}

// sealKeep recomputes a block's checksum without touching its blocknr.
func sealKeep(blk []byte, salt uint32) {
	c := transaction.Checksum(blk, salt)
	blk[0], blk[1], blk[2], blk[3] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
}

// bitmapCount changes one reference count in a bitmap.
func (m *mutator) bitmapCount(d *damage) {
	d.kind = "bitmap.count"
	tracked := m.dataBlocks
	if d.role == roleMetaBitmap {
		tracked = m.metaBlocks
	}
	first := m.bmPos[d.block] * spacemap.EntriesPerBitmap
	n := int(min(tracked-first, spacemap.EntriesPerBitmap))
	e := m.rng.IntN(n)
	if m.rng.IntN(2) == 0 { // prefer a block in use
		for range 64 {
			if spacemap.BitmapEntry(d.data, e) != 0 {
				break
			}
			e = m.rng.IntN(n)
		}
	}
	old := spacemap.BitmapEntry(d.data, e)
	nw := uint32(m.rng.IntN(4))
	for nw == old {
		nw = uint32(m.rng.IntN(4))
	}
	spacemap.SetBitmapEntry(d.data, e, nw)
	d.desc = fmt.Sprintf("count of block %d: %d → %d", first+uint64(e), old, nw)
}

// indexEntry changes one index entry (of the metadata index block or a
// data index leaf value) in entries.
func (m *mutator) indexEntry(d *damage, entries []byte, used uint64, capacity int) {
	d.kind = "index.entry"
	i := m.rng.IntN(capacity)
	if used > 0 && m.rng.IntN(5) > 0 {
		i = m.rng.IntN(int(used))
	}
	v := entries[i*spacemap.IndexEntrySize : (i+1)*spacemap.IndexEntrySize]
	ie := spacemap.DecodeIndexEntry(v)
	switch m.rng.IntN(4) {
	case 0, 1:
		var how string
		if m.rng.IntN(2) == 0 {
			bms := append(slices.Clone(m.l.byRole[roleDataBitmap]), m.l.byRole[roleMetaBitmap]...)
			ie.Blocknr, how = m.pick(bms), "a bitmap"
		} else {
			ie.Blocknr, how = m.otherBlock(d.block, roleDataBitmap)
		}
		d.desc = fmt.Sprintf("entry %d blocknr → %d (%s)", i, ie.Blocknr, how)
	case 2:
		ie.NrFree = m.rng.Uint32N(spacemap.EntriesPerBitmap + 2)
		d.desc = fmt.Sprintf("entry %d nr_free → %d", i, ie.NrFree)
	case 3:
		ie.NoneFreeBefore = m.rng.Uint32N(spacemap.EntriesPerBitmap + 2)
		d.desc = fmt.Sprintf("entry %d none_free_before → %d", i, ie.NoneFreeBefore)
	}
	ie.Encode(v)
}

// superblockField changes one field of a superblock (or of the snapshot
// copy). It reports whether the blocknr was changed on purpose.
func (m *mutator) superblockField(d *damage) (keepBlocknr bool) {
	sb := superblock.Decode(d.data)
	rng := m.rng
	smRoot := func(slot []byte, name string, maxNr uint64) string {
		r := spacemap.DecodeRoot(slot)
		var what string
		switch rng.IntN(5) {
		case 0:
			old := r.NrBlocks
			switch rng.IntN(5) {
			case 0:
				r.NrBlocks++
			case 1:
				r.NrBlocks -= min(r.NrBlocks, 1+uint64(rng.IntN(20)))
			case 2:
				r.NrBlocks /= 2
			case 3:
				r.NrBlocks = min(r.NrBlocks+spacemap.EntriesPerBitmap, maxNr)
			case 4:
				r.NrBlocks = min(r.NrBlocks*2, maxNr)
			}
			what = fmt.Sprintf("nr_blocks %d → %d", old, r.NrBlocks)
		case 1:
			r.NrAllocated = uint64(rng.IntN(int(max(r.NrBlocks, 1))))
			what = fmt.Sprintf("nr_allocated → %d", r.NrAllocated)
		case 2, 3:
			var how string
			r.BitmapRoot, how = m.otherBlock(r.BitmapRoot, roleDataIndex)
			what = fmt.Sprintf("bitmap_root → %d (%s)", r.BitmapRoot, how)
		case 4:
			var how string
			r.RefCountRoot, how = m.otherBlock(r.RefCountRoot, roleMetaOverflow)
			what = fmt.Sprintf("ref_count_root → %d (%s)", r.RefCountRoot, how)
		}
		r.Encode(slot[:spacemap.RootSize])
		return name + " " + what
	}
	d.kind = "sb.field"
	switch rng.IntN(16) {
	case 0:
		sb.Magic = rng.Uint64N(1 << 32)
		d.desc, d.kind = fmt.Sprintf("magic → %d", sb.Magic), "sb.magic"
	case 1:
		sb.Blocknr = uint64(1 + rng.IntN(100))
		d.desc, d.kind, keepBlocknr = fmt.Sprintf("blocknr → %d", sb.Blocknr), "sb.blocknr", true
	case 2:
		sb.Flags ^= 1 << rng.IntN(3)
		d.desc = fmt.Sprintf("flags → %#x", sb.Flags)
	case 3:
		sb.Version = uint32(rng.IntN(4))
		d.desc = fmt.Sprintf("version → %d", sb.Version)
	case 4:
		sb.Time, sb.TransactionID = rng.Uint32(), rng.Uint64()
		d.desc = "time and transaction id"
	case 5:
		var how string
		switch rng.IntN(3) {
		case 0:
			sb.HeldRoot, how = 0, "none"
		default:
			sb.HeldRoot, how = m.otherBlock(sb.HeldRoot, roleSnapSuperblock)
		}
		d.desc, d.kind = fmt.Sprintf("held_root → %d (%s)", sb.HeldRoot, how), "sb.held_root"
	case 6, 7:
		var how string
		roles := []role{roleTopLeaf, roleTopInternal, roleBottomInternal, roleBottomLeaf, roleDetailsLeaf}
		sb.DataMappingRoot, how = m.otherBlock(sb.DataMappingRoot, roles[rng.IntN(len(roles))])
		d.desc, d.kind = fmt.Sprintf("data_mapping_root → %d (%s)", sb.DataMappingRoot, how), "sb.root"
	case 8:
		var how string
		sb.DeviceDetailsRoot, how = m.otherBlock(sb.DeviceDetailsRoot, roleDetailsLeaf)
		d.desc, d.kind = fmt.Sprintf("device_details_root → %d (%s)", sb.DeviceDetailsRoot, how), "sb.root"
	case 9:
		sb.DataBlockSize = uint32(rng.IntN(1 << 16))
		sb.MetadataBlockSize = uint32(rng.IntN(16))
		sb.MetadataNrBlocks = rng.Uint64N(1 << 20)
		d.desc = "block sizes and metadata_nr_blocks"
	case 10:
		switch rng.IntN(3) {
		case 0:
			sb.CompatFlags = rng.Uint32()
		case 1:
			sb.CompatROFlags = rng.Uint32()
		case 2:
			sb.IncompatFlags = 1 << rng.IntN(32)
		}
		d.desc, d.kind = fmt.Sprintf("feature flags → %#x %#x %#x", sb.CompatFlags, sb.CompatROFlags, sb.IncompatFlags), "sb.features"
	case 11:
		for i := range sb.UUID {
			sb.UUID[i] = byte(rng.Uint32())
		}
		d.desc = "uuid"
	case 12, 13:
		d.desc, d.kind = smRoot(sb.DataSpaceMapRoot[:], "data sm", 1<<36), "sb.data-sm-root"
	default:
		d.desc, d.kind = smRoot(sb.MetadataSpaceMapRoot[:], "metadata sm", spacemap.MaxMetadataBlocks), "sb.metadata-sm-root"
	}
	tmp := make([]byte, transaction.BlockSize)
	sb.Encode(tmp)
	copy(d.data[:superblock.Size], tmp[:superblock.Size])
	return keepBlocknr
}

// nodeEdit changes a B-tree node's header, keys or values. It reports
// whether the blocknr was changed on purpose.
func (m *mutator) nodeEdit(d *damage) (keepBlocknr bool) {
	n := btree.Node(d.data)
	rng := m.rng
	nr, maxE, vs := n.NrEntries(), n.MaxEntries(), n.ValueSize()
	valid := btree.Validator.Check(d.data, d.block) == nil && nr <= maxE
	if !valid {
		d.kind, d.desc = "node.garbage", "node header unreadable; random header bytes"
		for i := 16; i < 32; i++ {
			d.data[i] = byte(rng.Uint32())
		}
		return false
	}
	choice := rng.IntN(16)
	if nr == 0 && choice >= 4 {
		choice = 10 // insert into an empty node
	}
	switch choice {
	case 0:
		d.kind = "node.nr_entries"
		vals := []int{nr + 1, nr - 1, 0, maxE, maxE + 1, maxE/3 - 1, maxE / 3, rng.IntN(1 << 20)}
		v := vals[rng.IntN(len(vals))]
		if v < 0 {
			v = 0
		}
		n.SetNrEntries(v)
		d.desc = fmt.Sprintf("nr_entries %d → %d", nr, v)
	case 1:
		d.kind = "node.max_entries"
		vals := []int{maxE + 3, maxE - 3, maxE + 1, maxE - 1, 0, nr, nr + 2, 1 << 20}
		v := max(vals[rng.IntN(len(vals))], 0)
		n.SetMaxEntries(v)
		d.desc = fmt.Sprintf("max_entries %d → %d", maxE, v)
	case 2:
		d.kind = "node.value_size"
		vals := []int{0, 4, 8, 16, 24, 32, 1000}
		v := vals[rng.IntN(len(vals))]
		for v == vs {
			v = vals[rng.IntN(len(vals))]
		}
		n.SetValueSize(v)
		d.desc = fmt.Sprintf("value_size %d → %d", vs, v)
	case 3:
		d.kind = "node.flags"
		f := n.Flags()
		vals := []uint32{0, 3, f ^ 3, f | 4, f | 0x100}
		v := vals[rng.IntN(len(vals))]
		n.SetFlags(v)
		d.desc = fmt.Sprintf("flags %#x → %#x", f, v)
	case 4:
		d.kind = "node.blocknr"
		v := d.block + 1 + uint64(rng.IntN(10))
		d.data[8], d.data[9], d.data[10], d.data[11] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		d.data[12], d.data[13], d.data[14], d.data[15] = 0, 0, 0, 0
		d.desc = fmt.Sprintf("blocknr → %d", v)
		return true
	case 5, 6:
		d.kind = "node.key"
		i := rng.IntN(nr)
		k := n.Key(i)
		var v uint64
		switch rng.IntN(7) {
		case 0:
			v = k + 1
		case 1:
			v = k - 1
		case 2:
			v = n.Key(max(i-1, 0))
		case 3:
			v = n.Key(min(i+1, nr-1))
		case 4:
			v = rng.Uint64N(1 << 24)
		case 5:
			v = 0
		case 6:
			v = ^uint64(0)
		}
		n.SetKey(i, v)
		d.desc = fmt.Sprintf("key %d of %d: %d → %d", i, nr, k, v)
	case 7:
		d.kind = "node.swap"
		i, j := rng.IntN(nr), rng.IntN(nr)
		ki, kj := n.Key(i), n.Key(j)
		n.SetKey(i, kj)
		n.SetKey(j, ki)
		d.desc = fmt.Sprintf("keys %d and %d swapped", i, j)
	case 8:
		d.kind = "node.delete"
		i := rng.IntN(nr)
		d.desc = fmt.Sprintf("entry %d of %d (key %d) removed", i, nr, n.Key(i))
		if devs := m.l.leafDevs[d.block]; len(devs) > 0 && n.IsLeaf() && rng.IntN(2) == 0 {
			// Unmap the block properly: mapped_blocks and the data count.
			d.kind = "consistent.delete"
			b, _ := thin.UnpackBlockTime(n.Uint64Value(i))
			d.after = func() {
				for _, dev := range devs {
					m.im.editDetails(dev, func(dt *thin.Details) { dt.MappedBlocks-- })
				}
				m.im.dataAdd(b, -1)
			}
		}
		leafDelete(n, n.Key(i))
	case 9, 10:
		d.kind = "node.insert"
		if nr >= maxE {
			n.SetNrEntries(nr - 1)
			d.desc = "full node: last entry dropped"
			break
		}
		var k uint64
		var val []byte
		if nr == 0 {
			k, val = rng.Uint64N(1<<20), make([]byte, vs)
			for i := range val {
				val[i] = byte(rng.Uint32())
			}
		} else {
			i := rng.IntN(nr)
			val = slices.Clone(n.Value(i))
			k = n.Key(i) + 1
			if rng.IntN(3) == 0 {
				k = n.Key(i) // a duplicate key
			}
		}
		leafUpsert(n, k, val)
		if n.NrEntries() == nr { // the key existed: force a duplicate
			i := n.LowerBound(k)
			for j := nr; j > i; j-- {
				n.SetKey(j, n.Key(j-1))
				n.SetValue(j, n.Value(j-1))
			}
			n.SetNrEntries(nr + 1)
		}
		d.desc = fmt.Sprintf("entry with key %d inserted", k)
	default:
		m.nodeValue(d, n)
	}
	return false
}

// nodeValue changes one value of a node, according to the tree it is in.
func (m *mutator) nodeValue(d *damage, n btree.Node) {
	rng := m.rng
	nr, vs := n.NrEntries(), n.ValueSize()
	i := rng.IntN(nr)
	v := n.Value(i)
	le := func(b []byte) uint64 {
		var x uint64
		for j := len(b) - 1; j >= 0; j-- {
			x = x<<8 | uint64(b[j])
		}
		return x
	}
	put := func(b []byte, x uint64) {
		for j := range b {
			b[j] = byte(x >> (8 * j))
		}
	}
	pointer := n.IsInternal() || d.role == roleTopLeaf || (d.role == roleSnapNode && vs == 8 && rng.IntN(2) == 0)
	switch {
	case pointer:
		d.kind = "node.pointer"
		old := le(v)
		r := d.role
		if r == roleTopLeaf {
			r = roleBottomInternal
		}
		nb, how := m.otherBlock(d.block, r)
		if rng.IntN(5) == 0 && nr > 1 { // a sibling: a shared child
			nb, how = n.Uint64Value((i+1)%nr), "sibling's child"
		}
		_, inUse := m.l.roles[nb]
		_, oldInUse := m.l.roles[old]
		if inUse && oldInUse && nb != d.block && rng.IntN(2) == 0 {
			// Move the reference in the metadata space map too.
			d.kind, how = "consistent.pointer", how+", counts moved"
			d.after = func() {
				m.im.metaAdd(nb, 1)
				m.im.metaAdd(old, -1)
			}
		}
		put(v, nb)
		d.desc = fmt.Sprintf("value %d: %d → %d (%s)", i, old, nb, how)
	case vs == thin.MappingValueSize:
		d.kind = "mapping.value"
		b, tm := thin.UnpackBlockTime(le(v))
		nb, ntm := b, tm
		switch rng.IntN(6) {
		case 0, 1:
			nb = m.pick(m.l.data)
		case 2:
			nb = m.l.nrData + uint64(rng.IntN(100))
		case 3:
			nb = m.l.nrData - 1 - uint64(rng.IntN(int(min(m.l.nrData, 3))))
		case 4:
			ntm = uint32(rng.IntN(thin.MaxTime))
		case 5:
			nb = thin.MaxDataBlock
		}
		put(v, thin.PackBlockTime(nb, ntm))
		d.desc = fmt.Sprintf("mapping %d: block %d time %d → block %d time %d", n.Key(i), b, tm, nb, ntm)
		if nb != b && nb < m.l.nrData && rng.IntN(2) == 0 {
			d.kind = "consistent.mapping"
			d.desc += ", data counts moved"
			d.after = func() {
				if m.im.dataAdd(nb, 1) {
					m.im.dataAdd(b, -1)
				}
			}
		}
	case vs == thin.DetailsSize:
		d.kind = "details.value"
		dt := thin.DecodeDetails(v)
		switch rng.IntN(5) {
		case 0, 1:
			dt.MappedBlocks += uint64(1 - 2*rng.IntN(2))
		case 2:
			dt.MappedBlocks = rng.Uint64N(1 << 20)
		case 3:
			dt.TransactionID = rng.Uint64()
		case 4:
			dt.CreationTime, dt.SnapshottedTime = rng.Uint32(), rng.Uint32()
		}
		dt.Encode(v)
		d.desc = fmt.Sprintf("device %d details → %+v", n.Key(i), dt)
	case vs == spacemap.IndexEntrySize:
		m.indexEntry(d, n.ValueBytes(), uint64(nr), nr)
	case vs == spacemap.RefCountValueSize:
		d.kind = "overflow.count"
		old := spacemap.DecodeRefCount(v)
		vals := []uint64{uint64(old) + 1, uint64(old) - 1, 2, 0, uint64(rng.IntN(100))}
		nv := vals[rng.IntN(len(vals))]
		put(v, nv)
		d.desc = fmt.Sprintf("count of block %d: %d → %d", n.Key(i), old, uint32(nv))
	default:
		d.kind = "node.value"
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		d.desc = fmt.Sprintf("value %d randomised", i)
	}
}
