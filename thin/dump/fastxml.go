package dump

import (
	"encoding/binary"
	"math/bits"

	"github.com/thinmeta/thinmeta/thin"
)

// The mapping lines are most of a dump's output (about 1.5 million of them
// for 10 million mappings), so they are formatted without strconv: the
// fixed text is stored eight bytes at a time and the numbers are written
// two digits at a time, into room reserved once per line.

// piece is a fixed piece of a mapping line, as little-endian words padded
// with zeros; storing all its words may write up to seven bytes past its
// end, which the next piece (or the reserved room) absorbs.
type piece struct {
	w [5]uint64
	n int // length of the text
}

func newPiece(s string) piece {
	var p piece
	if len(s) > 8*len(p.w) {
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

// put stores p at s[i:] and returns the index after its text.
func (p *piece) put(s []byte, i int) int {
	for j := 0; j < (p.n+7)/8; j++ {
		binary.LittleEndian.PutUint64(s[i+8*j:], p.w[j])
	}
	return i + p.n
}

// runForm is the text of one generation's mapping lines.
type runForm struct {
	single, dataBlock         piece // ... origin_block=", " data_block="
	rangeBegin, dataBegin     piece // ... origin_begin=", " data_begin="
	length, time, end         piece // " length=", " time=", the end of the line
	singleIsRange, hasNewline bool
}

var (
	form090 = runForm{
		single:     newPiece(`    <single_mapping origin_block="`),
		dataBlock:  newPiece(`" data_block="`),
		rangeBegin: newPiece(`    <range_mapping origin_begin="`),
		dataBegin:  newPiece(`" data_begin="`),
		length:     newPiece(`" length="`),
		time:       newPiece(`" time="`),
		end:        newPiece("\"/>\n"),
	}
	form110 = runForm{
		single:     newPiece("\n    <single_mapping origin_block=\""),
		dataBlock:  newPiece(`" data_block="`),
		rangeBegin: newPiece("\n    <range_mapping origin_begin=\""),
		dataBegin:  newPiece(`" data_begin="`),
		length:     newPiece(`" length="`),
		time:       newPiece(`" time="`),
		end:        newPiece(`"/>`),
	}
)

// maxRunLine bounds the room a mapping line needs: its text (at most 140
// bytes, with three 20-digit numbers and a 10-digit time) and the bytes
// the last word stores may write past it.
const maxRunLine = 160

// appendRun appends r as a mapping line of form f, byte for byte what
// the emitters' attr-based text would be.
func appendRun(b []byte, r thin.Run, f *runForm) []byte {
	if cap(b)-len(b) < maxRunLine {
		b = append(b[:cap(b)], make([]byte, maxRunLine)...)[:len(b)]
	}
	i := len(b)
	s := b[:cap(b)]
	if r.Len == 1 {
		i = f.single.put(s, i)
		i = putDec(s, i, r.VBlock)
		i = f.dataBlock.put(s, i)
		i = putDec(s, i, r.Block)
	} else {
		i = f.rangeBegin.put(s, i)
		i = putDec(s, i, r.VBlock)
		i = f.dataBegin.put(s, i)
		i = putDec(s, i, r.Block)
		i = f.length.put(s, i)
		i = putDec(s, i, r.Len)
	}
	i = f.time.put(s, i)
	i = putDec(s, i, uint64(r.Time))
	i = f.end.put(s, i)
	return s[:i]
}

// pow10[i] is 10^i.
var pow10 = [20]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// decimalLen returns the number of decimal digits of v (1 for 0).
func decimalLen(v uint64) int {
	t := bits.Len64(v|1) * 1233 >> 12 // about log10(2^Len)
	if v|1 < pow10[t] {
		return t
	}
	return t + 1
}

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// putDec writes v in decimal at s[i:] and returns the index after it.
func putDec(s []byte, i int, v uint64) int {
	if v < 10 {
		s[i] = byte('0' + v)
		return i + 1
	}
	n := decimalLen(v)
	end := i + n
	j := end
	for v >= 100 {
		q := v / 100
		d := 2 * (v - 100*q)
		j -= 2
		s[j], s[j+1] = digitPairs[d], digitPairs[d+1]
		v = q
	}
	if v >= 10 {
		s[j-2], s[j-1] = digitPairs[2*v], digitPairs[2*v+1]
	} else {
		s[j-1] = byte('0' + v)
	}
	return end
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
