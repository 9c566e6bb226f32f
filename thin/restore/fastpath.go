package restore

// A fast path for the tags that make up nearly all of a dump: mapping
// elements written exactly as thin_dump writes them,
//
//	<single_mapping origin_block="N" data_block="N" time="N"/>
//	<range_mapping origin_begin="N" data_begin="N" length="N" time="N"/>
//
// with only whitespace before them. fastMapping recognises such a tag in
// one pass over its bytes, without the general tokenizer's attribute table.
// Anything else — other spacing, other attribute order, quotes, entities,
// a number of 20 digits or more, a time above 2^32-1, a tag near the end
// of the buffered input — is left to the general path, which then reads
// the same bytes again and reaches the same verdict it always would: the
// fast path accepts only what the general path accepts, with the same
// values and the same lines, and consumes nothing when it declines.

// fastPath turns the fast path on; tests turn it off to compare.
var fastPath = true

// fastMargin is how many buffered bytes the fast path needs past the read
// position: more than any tag it accepts (the longest is about 130 bytes)
// plus the whitespace before it that it is willing to skip.
const fastMargin = 512

const (
	singlePrefix = `single_mapping origin_block="`
	rangePrefix  = `range_mapping origin_begin="`
	dataBlockSep = `" data_block="`
	dataBeginSep = `" data_begin="`
	lengthSep    = `" length="`
	timeSep      = `" time="`
	emptyEnd     = `"/>`
)

// fastMapping tries to read one mapping tag at the read position. On
// success it sets the current token (an empty-element tag, its element and
// line), advances past it and returns the mapping's origin, data block,
// length and time.
func (l *lexer) fastMapping() (origin, data, length, t uint64, ok bool) {
	b := l.buf[:l.end]
	p, line := l.pos, l.line
	if len(b)-p < fastMargin {
		return
	}
	lim := p + (fastMargin - 200)
	for ; p < lim; p++ {
		c := b[p]
		if c == '\n' {
			line++
		} else if c != ' ' && c != '\t' && c != '\r' {
			break
		}
	}
	if p == lim || b[p] != '<' {
		return
	}
	p++
	var el element
	switch {
	case string(b[p:p+len(rangePrefix)]) == rangePrefix:
		el = elRange
		p += len(rangePrefix)
	case string(b[p:p+len(singlePrefix)]) == singlePrefix:
		el = elSingle
		p += len(singlePrefix)
	default:
		return
	}
	if origin, p, ok = fastNumber(b, p); !ok {
		return
	}
	if el == elRange {
		if string(b[p:p+len(dataBeginSep)]) != dataBeginSep {
			return 0, 0, 0, 0, false
		}
		p += len(dataBeginSep)
		if data, p, ok = fastNumber(b, p); !ok {
			return
		}
		if string(b[p:p+len(lengthSep)]) != lengthSep {
			return 0, 0, 0, 0, false
		}
		p += len(lengthSep)
		if length, p, ok = fastNumber(b, p); !ok {
			return
		}
	} else {
		if string(b[p:p+len(dataBlockSep)]) != dataBlockSep {
			return 0, 0, 0, 0, false
		}
		p += len(dataBlockSep)
		if data, p, ok = fastNumber(b, p); !ok {
			return
		}
		length = 1
	}
	if string(b[p:p+len(timeSep)]) != timeSep {
		return 0, 0, 0, 0, false
	}
	p += len(timeSep)
	if t, p, ok = fastNumber(b, p); !ok || t > u32 {
		return 0, 0, 0, 0, false
	}
	if string(b[p:p+len(emptyEnd)]) != emptyEnd {
		return 0, 0, 0, 0, false
	}
	l.pos, l.line = p+len(emptyEnd), line
	l.kind, l.elem, l.tagLine, l.nattrs = tokEmpty, el, line, 0
	return origin, data, length, t, true
}

// fastNumber reads 1 to 19 decimal digits at b[p:] (so the value cannot
// overflow) and returns the value and the position after them. It relies
// on the caller's margin: b holds more bytes than it can read.
func fastNumber(b []byte, p int) (v uint64, next int, ok bool) {
	s := p
	for p-s < 20 {
		d := uint64(b[p] - '0')
		if d > 9 {
			break
		}
		v = v*10 + d
		p++
	}
	n := p - s
	return v, p, n > 0 && n < 20
}
