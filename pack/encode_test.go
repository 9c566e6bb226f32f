package pack

import (
	"bytes"
	"encoding/binary"
	"testing"

	"pgregory.net/rapid"

	"github.com/thinmeta/thinmeta/transaction"
)

// genRun draws runs of u64s the way metadata has them: stretches of
// arithmetic progressions (up, down, constant, wrapping) mixed with
// arbitrary values.
func genRun(maxLen int) *rapid.Generator[[]uint64] {
	return rapid.Custom(func(t *rapid.T) []uint64 {
		n := rapid.IntRange(0, maxLen).Draw(t, "len")
		ns := make([]uint64, 0, n)
		for len(ns) < n {
			start := rapid.OneOf(rapid.Uint64(), rapid.Uint64Range(0, 300),
				rapid.Uint64Range(1<<64-300, 1<<64-1)).Draw(t, "start")
			delta := rapid.OneOf(rapid.Just[uint64](0), rapid.Uint64Range(0, 20),
				rapid.Uint64Range(1<<64-20, 1<<64-1), rapid.Uint64()).Draw(t, "delta")
			k := rapid.IntRange(1, n-len(ns)).Draw(t, "stretch")
			for i := range k {
				ns = append(ns, start+uint64(i)*delta)
			}
		}
		return ns
	})
}

func decodeRun(t *rapid.T, prog []byte, n int) []uint64 {
	in := bytes.NewReader(prog)
	m := vm{in: in}
	out, err := m.run(nil, 8*n, 8*n)
	if err != nil {
		t.Fatalf("decoding %x: %v", prog, err)
	}
	if in.Len() != 0 {
		t.Fatalf("%d bytes left over", in.Len())
	}
	return getU64s(out)
}

func TestEncodeU64sRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ns := genRun(2*maxCount).Draw(t, "ns")
		var e encoder
		e.u64s(ns)
		got := decodeRun(t, e.out, len(ns))
		if len(ns) == 0 && len(e.out) != 0 {
			t.Fatalf("empty run encoded as %x", e.out)
		}
		for i := range ns {
			if got[i] != ns[i] {
				t.Fatalf("value %d: got %d, want %d", i, got[i], ns[i])
			}
		}
	})
}

// A run never depends on the base left by the instructions before it.
func TestEncodeU64sIgnoresBase(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ns := genRun(50).Draw(t, "ns")
		if len(ns) == 0 {
			return
		}
		before := rapid.Uint64().Draw(t, "before")
		var e encoder
		e.widthOperand(tagSet, before)
		e.u64s(ns)
		got := decodeRun(t, e.out, len(ns)+1)
		for i := range ns {
			if got[i+1] != ns[i] {
				t.Fatalf("value %d: got %d, want %d", i, got[i+1], ns[i])
			}
		}
	})
}

func TestEncodeShiftedRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ns := genRun(maxCount).Draw(t, "ns")
		var e encoder
		e.widthOperand(tagSet, 0)
		e.shifted(ns)
		e.widthOperand(tagSet, 1)
		ns = append(append([]uint64{0}, ns...), 1)
		got := decodeRun(t, e.out, len(ns))
		for i := range ns {
			if got[i] != ns[i] {
				t.Fatalf("value %d: got %#x, want %#x", i, got[i], ns[i])
			}
		}
	})
}

func TestEncodeLiteralRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SliceOfN(rapid.Byte(), 1, 5000).Draw(t, "bytes")
		var e encoder
		e.literal(b)
		in := bytes.NewReader(e.out)
		m := vm{in: in}
		out, err := m.run(nil, len(b), len(b))
		if err != nil || !bytes.Equal(out, b) || in.Len() != 0 {
			t.Fatalf("literal of %d bytes: %v", len(b), err)
		}
	})
}

// genNode draws a B-tree node block with a valid checksum: kernel-like
// nodes (leaves of mappings, internal nodes, leaves of other value sizes)
// and nodes whose headers make no sense.
func genNode() *rapid.Generator[[]byte] {
	return rapid.Custom(func(t *rapid.T) []byte {
		blk := make([]byte, bs)
		le := binary.LittleEndian
		flags := rapid.SampledFrom([]uint32{1, 2, 0, 3, 6}).Draw(t, "flags")
		valueSize := rapid.SampledFrom([]uint32{8, 16, 4, 24, 0, 1, 4000, 1 << 31}).Draw(t, "valueSize")
		var maxEntries uint32
		if rapid.Bool().Draw(t, "kernel capacity") && valueSize <= 4000 {
			maxEntries = uint32((bs - 32) / (8 + int(valueSize)) / 3 * 3)
		} else {
			maxEntries = rapid.OneOf(rapid.Uint32Range(0, 600), rapid.Uint32()).Draw(t, "maxEntries")
		}
		nrEntries := rapid.Uint32Range(0, min(maxEntries, 600)).Draw(t, "nrEntries")
		le.PutUint32(blk[4:], flags)
		le.PutUint32(blk[16:], nrEntries)
		le.PutUint32(blk[20:], maxEntries)
		le.PutUint32(blk[24:], valueSize)
		// Fill the body with runs: keys and values of real nodes, then
		// zeros or noise.
		body := blk[32:]
		pos := 0
		for pos+8 <= len(body) && rapid.IntRange(0, 20).Draw(t, "more") > 0 {
			run := genRun(200).Draw(t, "run")
			for _, v := range run {
				if pos+8 > len(body) {
					break
				}
				le.PutUint64(body[pos:], v)
				pos += 8
			}
		}
		if rapid.Bool().Draw(t, "noise") {
			noise := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "noise bytes")
			copy(body[rapid.IntRange(0, len(body)-1).Draw(t, "at"):], noise)
		}
		transaction.Seal(blk, rapid.Uint64().Draw(t, "location"), transaction.SaltNode)
		return blk
	})
}

func TestEncodeNodeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		blk := genNode().Draw(t, "node")
		var e encoder
		encodeBlock(&e, blk, transaction.SaltNode)
		in := bytes.NewReader(e.out)
		out, err := decodeBlock(in, nil)
		if err != nil {
			t.Fatalf("decoding: %v", err)
		}
		if !bytes.Equal(out, blk) {
			t.Fatal("node does not round-trip")
		}
		if in.Len() != 0 {
			t.Fatalf("%d bytes left over", in.Len())
		}
	})
}

// Kernel-shaped nodes must actually be compressed by the encoding, not
// just stored.
func TestEncodeNodeCompacts(t *testing.T) {
	blk := make([]byte, bs)
	le := binary.LittleEndian
	le.PutUint32(blk[4:], 2)
	le.PutUint32(blk[16:], 126)
	le.PutUint32(blk[20:], 252)
	le.PutUint32(blk[24:], 8)
	for i := range 126 {
		le.PutUint64(blk[32+8*i:], uint64(1000+i))
		le.PutUint64(blk[32+8*252+8*i:], uint64(5000+i)<<24|3)
	}
	transaction.Seal(blk, 17, transaction.SaltNode)
	var e encoder
	encodeBlock(&e, blk, transaction.SaltNode)
	// header literal 33, keys Set2+Count8 Pos+Const8 = 3+3+2,
	// ShiftedRun 2 + (3+3+2) + (2+1+2)... comfortably under 100 bytes.
	if len(e.out) > 100 {
		t.Errorf("mapping leaf encoded in %d bytes", len(e.out))
	}
	out, err := decodeBlock(bytes.NewReader(e.out), nil)
	if err != nil || !bytes.Equal(out, blk) {
		t.Fatalf("round trip: %v", err)
	}
}

// Instruction bytes for known runs, worked out by hand from the encoder
// rules of FORMAT.md §8.4 (and thin_metadata_pack's choices: a step down
// is a Neg, repeated values are a Const).
func TestEncodeU64sBytes(t *testing.T) {
	tests := []struct {
		ns   []uint64
		want []byte
	}{
		{[]uint64{5}, []byte{0x01, 5}},
		{[]uint64{300}, []byte{0x02, 0x2C, 0x01}},
		{[]uint64{1 << 32}, []byte{0x08, 0, 0, 0, 0, 1, 0, 0, 0}},
		{[]uint64{1, 2, 3, 4}, []byte{0x01, 1, 0x73, 0x11}},
		{[]uint64{1, 3}, []byte{0x01, 1, 0x12}},
		{[]uint64{7, 7, 7}, []byte{0x01, 7, 0x52}},
		{[]uint64{10, 7, 4}, []byte{0x01, 10, 0x72, 0x33}},
		{[]uint64{0, 100, 200}, []byte{0x01, 0, 0x72, 0x21, 100}},
		// 0, 2^63, 0 is one wrapping progression of step 2^63.
		{[]uint64{0, 1 << 63, 0}, []byte{0x01, 0, 0x72, 0x28, 0, 0, 0, 0, 0, 0, 0, 0x80}},
		{[]uint64{0, 1 << 63, 1}, []byte{0x01, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x48, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}},
		{[]uint64{1<<64 - 1, 0}, []byte{0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x48, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
	}
	for _, tt := range tests {
		var e encoder
		e.u64s(tt.ns)
		if !bytes.Equal(e.out, tt.want) {
			t.Errorf("u64s(%v) = %x, want %x", tt.ns, e.out, tt.want)
		}
	}
	ns := make([]uint64, 20)
	var e encoder
	e.u64s(ns)
	if want := []byte{0x01, 0, 0x60, 19}; !bytes.Equal(e.out, want) {
		t.Errorf("20 zeros: %x, want %x", e.out, want)
	}
	for i := range ns {
		ns[i] = uint64(i)
	}
	e = encoder{}
	e.u64s(ns)
	if want := []byte{0x01, 0, 0x80, 19, 0x11}; !bytes.Equal(e.out, want) {
		t.Errorf("0..19: %x, want %x", e.out, want)
	}
}
