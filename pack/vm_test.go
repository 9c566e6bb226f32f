package pack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// u64s lays out values as the VM emits them: little-endian u64s.
func u64s(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// runProgram runs a hand-assembled instruction stream until it has
// emitted want bytes (with no room for more) and checks that the whole
// stream was consumed.
func runProgram(t *testing.T, prog []byte, want int) ([]byte, error) {
	t.Helper()
	in := bytes.NewReader(prog)
	m := vm{in: in}
	out, err := m.run(nil, want, want)
	if err == nil && in.Len() != 0 {
		t.Errorf("%d bytes of the program left unread", in.Len())
	}
	return out, err
}

// Expected outputs below are worked out by hand from the instruction table
// of FORMAT.md §8.4, not by running our encoder.
func TestVMInstructions(t *testing.T) {
	tests := []struct {
		name string
		prog []byte
		want []byte
	}{
		// Set: tag 0, nibble = operand width.
		{"set width 1", []byte{0x01, 0x2A}, u64s(42)},
		{"set width 2", []byte{0x02, 0x34, 0x12}, u64s(0x1234)},
		{"set width 4", []byte{0x04, 0x78, 0x56, 0x34, 0x12}, u64s(0x12345678)},
		{"set width 8", []byte{0x08, 1, 2, 3, 4, 5, 6, 7, 0x88}, u64s(0x8807060504030201)},
		{"set twice", []byte{0x01, 9, 0x01, 3}, u64s(9, 3)},
		// Pos: tag 1, nibble = delta.
		{"pos", []byte{0x01, 5, 0x13}, u64s(5, 8)},
		{"pos 0", []byte{0x01, 5, 0x10}, u64s(5, 5)},
		{"pos from initial base 0", []byte{0x1F}, u64s(15)},
		{"pos wraps", []byte{0x08, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x13}, u64s(1<<64-2, 1)},
		// PosW: tag 2, nibble = width of the delta.
		{"posw width 1", []byte{0x01, 1, 0x21, 0xFF}, u64s(1, 256)},
		{"posw width 2", []byte{0x01, 1, 0x22, 0x00, 0x01}, u64s(1, 257)},
		{"posw width 4", []byte{0x01, 1, 0x24, 0, 0, 0, 1}, u64s(1, 1<<24+1)},
		{"posw width 8 wraps", []byte{0x01, 2, 0x28, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, u64s(2, 1)},
		// Neg: tag 3, nibble = delta.
		{"neg", []byte{0x01, 9, 0x34}, u64s(9, 5)},
		{"neg wraps", []byte{0x01, 1, 0x32}, u64s(1, 1<<64-1)},
		// NegW: tag 4, nibble = width of the delta.
		{"negw width 1", []byte{0x02, 0x00, 0x01, 0x41, 0x10}, u64s(256, 240)},
		{"negw width 2", []byte{0x02, 0x00, 0x10, 0x42, 0x00, 0x01}, u64s(0x1000, 0x0F00)},
		{"negw width 4 wraps", []byte{0x41, 0x01, 0x44, 1, 0, 0, 0}, u64s(1<<64-1, 1<<64-2)},
		{"negw width 8", []byte{0x01, 0, 0x48, 1, 0, 0, 0, 0, 0, 0, 0x80}, u64s(0, 1<<63-1)},
		// Const: tag 5, nibble = how many times base is emitted.
		{"const", []byte{0x01, 7, 0x53}, u64s(7, 7, 7, 7)},
		{"const 0", []byte{0x01, 7, 0x50, 0x11}, u64s(7, 8)},
		{"const from initial base", []byte{0x52}, u64s(0, 0)},
		// Const8: tag 6, count = nibble<<8 | next byte.
		{"const8 16", []byte{0x01, 3, 0x60, 0x10}, u64s(3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3)},
		// Count: tag 7, the next instruction runs nibble times.
		{"count pos", []byte{0x01, 0, 0x73, 0x12}, u64s(0, 2, 4, 6)},
		{"count neg", []byte{0x01, 10, 0x72, 0x33}, u64s(10, 7, 4)},
		{"count posw", []byte{0x01, 0, 0x72, 0x21, 100}, u64s(0, 100, 200)},
		{"count negw", []byte{0x01, 0, 0x72, 0x41, 1}, u64s(0, 1<<64-1, 1<<64-2)},
		{"count set", []byte{0x73, 0x01, 4}, u64s(4, 4, 4)},
		{"count 0 set emits nothing", []byte{0x70, 0x01, 5, 0x11}, u64s(6)},
		{"count 0 pos", []byte{0x01, 5, 0x70, 0x11, 0x12}, u64s(5, 7)},
		{"later count prefix wins", []byte{0x73, 0x72, 0x11}, u64s(1, 2)},
		{"count 1 before const", []byte{0x01, 1, 0x71, 0x51}, u64s(1, 1)},
		// Lit: tag 9, nibble raw bytes; LitW: tag 10, width-nibble length.
		{"lit", []byte{0x93, 'a', 'b', 'c'}, []byte("abc")},
		{"lit then set", []byte{0x91, 'x', 0x01, 1}, append([]byte("x"), u64s(1)...)},
		{"lit 0", []byte{0x90, 0x01, 1}, u64s(1)},
		{"litw width 1", []byte{0xA1, 5, 1, 2, 3, 4, 5}, []byte{1, 2, 3, 4, 5}},
		{"litw width 2", []byte{0xA2, 3, 0, 7, 8, 9}, []byte{7, 8, 9}},
		{"litw width 4", []byte{0xA4, 2, 0, 0, 0, 7, 8}, []byte{7, 8}},
		{"litw width 8", []byte{0xA8, 1, 0, 0, 0, 0, 0, 0, 0, 7}, []byte{7}},
		// ShiftedRun: tag 11, n = nibble<<8 | next byte; n high parts,
		// then n low parts; emits hi<<24 | lo&0xFFFFFF.
		{"shifted", []byte{0xB0, 2, 0x01, 1, 0x11, 0x01, 5, 0x51},
			u64s(1<<24|5, 2<<24|5)},
		{"shifted masks the low part", []byte{0xB0, 1, 0x01, 3, 0x04, 0x07, 0, 0, 0x01},
			u64s(3<<24 | 7)},
		{"shifted keeps 40 high bits", []byte{0xB0, 1, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0x01, 0},
			u64s(0xFFFFFFFFFF << 24)},
		{"shifted drops high bits beyond 40", []byte{0xB0, 1, 0x08, 0, 0, 0, 0, 0, 1, 0, 0, 0x01, 0},
			u64s(0)},
		{"shifted low run starts from the high run's base", []byte{0xB0, 2, 0x01, 1, 0x11, 0x11, 0x11},
			u64s(1<<24|3, 2<<24|4)},
		{"shifted 0", []byte{0xB0, 0, 0x01, 1}, u64s(1)},
		{"shifted then set", []byte{0xB0, 1, 0x01, 1, 0x01, 2, 0x01, 9}, u64s(1<<24|2, 9)},
		{"shifted ignores a repeat count", []byte{0x73, 0xB0, 1, 0x01, 1, 0x01, 2}, u64s(1<<24 | 2)},
		{"shifted runs may overshoot", []byte{0xB0, 2, 0x01, 1, 0x75, 0x11, 0x11, 0x11},
			u64s(1<<24|7, 2<<24|8)},
		{"shifted inside shifted", []byte{0xB0, 1, 0xB0, 1, 0x01, 1, 0x01, 2, 0x01, 3},
			u64s((1<<24|2)<<24 | 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runProgram(t, tt.prog, len(tt.want))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("got  %x\nwant %x", got, tt.want)
			}
		})
	}
}

func TestVMLargeCounts(t *testing.T) {
	// Const8 nibble 15, byte 0xFF: 4095 copies.
	got, err := runProgram(t, []byte{0x01, 6, 0x6F, 0xFF}, 8*4096)
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Repeat(u64s(6), 4096); !bytes.Equal(got, want) {
		t.Error("Const8 4095 wrong")
	}
	// Count8 0x1, 0x00: 256 steps of +1 after Set 0.
	got, err = runProgram(t, []byte{0x01, 0, 0x81, 0x00, 0x11}, 8*257)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 257 {
		if v := binary.LittleEndian.Uint64(got[8*i:]); v != uint64(i) {
			t.Fatalf("value %d is %d", i, v)
		}
	}
}

// A block is exactly 4096 bytes: decodeBlock stops there, and fails if the
// last instruction would go past it.
func TestDecodeBlockSize(t *testing.T) {
	prog := []byte{0x01, 1, 0x6F, 0xFF} // 4096 values of 1: 32 KiB
	if _, err := decodeBlock(bytes.NewReader(prog), nil); !errors.Is(err, ErrFormat) {
		t.Errorf("expanding to 32 KiB: %v", err)
	}
	prog = []byte{0x01, 1, 0x61, 0xFF} // 1 + 511 values: exactly 4096 bytes
	in := bytes.NewReader(append(prog, 0xEE))
	out, err := decodeBlock(in, nil)
	if err != nil || len(out) != 4096 {
		t.Fatalf("exact block: %d bytes, %v", len(out), err)
	}
	if in.Len() != 1 {
		t.Errorf("decodeBlock read past the block: %d bytes left", in.Len())
	}
	prog = []byte{0x01, 1, 0x61, 0xFE, 0x91, 0} // 4088 + 1 bytes, then missing
	if _, err := decodeBlock(bytes.NewReader(prog), nil); !errors.Is(err, ErrFormat) {
		t.Errorf("block 7 bytes short: %v", err)
	}
	lit := append([]byte{0xA2, 0x01, 0x10}, make([]byte, 4097)...) // literal of 4097
	if _, err := decodeBlock(bytes.NewReader(lit), nil); !errors.Is(err, ErrFormat) {
		t.Errorf("literal of 4097 bytes: %v", err)
	}
	huge := []byte{0xA8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
	if _, err := decodeBlock(bytes.NewReader(huge), nil); !errors.Is(err, ErrFormat) {
		t.Errorf("literal of 2^64-1 bytes: %v", err)
	}
	unaligned := []byte{0x93, 1, 2, 3, 0x61, 0xFF} // 3 + 4096 bytes
	if _, err := decodeBlock(bytes.NewReader(unaligned), nil); !errors.Is(err, ErrFormat) {
		t.Errorf("unaligned overflow: %v", err)
	}
}

func TestVMErrors(t *testing.T) {
	tests := []struct {
		name string
		prog []byte
		want int
		msg  string
	}{
		{"empty", nil, 8, "truncated"},
		{"set width 0", []byte{0x00}, 8, "width 0"},
		{"set width 3", []byte{0x03, 1, 2, 3}, 8, "width 3"},
		{"posw width 5", []byte{0x25, 1, 2, 3, 4, 5}, 8, "width 5"},
		{"litw width 7", []byte{0xA7}, 8, "width 7"},
		{"set truncated", []byte{0x04, 1, 2}, 8, "truncated"},
		{"posw truncated", []byte{0x22, 1}, 8, "truncated"},
		{"negw truncated", []byte{0x48}, 8, "truncated"},
		{"const8 truncated", []byte{0x60}, 8, "truncated"},
		{"count8 truncated", []byte{0x80}, 8, "truncated"},
		{"count without instruction", []byte{0x72}, 8, "truncated"},
		{"lit truncated", []byte{0x95, 1, 2}, 8, "truncated"},
		{"litw truncated", []byte{0xA1, 9, 1, 2}, 9, "truncated"},
		{"shifted truncated", []byte{0xB0}, 8, "truncated"},
		{"shifted runs truncated", []byte{0xB0, 2, 0x01, 1}, 16, "truncated"},
		{"tag 12", []byte{0xC0}, 8, "unknown instruction"},
		{"tag 15", []byte{0xFF}, 8, "unknown instruction"},
		{"count on const", []byte{0x72, 0x51}, 8, "repeat count"},
		{"count on const8", []byte{0x72, 0x60, 1}, 8, "repeat count"},
		{"count on lit", []byte{0x72, 0x91, 0}, 8, "repeat count"},
		{"count 0 on litw", []byte{0x70, 0xA1, 0}, 8, "repeat count"},
		{"count8 on const", []byte{0x80, 0x02, 0x51}, 8, "repeat count"},
		{"too many values", []byte{0x73, 0x11}, 16, "expands beyond"},
		{"set repeated too often", []byte{0x73, 0x01, 0}, 16, "expands beyond"},
		{"const too long", []byte{0x53}, 16, "expands beyond"},
		{"literal too long", []byte{0x93, 1, 2, 3}, 2, "expands beyond"},
		{"shifted too long", []byte{0xB0, 3}, 16, "expands beyond"},
		{"shifted run overshoots too far", append([]byte{0xB0, 1, 0xA2, 0x00, 0x90}, make([]byte, 0x9000)...), 8, "expands beyond"},
		{"shifted nested too deep", bytes.Repeat([]byte{0xB0, 1}, maxShiftedDepth+1), 8, "nested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runProgram(t, tt.prog, tt.want)
			if err == nil {
				t.Fatalf("no error; output %x", out)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
		})
	}
}

// Count prefixes are read in a loop, not by recursion: a long chain of
// them must neither overflow the stack nor be slow.
func TestVMCountChain(t *testing.T) {
	prog := append(bytes.Repeat([]byte{0x71, 0x81, 0x00}, 1<<20), 0x01, 4)
	got, err := runProgram(t, prog, 8*256)
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Repeat(u64s(4), 256); !bytes.Equal(got, want) {
		t.Error("wrong output")
	}
}

func TestInBlock(t *testing.T) {
	err := inBlock(7, formatErr("encoded block truncated"))
	if !errors.Is(err, ErrFormat) || err.Error() != "bad thin_metadata_pack file: block 7: encoded block truncated" {
		t.Errorf("got %v", err)
	}
	other := errors.New("disk on fire")
	if inBlock(7, other) != other {
		t.Error("inBlock changed an error that is not a format error")
	}
}
