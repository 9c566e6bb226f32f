package dump

import (
	"encoding/binary"
	"math/bits"

	"github.com/thinmeta/thinmeta/thin"
)

// The mapping lines are most of a dump's output (about 1.5 million of them
// for 10 million mappings), so they are formatted without strconv: the
// fixed text is stored eight bytes at a time and the numbers eight digits
// at a time, into room reserved once per line.

// piece is a fixed piece of a mapping line, as little-endian words padded
// with zeros. Each piece is stored as a fixed number of words (put1, put2
// or put5, as the runForm's field says), which may write past its text;
// the next piece (or the reserved room) absorbs the excess.
type piece struct {
	w [5]uint64
	n int // length of the text
}

func newPiece(s string, words int) piece {
	var p piece
	if len(s) > 8*words || words > len(p.w) {
		panic("dump: piece too long")
	}
	var b [8 * len(p.w)]byte
	copy(b[:], s)
	for i := range p.w {
		p.w[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	p.n = len(s)
	return p
}

// put5 stores a piece of up to 40 bytes at s[i:] and returns the index
// after its text; put2 one of up to 16 bytes, put1 one of up to 8.
func (p *piece) put5(s []byte, i int) int {
	t := s[i : i+40]
	binary.LittleEndian.PutUint64(t[0:], p.w[0])
	binary.LittleEndian.PutUint64(t[8:], p.w[1])
	binary.LittleEndian.PutUint64(t[16:], p.w[2])
	binary.LittleEndian.PutUint64(t[24:], p.w[3])
	binary.LittleEndian.PutUint64(t[32:], p.w[4])
	return i + p.n
}

func (p *piece) put2(s []byte, i int) int {
	t := s[i : i+16]
	binary.LittleEndian.PutUint64(t[0:], p.w[0])
	binary.LittleEndian.PutUint64(t[8:], p.w[1])
	return i + p.n
}

func (p *piece) put1(s []byte, i int) int {
	binary.LittleEndian.PutUint64(s[i:], p.w[0])
	return i + p.n
}

// runForm is the text of one generation's mapping lines.
type runForm struct {
	single, rangeBegin piece // put5: ... origin_block=", ... origin_begin="
	dataBlock          piece // put2: " data_block="
	dataBegin, length  piece // put2: " data_begin=", " length="
	time, end          piece // put1: " time=", the end of the line
}

func newForm(single, rangeBegin, end string) runForm {
	return runForm{
		single:     newPiece(single, 5),
		rangeBegin: newPiece(rangeBegin, 5),
		dataBlock:  newPiece(`" data_block="`, 2),
		dataBegin:  newPiece(`" data_begin="`, 2),
		length:     newPiece(`" length="`, 2),
		time:       newPiece(`" time="`, 1),
		end:        newPiece(end, 1),
	}
}

var (
	form090 = newForm(`    <single_mapping origin_block="`, `    <range_mapping origin_begin="`, "\"/>\n")
	form110 = newForm("\n    <single_mapping origin_block=\"", "\n    <range_mapping origin_begin=\"", `"/>`)
)

// maxRunLine bounds the room a mapping line needs: its text (at most 140
// bytes, with three 20-digit numbers and a 10-digit time) and the bytes
// the last store may write past it (at most 7).
const maxRunLine = 160

// appendRun appends r as a mapping line of form f, byte for byte what
// the emitters' attr-based text would be.
func appendRun(b []byte, r thin.Run, f *runForm) []byte {
	if cap(b)-len(b) < maxRunLine {
		b = append(b[:cap(b)], make([]byte, maxRunLine)...)[:len(b)]
	}
	i := len(b)
	s := b[:cap(b)]
	if r.VBlock|r.Block|r.Len|uint64(r.Time) < 1<<26 { // each below 10^8
		// The digits of all numbers first: they do not depend on
		// where the text goes, so they are worked out side by side
		// (dec8 written out: it is over the inlining budget).
		xk, xb, xl, xt := digits8(r.VBlock), digits8(r.Block), digits8(r.Len), digits8(uint64(r.Time))
		zk := uint(bits.TrailingZeros64(xk|1<<63)) & 56
		zb := uint(bits.TrailingZeros64(xb|1<<63)) & 56
		zt := uint(bits.TrailingZeros64(xt|1<<63)) & 56
		if r.Len == 1 {
			i = f.single.put5(s, i)
			binary.LittleEndian.PutUint64(s[i:], (xk|asciiZeros)>>zk)
			i = f.dataBlock.put2(s, i+8-int(zk>>3))
			binary.LittleEndian.PutUint64(s[i:], (xb|asciiZeros)>>zb)
			i += 8 - int(zb>>3)
		} else {
			zl := uint(bits.TrailingZeros64(xl|1<<63)) & 56
			i = f.rangeBegin.put5(s, i)
			binary.LittleEndian.PutUint64(s[i:], (xk|asciiZeros)>>zk)
			i = f.dataBegin.put2(s, i+8-int(zk>>3))
			binary.LittleEndian.PutUint64(s[i:], (xb|asciiZeros)>>zb)
			i = f.length.put2(s, i+8-int(zb>>3))
			binary.LittleEndian.PutUint64(s[i:], (xl|asciiZeros)>>zl)
			i += 8 - int(zl>>3)
		}
		i = f.time.put1(s, i)
		binary.LittleEndian.PutUint64(s[i:], (xt|asciiZeros)>>zt)
		i = f.end.put1(s, i+8-int(zt>>3))
		return s[:i]
	}
	if r.Len == 1 {
		i = f.single.put5(s, i)
		i = putDec(s, i, r.VBlock)
		i = f.dataBlock.put2(s, i)
		i = putDec(s, i, r.Block)
	} else {
		i = f.rangeBegin.put5(s, i)
		i = putDec(s, i, r.VBlock)
		i = f.dataBegin.put2(s, i)
		i = putDec(s, i, r.Block)
		i = f.length.put2(s, i)
		i = putDec(s, i, r.Len)
	}
	i = f.time.put1(s, i)
	i = putDec(s, i, uint64(r.Time))
	i = f.end.put1(s, i)
	return s[:i]
}

// digits8 returns the eight decimal digits of v < 10^8, leading zeros
// included, one a byte in the order they are written (the most
// significant in the lowest byte), as values 0-9. The digits are split
// in lanes of one word: v into two halves of four digits (32-bit lanes),
// each half into two pairs (16-bit lanes), each pair into two digits
// (bytes). Each lane's quotient is a multiply and a shift, exact for the
// lane's range: x*10486>>20 is x/100 for x < 10^4 (x*10486 < 2^27 stays
// in its 32-bit lane), x*103>>10 is x/10 for x < 100 (x*103 < 2^14 stays
// in its 16-bit lane).
func digits8(v uint64) uint64 {
	hi := v / 10000
	x := hi | (v-10000*hi)<<32
	q := (x * 10486 >> 20) & 0x0000007f_0000007f
	x = q | (x-100*q)<<16
	q = (x * 103 >> 10) & 0x000f000f_000f000f
	return q | (x-10*q)<<8
}

const asciiZeros = 0x30303030_30303030

// putDec writes v in decimal at s[i:] and returns the index after it. It
// stores eight bytes at a time, so it may write up to seven bytes past
// the number's end (the room appendRun reserves absorbs them). Numbers
// below 10^8 (data and virtual block numbers of pools up to 381 TiB of
// 4 MiB blocks, lengths, times) take one store and no branch.
func putDec(s []byte, i int, v uint64) int {
	if v < 1e8 {
		return putDec8(s, i, v)
	}
	hi, lo := v/1e8, v%1e8
	if hi < 1e8 {
		i = putDec8(s, i, hi)
	} else { // hi < 1.9*10^11
		i = putDec8(s, i, hi/1e8)
		binary.LittleEndian.PutUint64(s[i:], digits8(hi%1e8)|asciiZeros)
		i += 8
	}
	binary.LittleEndian.PutUint64(s[i:], digits8(lo)|asciiZeros)
	return i + 8
}

// putDec8 writes v < 10^8 in decimal at s[i:], storing eight bytes, and
// returns the index after its digits.
func putDec8(s []byte, i int, v uint64) int {
	w, n := dec8(v)
	binary.LittleEndian.PutUint64(s[i:], w)
	return i + n
}

// dec8 returns the decimal text of v < 10^8 as a little-endian word
// (padded with zero bytes) and its length.
func dec8(v uint64) (uint64, int) {
	x := digits8(v)
	// The leading zero digits are the low zero bytes; the last digit
	// stays even when v is 0 (bit 63 is never set in a digit byte).
	z := uint(bits.TrailingZeros64(x|1<<63)) & 56
	return (x | asciiZeros) >> z, 8 - int(z>>3)
}

// formOf returns the form of e's mapping lines if appendRun writes them
// (the XML of either generation), or nil.
func formOf(e emitter) *runForm {
	switch e.(type) {
	case xmlEmitter:
		return &form090
	case xml110Emitter:
		return &form110
	}
	return nil
}
