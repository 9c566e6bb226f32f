package pack

import "github.com/thinmeta/thinmeta/transaction"

// encoder appends the instructions of the block encoding to out.
type encoder struct{ out []byte }

func (e *encoder) tag(t, nib byte) { e.out = append(e.out, instruction(t, nib)) }

// widthOperand appends instruction t with the narrowest operand holding v.
func (e *encoder) widthOperand(t byte, v uint64) {
	w := operandWidth(v)
	e.tag(t, w)
	e.out = appendOperand(e.out, v, w)
}

// count appends the prefix that repeats the next instruction n times
// (1 ≤ n ≤ maxCount); none for n == 1.
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

// repeat appends base n more times (1 ≤ n ≤ maxCount).
func (e *encoder) repeat(n int) {
	if n < 16 {
		e.tag(tagConst, byte(n))
	} else {
		e.tag(tagConst8, byte(n>>8))
		e.out = append(e.out, byte(n))
	}
}

// u64s encodes a run of values as a Set followed by runs of equal deltas,
// as thin_metadata_pack does: a step up is a Pos, a step down a Neg (even
// when wrapping around would be shorter), and a run of steps continues
// while the values keep the same wrapping progression. It never depends on
// the base carried over from earlier instructions.
func (e *encoder) u64s(ns []uint64) {
	if len(ns) == 0 {
		return
	}
	e.widthOperand(tagSet, ns[0])
	for i := 1; i < len(ns); {
		d := ns[i] - ns[i-1]
		j := i + 1
		for j < len(ns) && j-i < maxCount && ns[j]-ns[j-1] == d {
			j++
		}
		n := j - i
		switch {
		case d == 0:
			e.repeat(n)
		case ns[i] > ns[i-1]:
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

// shifted encodes at most maxCount mapping values as a ShiftedRun: their
// data blocks (value >> 24) and times (value & 0xFFFFFF) as two runs.
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

// literal appends raw bytes.
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

// encodeBlock appends the encoding of a checksummed block of kind salt
// (FORMAT.md §8.4, writer side). Node blocks whose header describes keys
// or values that do not fit the block, which thin_metadata_pack refuses to
// pack, are stored as one literal.
func encodeBlock(e *encoder, blk []byte, salt uint32) {
	if salt != transaction.SaltNode {
		e.literal(blk)
		return
	}
	s := summariseNode(blk)
	keysEnd := nodeHeaderSize + 8*s.maxEntries
	if keysEnd > bs {
		e.literal(blk)
		return
	}
	valsEnd := keysEnd + 8*s.maxEntries
	e.literal(blk[:nodeHeaderSize])
	e.u64s(getU64s(blk[nodeHeaderSize:keysEnd]))
	leaf := s.flags == nodeFlagsLeaf
	switch {
	case valsEnd > bs || leaf && s.valueSize != 8:
		e.literal(blk[keysEnd:])
	case leaf:
		e.shifted(getU64s(blk[keysEnd:valsEnd]))
		e.literal(blk[valsEnd:])
	default:
		e.u64s(getU64s(blk[keysEnd:valsEnd]))
		e.literal(blk[valsEnd:])
	}
}
