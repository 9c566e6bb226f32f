package restore

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/thinmeta/thinmeta/thin"
)

// The parser checks the grammar of thin_dump's XML (FORMAT.md §8.2) and
// everything thin_restore refuses (§8.3), and turns the input into a
// stream of ops for the builder. Every check that needs only the input is
// made here, so the builder meets only well-formed ops.

// opKind is the kind of an op.
type opKind uint8

const (
	// opMap: mappings a..a+n-1 to data blocks b..b+n-1 at time t.
	opMap opKind = iota
	// opRef: the leaves of def number a.
	opRef
	// opDevice: a device starts: id n, mapped_blocks a, transaction b,
	// creation_time t, snap_time t2.
	opDevice
	opEndDevice
	// opDef: def number a starts.
	opDef
	opEndDef
)

// op is one step for the builder, 32 bytes, so that the stream of them
// from the parser to the builder (on another core) is small: line is where
// it comes from; kt holds the kind in its top 8 bits and, for opMap, the
// time in the low 24; a, b and n are:
//
//	opMap: mappings a..a+n-1 to data blocks b..b+n-1 (a longer range
//	       is several ops)
//	opRef, opDef: the def's number in a
//	opDevice: the device's details are devs[a] of the batch
type op struct {
	a, b uint64
	n    uint32
	kt   uint32
	line int64
}

func (o *op) kind() opKind { return opKind(o.kt >> 24) }

// time returns an opMap's time.
func (o *op) time() uint32 { return o.kt & thin.MaxTime }

// maxOpLen is the longest range one opMap holds.
const maxOpLen = math.MaxUint32

// devOp is what an opDevice starts: a device with id and the details
// given (mapped_blocks is counted instead) and, in an extended pool, its
// blob.
type devOp struct {
	id           uint64
	transaction  uint64
	ctime, stime uint32
	blob         []byte
}

// batch is a run of ops with the details of the devices they start.
type batch struct {
	ops  []op
	devs []devOp
}

func (b *batch) reset() {
	b.ops, b.devs = b.ops[:0], b.devs[:0]
}

// header is the content of the <superblock> tag, after overrides.
type header struct {
	uuid          string
	time          uint32
	transaction   uint64
	flags         uint32
	version       uint32 // 0 if absent
	dataBlockSize uint32
	nrDataBlocks  uint64
	line          int64
	ext           *extHeader // nil for a stock pool
}

// attribute descriptors.
type attrDesc struct {
	name     string
	max      uint64 // largest value for a number
	str      bool   // a string, not a number
	optional bool
}

const (
	u32 = math.MaxUint32
	u64 = math.MaxUint64
)

var (
	superblockAttrs = []attrDesc{
		{name: "uuid", str: true}, {name: "time", max: u32}, {name: "transaction", max: u64},
		{name: "flags", max: u32, optional: true}, {name: "version", max: u32, optional: true},
		{name: "data_block_size", max: u32}, {name: "nr_data_blocks", max: u64},
		{name: "metadata_snap", max: u64, optional: true},
		// The extended form (extended.go).
		{name: "blob_size", max: u32, optional: true}, {name: "index_bytes", max: u32, optional: true},
		{name: "next_thin_id", max: u64, optional: true},
	}
	deviceAttrs = []attrDesc{
		{name: "dev_id", max: u32}, {name: "mapped_blocks", max: u64}, {name: "transaction", max: u64},
		{name: "creation_time", max: u32}, {name: "snap_time", max: u32},
	}
	nameAttrs   = []attrDesc{{name: "name", str: true}}
	singleAttrs = []attrDesc{{name: "origin_block", max: u64}, {name: "data_block", max: u64}, {name: "time", max: u32}}
	rangeAttrs  = []attrDesc{{name: "origin_begin", max: u64}, {name: "data_begin", max: u64},
		{name: "length", max: u64}, {name: "time", max: u32}}
)

// parser states.
const (
	stProlog = iota // before <superblock>
	stTop           // inside <superblock>
	stDevice        // inside <device>
	stDef           // inside <def>
	stEpilog        // after </superblock>
)

// defInfo is what the parser knows of a def.
type defInfo struct {
	name        string
	first, last uint64
	count       uint64 // mappings
	line        int64
}

type parser struct {
	lx    *lexer
	opts  *Options
	hdr   header
	state int
	// expectEnd: the last leaf element was a start tag, so its end tag
	// must follow.
	expectEnd bool
	endElem   element

	// The tree (device or def) being read.
	haveLast  bool
	lastKey   uint64
	treeFirst uint64
	treeCount uint64

	devices map[uint64]int64 // dev_id -> line
	defs    map[string]int
	defList []defInfo

	// Output.
	batch *batch
	sink  func(*batch) (*batch, error)

	vals [12]uint64
	strs [12][]byte
	seen uint32 // the attributes the last tag had (bit i: descs[i])
}

func newParser(lx *lexer, opts *Options) *parser {
	return &parser{lx: lx, opts: opts, devices: make(map[uint64]int64), defs: make(map[string]int)}
}

func (p *parser) errorf(line int64, format string, args ...any) error {
	return &InputError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// attrs parses the current tag's attributes by descs into p.vals and
// p.strs (index as in descs).
func (p *parser) attrs(descs []attrDesc) error {
	lx := p.lx
	var seen uint32
	for i := 0; i < lx.nattrs; i++ {
		name := lx.attrName(i)
		// Attributes usually come in thin_dump's order.
		j := i
		if j >= len(descs) || string(name) != descs[j].name {
			j = 0
			for j < len(descs) && string(name) != descs[j].name {
				j++
			}
		}
		if j == len(descs) {
			return p.errorf(lx.tagLine, "unknown attribute %q in <%s>", snippet(name), lx.elem)
		}
		if seen&(1<<j) != 0 {
			return p.errorf(lx.tagLine, "attribute %s given twice in <%s>", descs[j].name, lx.elem)
		}
		seen |= 1 << j
		if descs[j].str {
			p.strs[j] = lx.attrValue(i)
			continue
		}
		value := lx.attrValue(i)
		v, ok := parseUint(value, descs[j].max)
		if !ok {
			return p.errorf(lx.tagLine, "attribute %s of <%s>: %q is not a number from 0 to %d",
				descs[j].name, lx.elem, snippet(value), descs[j].max)
		}
		p.vals[j] = v
	}
	for j, d := range descs {
		if seen&(1<<j) == 0 {
			if !d.optional {
				return p.errorf(lx.tagLine, "<%s> lacks the required attribute %s", lx.elem, d.name)
			}
			p.vals[j], p.strs[j] = 0, nil
		}
	}
	p.seen = seen
	return nil
}

// parseUint parses a decimal number no larger than max.
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	if len(b) < 20 { // at most 19 digits: cannot overflow
		for _, c := range b {
			d := uint64(c - '0')
			if d > 9 {
				return 0, false
			}
			v = v*10 + d
		}
		return v, v <= max
	}
	for _, c := range b {
		d := uint64(c - '0')
		if d > 9 || v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, v <= max
}

// unescape decodes the five predefined entities and character references
// of an attribute value.
func unescape(b []byte) (string, bool) {
	s := string(b)
	if !strings.Contains(s, "&") {
		return s, true
	}
	var out strings.Builder
	for len(s) > 0 {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			out.WriteString(s)
			break
		}
		out.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexByte(s, ';')
		if j < 0 {
			return "", false
		}
		ent := s[1:j]
		s = s[j+1:]
		switch ent {
		case "lt":
			out.WriteByte('<')
		case "gt":
			out.WriteByte('>')
		case "amp":
			out.WriteByte('&')
		case "quot":
			out.WriteByte('"')
		case "apos":
			out.WriteByte('\'')
		default:
			if len(ent) < 2 || ent[0] != '#' {
				return "", false
			}
			var r uint64
			var err error
			if ent[1] == 'x' {
				r, err = strconv.ParseUint(ent[2:], 16, 32)
			} else {
				r, err = strconv.ParseUint(ent[1:], 10, 32)
			}
			if err != nil || r == 0 || r > 0x10FFFF || r >= 0xD800 && r <= 0xDFFF {
				return "", false
			}
			out.WriteRune(rune(r))
		}
	}
	return out.String(), true
}

// readHeader reads up to and including the <superblock> start tag and
// applies the overrides.
func (p *parser) readHeader() (header, error) {
	lx := p.lx
	if err := lx.next(); err != nil {
		return header{}, err
	}
	switch {
	case lx.kind == tokEOF:
		return header{}, p.errorf(lx.line, "no <superblock> element in the input")
	case lx.kind == tokEnd || lx.elem != elSuperblock:
		return header{}, p.errorf(lx.tagLine, "expected <superblock>, found <%s%s>", slash(lx.kind), lx.elem)
	}
	if err := p.attrs(superblockAttrs); err != nil {
		return header{}, err
	}
	uuid, ok := unescape(p.strs[0])
	if !ok {
		return header{}, p.errorf(lx.tagLine, "bad character reference in the uuid of <superblock>")
	}
	h := header{
		uuid: uuid, time: uint32(p.vals[1]), transaction: p.vals[2], flags: uint32(p.vals[3]),
		version: uint32(p.vals[4]), dataBlockSize: uint32(p.vals[5]), nrDataBlocks: p.vals[6],
		line: lx.tagLine,
	}
	if o := p.opts.TransactionID; o != nil {
		h.transaction = *o
	}
	if o := p.opts.DataBlockSize; o != nil {
		h.dataBlockSize = *o
	}
	if o := p.opts.NrDataBlocks; o != nil {
		h.nrDataBlocks = *o
	}
	if !thin.ValidDataBlockSize(h.dataBlockSize) {
		return header{}, p.errorf(h.line, "invalid data block size %d: %v", h.dataBlockSize, thin.ErrDataBlockSize)
	}
	if err := p.readExtension(&h); err != nil {
		return header{}, err
	}
	p.hdr = h
	p.state = stTop
	if lx.kind == tokEmpty {
		p.state = stEpilog
	}
	return h, nil
}

func slash(k tokKind) string {
	if k == tokEnd {
		return "/"
	}
	return ""
}

// emit queues an op.
func (p *parser) emit(kind opKind, a uint64, line int64) error {
	p.batch.ops = append(p.batch.ops, op{a: a, kt: uint32(kind) << 24, line: line})
	if len(p.batch.ops) == cap(p.batch.ops) {
		return p.flush()
	}
	return nil
}

// emitMap queues the ops of mappings origin..origin+n-1 to data blocks
// data.. at time t (n > 0).
func (p *parser) emitMap(origin, data, n uint64, t uint32, line int64) error {
	for {
		k := min(n, maxOpLen)
		// Field by field into the slice: an op literal is built on the
		// stack and copied with 16-byte loads of what were just 8- and
		// 4-byte stores, a store-forwarding stall per mapping element.
		ops := append(p.batch.ops, op{})
		o := &ops[len(ops)-1]
		o.a, o.b, o.n, o.kt, o.line = origin, data, uint32(k), t, line
		p.batch.ops = ops
		if len(p.batch.ops) == cap(p.batch.ops) {
			if err := p.flush(); err != nil {
				return err
			}
		}
		if n -= k; n == 0 {
			return nil
		}
		origin += k
		data += k
	}
}

func (p *parser) flush() error {
	if len(p.batch.ops) == 0 {
		return nil
	}
	var err error
	p.batch, err = p.sink(p.batch)
	return err
}

// run reads the rest of the input after readHeader, sending ops in
// batches to sink, which returns an empty batch to fill next.
func (p *parser) run(b *batch, sink func(*batch) (*batch, error)) error {
	b.reset()
	p.batch, p.sink = b, sink
	if err := p.loop(); err != nil {
		return err
	}
	return p.flush()
}

func (p *parser) loop() error {
	lx := p.lx
	for {
		// Inside a tree, take mappings by the fast path while it lasts.
		for fastPath && !p.expectEnd && (p.state == stDevice || p.state == stDef) {
			origin, data, length, t, ok := lx.fastMapping()
			if !ok {
				break
			}
			if err := p.addMapping(lx.tagLine, origin, data, length, t); err != nil {
				return err
			}
		}
		if err := lx.next(); err != nil {
			return err
		}
		if p.expectEnd {
			if lx.kind != tokEnd || lx.elem != p.endElem {
				return p.errorf(lx.tagLine, "<%s> must be empty", p.endElem)
			}
			p.expectEnd = false
			continue
		}
		switch lx.kind {
		case tokEOF:
			if p.state == stEpilog {
				return nil
			}
			return p.errorf(lx.line, "unexpected end of input: <%s> not closed", p.openElem())
		case tokEnd:
			if err := p.end(); err != nil {
				return err
			}
		default:
			if err := p.start(); err != nil {
				return err
			}
		}
	}
}

// openElem names the innermost open element.
func (p *parser) openElem() element {
	switch p.state {
	case stDevice:
		return elDevice
	case stDef:
		return elDef
	}
	return elSuperblock
}

// start handles a start or empty-element tag.
func (p *parser) start() error {
	lx := p.lx
	line := lx.tagLine
	if p.state == stEpilog {
		return p.errorf(line, "<%s> after </superblock> (the input holds exactly one superblock)", lx.elem)
	}
	empty := lx.kind == tokEmpty
	switch lx.elem {
	case elSingle, elRange:
		if p.state != stDevice && p.state != stDef {
			return p.errorf(line, "<%s> outside <device> and <def>", lx.elem)
		}
		if err := p.mapping(); err != nil {
			return err
		}
	case elRef:
		if p.state != stDevice {
			return p.errorf(line, "<ref> outside <device> (a <def> cannot refer to another)")
		}
		if err := p.ref(); err != nil {
			return err
		}
	case elDevice:
		if p.state != stTop {
			return p.errorf(line, "<device> inside <%s>", p.openElem())
		}
		if err := p.device(); err != nil {
			return err
		}
		if empty {
			return p.endTree(opEndDevice)
		}
		return nil
	case elDef:
		if p.state != stTop {
			return p.errorf(line, "<def> inside <%s>", p.openElem())
		}
		if err := p.def(); err != nil {
			return err
		}
		if empty {
			return p.endTree(opEndDef)
		}
		return nil
	case elSuperblock:
		return p.errorf(line, "<superblock> inside <%s> (the input holds exactly one superblock)", p.openElem())
	}
	if !empty {
		p.expectEnd, p.endElem = true, lx.elem
	}
	return nil
}

// end handles an end tag.
func (p *parser) end() error {
	lx := p.lx
	switch {
	case lx.elem == elSuperblock && p.state == stTop:
		p.state = stEpilog
		return nil
	case lx.elem == elDevice && p.state == stDevice:
		return p.endTree(opEndDevice)
	case lx.elem == elDef && p.state == stDef:
		return p.endTree(opEndDef)
	}
	if p.state == stEpilog {
		return p.errorf(lx.tagLine, "</%s> after </superblock>", lx.elem)
	}
	return p.errorf(lx.tagLine, "</%s> does not close <%s>", lx.elem, p.openElem())
}

func (p *parser) beginTree() {
	p.haveLast, p.lastKey, p.treeFirst, p.treeCount = false, 0, 0, 0
}

func (p *parser) endTree(k opKind) error {
	if k == opEndDef {
		d := &p.defList[len(p.defList)-1]
		d.first, d.last, d.count = p.treeFirst, p.lastKey, p.treeCount
		p.defs[d.name] = len(p.defList) - 1
	}
	p.state = stTop
	return p.emit(k, 0, p.lx.tagLine)
}

func (p *parser) device() error {
	descs := deviceAttrs
	if p.hdr.ext != nil {
		descs = extDeviceAttrs
	}
	if err := p.attrs(descs); err != nil {
		return err
	}
	id := p.vals[0]
	line := p.lx.tagLine
	if prev, ok := p.devices[id]; ok {
		return p.errorf(line, "device %d already defined at line %d", id, prev)
	}
	var blob []byte
	if p.hdr.ext != nil {
		var err error
		if blob, err = p.extDevice(id); err != nil {
			return err
		}
	}
	p.devices[id] = line
	p.beginTree()
	p.state = stDevice
	p.batch.devs = append(p.batch.devs, devOp{id: id, transaction: p.vals[2],
		ctime: uint32(p.vals[3]), stime: uint32(p.vals[4]), blob: blob})
	return p.emit(opDevice, uint64(len(p.batch.devs)-1), line)
}

func (p *parser) def() error {
	if err := p.attrs(nameAttrs); err != nil {
		return err
	}
	line := p.lx.tagLine
	name, ok := unescape(p.strs[0])
	if !ok {
		return p.errorf(line, "bad character reference in the name of <def>")
	}
	if i, ok := p.defs[name]; ok {
		return p.errorf(line, "def %q already defined at line %d", name, p.defList[i].line)
	}
	p.defList = append(p.defList, defInfo{name: name, line: line})
	p.beginTree()
	p.state = stDef
	return p.emit(opDef, uint64(len(p.defList)-1), line)
}

func (p *parser) ref() error {
	if err := p.attrs(nameAttrs); err != nil {
		return err
	}
	line := p.lx.tagLine
	name, ok := unescape(p.strs[0])
	if !ok {
		return p.errorf(line, "bad character reference in the name of <ref>")
	}
	i, ok := p.defs[name]
	if !ok {
		return p.errorf(line, "<ref name=%q> names no <def> defined before it", name)
	}
	d := &p.defList[i]
	if d.count == 0 {
		return nil // an empty def adds nothing
	}
	if p.haveLast && d.first <= p.lastKey {
		return p.errorf(line, "<ref name=%q> starts at block %d, not above the previous mapping's %d (blocks must be strictly increasing)",
			name, d.first, p.lastKey)
	}
	p.note(d.first, d.last, d.count)
	return p.emit(opRef, uint64(i), line)
}

// note records mappings first..last (count of them) of the current tree.
func (p *parser) note(first, last, count uint64) {
	if !p.haveLast {
		p.treeFirst = first
	}
	p.haveLast, p.lastKey = true, last
	p.treeCount += count
}

func (p *parser) mapping() error {
	lx := p.lx
	line := lx.tagLine
	var origin, data, length, t uint64
	if lx.elem == elSingle {
		if err := p.attrs(singleAttrs); err != nil {
			return err
		}
		origin, data, length, t = p.vals[0], p.vals[1], 1, p.vals[2]
	} else {
		if err := p.attrs(rangeAttrs); err != nil {
			return err
		}
		origin, data, length, t = p.vals[0], p.vals[1], p.vals[2], p.vals[3]
	}
	return p.addMapping(line, origin, data, length, t)
}

// addMapping checks a mapping element's values (from line) and queues it.
func (p *parser) addMapping(line int64, origin, data, length, t uint64) error {
	if length == 0 {
		return nil // maps nothing, as in thin_restore
	}
	if t > thin.MaxTime {
		return p.errorf(line, "time %d does not fit the 24 bits of a mapping", t)
	}
	if _, err := thin.BlockRange(origin, length); err != nil {
		return &InputError{Line: line, Msg: "virtual " + err.Error(), Err: err}
	}
	if p.haveLast && origin <= p.lastKey {
		return p.errorf(line, "virtual block %d is not above the previous mapping's %d (blocks must be strictly increasing)",
			origin, p.lastKey)
	}
	nr := p.hdr.nrDataBlocks
	if data >= nr || length > nr-data {
		return p.errorf(line, "mapping beyond the end of the data device (%d blocks from data block %d, nr_data_blocks %d)",
			length, data, nr)
	}
	if data+(length-1) > thin.MaxDataBlock {
		return p.errorf(line, "data block %d beyond the format's limit of %d", data+(length-1), uint64(thin.MaxDataBlock))
	}
	p.note(origin, origin+(length-1), length)
	return p.emitMap(origin, data, length, uint32(t), line)
}
