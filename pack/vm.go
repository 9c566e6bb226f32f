package pack

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// ErrFormat means a pack file is damaged or not a pack file. Every error
// about the content of a pack file wraps it.
var ErrFormat = errors.New("bad thin_metadata_pack file")

// formatError is the concrete type of the errors wrapping ErrFormat.
type formatError struct{ msg string }

func (e *formatError) Error() string { return ErrFormat.Error() + ": " + e.msg }
func (e *formatError) Unwrap() error { return ErrFormat }

func formatErr(format string, args ...any) error {
	return &formatError{fmt.Sprintf(format, args...)}
}

// inBlock adds the block number to a format error.
func inBlock(b uint64, err error) error {
	if fe, ok := err.(*formatError); ok {
		return &formatError{fmt.Sprintf("block %d: %s", b, fe.msg)}
	}
	return err
}

// source is where the decoder reads instructions from: a buffered zlib
// stream when unpacking, a bytes.Reader in tests.
type source interface {
	io.Reader
	io.ByteReader
}

// Limits of the decoder that the format itself does not state.
const (
	// maxShiftedDepth bounds how deeply ShiftedRun instructions may nest
	// inside the runs of other ShiftedRuns. Encoders never nest them; the
	// bound keeps a hostile stream from exhausting the stack.
	maxShiftedDepth = 8
	// shiftedSlack is how far one of the two runs of a ShiftedRun may
	// overshoot its n values. thin_metadata_pack runs the VM until at least
	// 8n bytes have been emitted and ignores the excess; the last
	// instruction of a run can overshoot by at most 4095 values, except
	// for a literal, which is rejected if it overshoots further.
	shiftedSlack = 8 * (maxCount + 1)
)

// vm decodes one encoded block (FORMAT.md §8.4). It is fresh for every
// block: base starts at 0.
type vm struct {
	in    source
	base  uint64
	depth int // ShiftedRun nesting
}

// decodeBlock decodes the instructions of one block from in, appending
// exactly BlockSize bytes to out[:0].
func decodeBlock(in source, out []byte) ([]byte, error) {
	m := vm{in: in}
	return m.run(out[:0], bs, bs)
}

func (m *vm) readErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return formatErr("encoded block truncated")
	}
	return err
}

func (m *vm) byte() (byte, error) {
	b, err := m.in.ReadByte()
	if err != nil {
		return 0, m.readErr(err)
	}
	return b, nil
}

// operand reads a little-endian operand whose width (1, 2, 4 or 8 bytes)
// is given by an instruction's nibble.
func (m *vm) operand(width byte) (uint64, error) {
	switch width {
	case 1, 2, 4, 8:
	default:
		return 0, formatErr("operand width %d", width)
	}
	var buf [8]byte
	if _, err := io.ReadFull(m.in, buf[:width]); err != nil {
		return 0, m.readErr(err)
	}
	return decodeOperand(buf[:width]), nil
}

// run executes instructions, appending to out, until out holds at least
// want bytes; it fails if out would grow beyond limit bytes.
func (m *vm) run(out []byte, want, limit int) ([]byte, error) {
	for len(out) < want {
		var err error
		if out, err = m.instr(out, limit); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func tooLong(limit int) error {
	return formatErr("encoded block expands beyond %d bytes", limit)
}

// emit appends base n times.
func (m *vm) emit(out []byte, n, limit int) ([]byte, error) {
	if n > (limit-len(out))/8 {
		return nil, tooLong(limit)
	}
	for range n {
		out = appendU64(out, m.base)
	}
	return out, nil
}

// step adds delta to base and emits it, n times; additions wrap.
func (m *vm) step(out []byte, n int, delta uint64, limit int) ([]byte, error) {
	if n > (limit-len(out))/8 {
		return nil, tooLong(limit)
	}
	for range n {
		m.base += delta
		out = appendU64(out, m.base)
	}
	return out, nil
}

// instr executes one instruction, with any Count/Count8 prefixes. As in
// thin_metadata_pack, a later prefix replaces an earlier one.
func (m *vm) instr(out []byte, limit int) ([]byte, error) {
	b, err := m.byte()
	if err != nil {
		return nil, err
	}
	tag, nib := splitInstruction(b)
	count := 1
	for tag == tagCount || tag == tagCount8 {
		count = int(nib)
		if tag == tagCount8 {
			lo, err := m.byte()
			if err != nil {
				return nil, err
			}
			count = count<<8 | int(lo)
		}
		if b, err = m.byte(); err != nil {
			return nil, err
		}
		tag, nib = splitInstruction(b)
	}
	switch tag {
	case tagConst, tagConst8, tagLit, tagLitW:
		if count != 1 {
			return nil, formatErr("repeat count %d on instruction tag %d", count, tag)
		}
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
		return m.step(out, count, uint64(nib), limit)
	case tagNeg:
		return m.step(out, count, -uint64(nib), limit)
	case tagPosW, tagNegW:
		d, err := m.operand(nib)
		if err != nil {
			return nil, err
		}
		if tag == tagNegW {
			d = -d
		}
		return m.step(out, count, d, limit)
	case tagConst:
		return m.emit(out, int(nib), limit)
	case tagConst8:
		lo, err := m.byte()
		if err != nil {
			return nil, err
		}
		return m.emit(out, int(nib)<<8|int(lo), limit)
	case tagLit:
		return m.literal(out, uint64(nib), limit)
	case tagLitW:
		n, err := m.operand(nib)
		if err != nil {
			return nil, err
		}
		return m.literal(out, n, limit)
	case tagShiftedRun:
		// thin_metadata_pack ignores a repeat count here; so do we.
		lo, err := m.byte()
		if err != nil {
			return nil, err
		}
		return m.shiftedRun(out, int(nib)<<8|int(lo), limit)
	default:
		return nil, formatErr("unknown instruction tag %d", tag)
	}
}

func (m *vm) literal(out []byte, n uint64, limit int) ([]byte, error) {
	if n > uint64(limit-len(out)) {
		return nil, tooLong(limit)
	}
	start := len(out)
	out = slices.Grow(out, int(n))[:start+int(n)]
	if _, err := io.ReadFull(m.in, out[start:]); err != nil {
		return nil, m.readErr(err)
	}
	return out, nil
}

// shiftedRun decodes n high parts, then n low parts, and emits
// high<<24 | low&0xFFFFFF for each.
func (m *vm) shiftedRun(out []byte, n, limit int) ([]byte, error) {
	if n > (limit-len(out))/8 {
		return nil, tooLong(limit)
	}
	if m.depth >= maxShiftedDepth {
		return nil, formatErr("ShiftedRun instructions nested more than %d deep", maxShiftedDepth)
	}
	m.depth++
	defer func() { m.depth-- }()
	hi, err := m.run(nil, 8*n, 8*n+shiftedSlack)
	if err != nil {
		return nil, err
	}
	lo, err := m.run(nil, 8*n, 8*n+shiftedSlack)
	if err != nil {
		return nil, err
	}
	const mask = 1<<shiftBits - 1
	for i := range n {
		out = appendU64(out, getU64(hi[8*i:])<<shiftBits|getU64(lo[8*i:])&mask)
	}
	return out, nil
}
