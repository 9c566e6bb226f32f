package restore

import (
	"encoding/binary"
	"math/bits"
)

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
	// The first byte tells which prefix to compare: one comparison of
	// the ~30 bytes per tag, not two for a single_mapping.
	switch {
	case b[p] == 'r' && string(b[p:p+len(rangePrefix)]) == rangePrefix:
		el = elRange
		p += len(rangePrefix)
	case b[p] == 's' && string(b[p:p+len(singlePrefix)]) == singlePrefix:
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
//
// Up to 8 digits, nearly all the numbers of a dump, are found and
// converted in one 8-byte word, without a branch per digit.
func fastNumber(b []byte, p int) (v uint64, next int, ok bool) {
	// d holds the bytes' digit values, exact up to the first byte that is
	// not a digit: a byte below '0' borrows only from the bytes after it.
	// A byte is not a digit if its value underflowed (top bit set) or is
	// above 9 (adding 0x76 sets the top bit; a carry out of it too goes
	// only to the bytes after).
	d := binary.LittleEndian.Uint64(b[p:]) - 0x3030303030303030
	nd := (d | (d + 0x7676767676767676)) & 0x8080808080808080
	if nd == 0 {
		return longNumber(b, p, d)
	}
	// The first digit is the lowest byte: shifting the n digits to the
	// top puts zeros, leading zeros, below them (and no digit, n = 0,
	// shifts everything out).
	n := bits.TrailingZeros64(nd) >> 3
	return eightDigits(d << (64 - 8*n)), p + n, n > 0
}

// longNumber is fastNumber of a number of 8 digits or more, whose first
// 8 are d.
func longNumber(b []byte, p int, d uint64) (v uint64, next int, ok bool) {
	v = eightDigits(d)
	s := p
	p += 8
	for p-s < 20 {
		d := uint64(b[p] - '0')
		if d > 9 {
			break
		}
		v = v*10 + d
		p++
	}
	return v, p, p-s < 20
}

// eightDigits returns the number whose eight decimal digits are the bytes
// of d (0 to 9 each), the most significant in the lowest byte: pairs of
// digits, then of pairs, then of fours are combined with one multiply
// each.
func eightDigits(d uint64) uint64 {
	d = (d * (10<<8 + 1)) >> 8 & 0x00ff00ff00ff00ff
	d = (d * (100<<16 + 1)) >> 16 & 0x0000ffff0000ffff
	return (d * (10000<<32 + 1)) >> 32
}
