package pack

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrFormat means a pack file is damaged or not a pack file.
var ErrFormat = errors.New("thinmeta: bad thin_metadata_pack file")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// vm decodes one encoded block (FORMAT.md §8.4).
type vm struct {
	in   []byte
	pos  int
	base uint64
}

func (m *vm) byte() (byte, error) {
	if m.pos >= len(m.in) {
		return 0, formatErr("encoded block truncated")
	}
	b := m.in[m.pos]
	m.pos++
	return b, nil
}

func (m *vm) operand(width byte) (uint64, error) {
	switch width {
	case 1, 2, 4, 8:
	default:
		return 0, formatErr("operand width %d", width)
	}
	if m.pos+int(width) > len(m.in) {
		return 0, formatErr("encoded block truncated")
	}
	var buf [8]byte
	copy(buf[:], m.in[m.pos:m.pos+int(width)])
	m.pos += int(width)
	return binary.LittleEndian.Uint64(buf[:]), nil
}

// run executes instructions, appending to out, until out holds at least
// want bytes; it fails if it would grow beyond limit.
func (m *vm) run(out []byte, want, limit int) ([]byte, error) {
	for len(out) < want {
		var err error
		if out, err = m.instr(out, 1, limit); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (m *vm) emit(out []byte, n int, limit int) ([]byte, error) {
	if len(out)+8*n > limit {
		return nil, formatErr("encoded block expands beyond %d bytes", limit)
	}
	for range n {
		out = binary.LittleEndian.AppendUint64(out, m.base)
	}
	return out, nil
}

func (m *vm) instr(out []byte, count int, limit int) ([]byte, error) {
	b, err := m.byte()
	if err != nil {
		return nil, err
	}
	tag, nib := b>>4, b&0xF
	if count != 1 {
		switch tag {
		case tagConst, tagConst8, tagLit, tagLitW, tagShiftedRun, tagCount, tagCount8:
			return nil, formatErr("repeat count on instruction %d", tag)
		}
	}
	step := func(delta uint64, neg bool) ([]byte, error) {
		if len(out)+8*count > limit {
			return nil, formatErr("encoded block expands beyond %d bytes", limit)
		}
		for range count {
			if neg {
				m.base -= delta
			} else {
				m.base += delta
			}
			out = binary.LittleEndian.AppendUint64(out, m.base)
		}
		return out, nil
	}
	switch tag {
	case tagSet:
		v, err := m.operand(nib)
		if err != nil {
			return nil, err
		}
		m.base = v
		return m.emit(out, count, limit)
	case tagPos:
		return step(uint64(nib), false)
	case tagPosW:
		d, err := m.operand(nib)
		if err != nil {
			return nil, err
		}
		return step(d, false)
	case tagNeg:
		return step(uint64(nib), true)
	case tagNegW:
		d, err := m.operand(nib)
		if err != nil {
			return nil, err
		}
		return step(d, true)
	case tagConst:
		return m.emit(out, int(nib), limit)
	case tagConst8:
		lo, err := m.byte()
		if err != nil {
			return nil, err
		}
		return m.emit(out, int(nib)<<8|int(lo), limit)
	case tagCount:
		return m.instr(out, int(nib), limit)
	case tagCount8:
		lo, err := m.byte()
		if err != nil {
			return nil, err
		}
		return m.instr(out, int(nib)<<8|int(lo), limit)
	case tagLit:
		return m.literal(out, int(nib), limit)
	case tagLitW:
		n, err := m.operand(nib)
		if err != nil {
			return nil, err
		}
		if n > uint64(limit) {
			return nil, formatErr("literal of %d bytes", n)
		}
		return m.literal(out, int(n), limit)
	case tagShiftedRun:
		lo, err := m.byte()
		if err != nil {
			return nil, err
		}
		n := int(nib)<<8 | int(lo)
		if len(out)+8*n > limit {
			return nil, formatErr("encoded block expands beyond %d bytes", limit)
		}
		hi, err := m.run(make([]byte, 0, 8*n), 8*n, 8*n)
		if err != nil {
			return nil, err
		}
		low, err := m.run(make([]byte, 0, 8*n), 8*n, 8*n)
		if err != nil {
			return nil, err
		}
		for i := range n {
			h := binary.LittleEndian.Uint64(hi[8*i:])
			l := binary.LittleEndian.Uint64(low[8*i:])
			out = binary.LittleEndian.AppendUint64(out, h<<shiftBits|l&(1<<shiftBits-1))
		}
		return out, nil
	default:
		return nil, formatErr("unknown instruction tag %d", tag)
	}
}

func (m *vm) literal(out []byte, n int, limit int) ([]byte, error) {
	if m.pos+n > len(m.in) {
		return nil, formatErr("encoded block truncated")
	}
	if len(out)+n > limit {
		return nil, formatErr("encoded block expands beyond %d bytes", limit)
	}
	out = append(out, m.in[m.pos:m.pos+n]...)
	m.pos += n
	return out, nil
}

// encoder writes the instructions of the block encoding.
type encoder struct{ out []byte }

func (e *encoder) tag(t, nib byte) { e.out = append(e.out, t<<4|nib) }

func (e *encoder) widthOperand(t byte, v uint64) {
	switch {
	case v <= 0xFF:
		e.tag(t, 1)
		e.out = append(e.out, byte(v))
	case v <= 0xFFFF:
		e.tag(t, 2)
		e.out = binary.LittleEndian.AppendUint16(e.out, uint16(v))
	case v <= 0xFFFFFFFF:
		e.tag(t, 4)
		e.out = binary.LittleEndian.AppendUint32(e.out, uint32(v))
	default:
		e.tag(t, 8)
		e.out = binary.LittleEndian.AppendUint64(e.out, v)
	}
}

func (e *encoder) count(n int) {
	switch {
	case n == 1:
	case n < 16:
		e.tag(tagCount, byte(n))
	default:
		e.tag(tagCount8, byte(n>>8))
		e.out = append(e.out, byte(n))
	}
}

// u64s encodes a run of values (fewer than 4096) as a Set followed by
// runs of equal deltas.
func (e *encoder) u64s(ns []uint64) {
	if len(ns) == 0 {
		return
	}
	e.widthOperand(tagSet, ns[0])
	for i := 1; i < len(ns); {
		d := ns[i] - ns[i-1]
		j := i + 1
		for j < len(ns) && ns[j]-ns[j-1] == d {
			j++
		}
		n := j - i
		switch {
		case d == 0:
			if n < 16 {
				e.tag(tagConst, byte(n))
			} else {
				e.tag(tagConst8, byte(n>>8))
				e.out = append(e.out, byte(n))
			}
		case d < 1<<63:
			e.count(n)
			if d < 16 {
				e.tag(tagPos, byte(d))
			} else {
				e.widthOperand(tagPosW, d)
			}
		default:
			e.count(n)
			if nd := -d; nd < 16 {
				e.tag(tagNeg, byte(nd))
			} else {
				e.widthOperand(tagNegW, nd)
			}
		}
		i = j
	}
}

// shifted encodes mapping values split into block and time runs.
func (e *encoder) shifted(ns []uint64) {
	e.tag(tagShiftedRun, byte(len(ns)>>8))
	e.out = append(e.out, byte(len(ns)))
	his := make([]uint64, len(ns))
	los := make([]uint64, len(ns))
	for i, v := range ns {
		his[i], los[i] = v>>shiftBits, v&(1<<shiftBits-1)
	}
	e.u64s(his)
	e.u64s(los)
}

func (e *encoder) literal(b []byte) {
	if len(b) == 0 {
		return
	}
	if len(b) < 16 {
		e.tag(tagLit, byte(len(b)))
	} else {
		e.widthOperand(tagLitW, uint64(len(b)))
	}
	e.out = append(e.out, b...)
}
