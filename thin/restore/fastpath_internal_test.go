package restore

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// parseOps parses xml (read in pieces of random sizes drawn from seed)
// and returns every op the parser emits and its error, as text.
func parseOps(xml string, seed uint64, fast bool) string {
	old := fastPath
	fastPath = fast
	defer func() { fastPath = old }()
	var out strings.Builder
	r := &pieces{s: xml, rng: rand.New(rand.NewPCG(seed, 1))}
	p := newParser(newLexer(r, nil), &Options{})
	h, err := p.readHeader()
	if err == nil {
		fmt.Fprintf(&out, "header %+v\n", h)
		err = p.run(&batch{ops: make([]op, 0, 16)}, func(b *batch) (*batch, error) {
			for _, o := range b.ops {
				fmt.Fprintf(&out, "%+v\n", o)
				if o.kind() == opDevice {
					fmt.Fprintf(&out, "device %+v\n", b.devs[o.a])
				}
			}
			b.reset()
			return b, nil
		})
	}
	fmt.Fprintf(&out, "error %v, line %d\n", err, p.lx.line)
	return out.String()
}

// pieces reads its string in pieces of 1 byte to 64 KiB.
type pieces struct {
	s   string
	rng *rand.Rand
}

func (r *pieces) Read(b []byte) (int, error) {
	if len(r.s) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), len(r.s), 1+r.rng.IntN(1<<(1+r.rng.IntN(16))))
	copy(b, r.s[:n])
	r.s = r.s[n:]
	return n, nil
}

// The fast path for mapping tags is an optimisation only: on inputs full of
// near-misses (other spacing, quoting, order, numbers at and past the
// limits, tags split across reads and across the tokenizer's refills,
// errors of every kind), the parser emits the same ops with the same lines
// and fails with the same error at the same line with and without it. The
// general path it is compared with is the one checked against thin_restore.
func TestFastPathSameAsGeneral(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	nums := []string{"0", "1", "7", "0007", "4294967295", "4294967296", "16777215", "16777216",
		"999", "1234567890123456789", "9999999999999999999", "18446744073709551615",
		"18446744073709551616", "00000000000000000001", "", "-1", "1x", " 1", "1 "}
	num := func() string {
		if rng.IntN(3) == 0 {
			return nums[rng.IntN(len(nums))]
		}
		return fmt.Sprint(rng.IntN(2000))
	}
	space := func() string {
		switch rng.IntN(12) {
		case 0:
			return ""
		case 1:
			return strings.Repeat(" ", 300+rng.IntN(40)) // past the fast path's skip
		case 2:
			return "\r\n\t "
		case 3:
			return "\n<!-- c -->\n"
		}
		return "\n" + strings.Repeat(" ", rng.IntN(8))
	}
	quote := func(v string) string {
		if rng.IntN(40) == 0 {
			return "'" + v + "'"
		}
		if rng.IntN(60) == 0 {
			return `"` + v
		}
		return `"` + v + `"`
	}
	sep := func() string {
		switch rng.IntN(50) {
		case 0:
			return "  "
		case 1:
			return "\n"
		case 2:
			return ""
		}
		return " "
	}
	end := func() string {
		switch rng.IntN(40) {
		case 0:
			return "></range_mapping>"
		case 1:
			return "></single_mapping>"
		case 2:
			return " />"
		case 3:
			return ">"
		}
		return "/>"
	}
	mapping := func(v *uint64) string {
		*v += 1 + uint64(rng.IntN(40))
		if rng.IntN(30) == 0 {
			*v -= uint64(rng.IntN(60)) // out of order, sometimes
		}
		o := fmt.Sprint(*v)
		if rng.IntN(20) == 0 {
			o = num()
		}
		if rng.IntN(2) == 0 {
			a := []string{"origin_block=" + quote(o), "data_block=" + quote(num()), "time=" + quote(num())}
			if rng.IntN(30) == 0 {
				a[0], a[1] = a[1], a[0]
			}
			return "<single_mapping" + sep() + a[0] + sep() + a[1] + sep() + a[2] + end()
		}
		l := fmt.Sprint(rng.IntN(40))
		if rng.IntN(20) == 0 {
			l = num()
		}
		a := []string{"origin_begin=" + quote(o), "data_begin=" + quote(num()), "length=" + quote(l), "time=" + quote(num())}
		if rng.IntN(30) == 0 {
			a[2], a[3] = a[3], a[2]
		}
		if rng.IntN(60) == 0 {
			a[2] = "length=\"&#49;\""
		}
		return "<range_mapping" + sep() + a[0] + sep() + a[1] + sep() + a[2] + sep() + a[3] + end()
	}
	const header = `<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">`
	for i := range 300 {
		var b strings.Builder
		b.WriteString(header)
		lines := 20 + rng.IntN(200)
		if i%50 == 0 {
			lines = 30000 // past the 1 MiB chunk
		}
		var v uint64
		// Mostly clean mappings, with a near-miss now and then, so that
		// errors come late and refills happen anywhere.
		clean := rng.IntN(3) == 0
		for d := 0; d < 3; d++ {
			fmt.Fprintf(&b, "%s<device dev_id=\"%d\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">", space(), d)
			v = 0
			for range lines / 3 {
				b.WriteString(space())
				if clean || rng.IntN(100) != 0 {
					v += 1 + uint64(rng.IntN(40))
					if rng.IntN(2) == 0 {
						fmt.Fprintf(&b, `<single_mapping origin_block="%d" data_block="%d" time="%d"/>`, v, rng.IntN(1000), rng.IntN(1<<24))
					} else {
						n := rng.IntN(5)
						fmt.Fprintf(&b, `<range_mapping origin_begin="%d" data_begin="%d" length="%d" time="%d"/>`, v, rng.IntN(990), n, rng.IntN(9))
						v += uint64(n)
					}
				} else {
					b.WriteString(mapping(&v))
				}
			}
			b.WriteString(space() + "</device>")
		}
		b.WriteString(space() + "</superblock>" + space())
		xml := b.String()
		seed := rng.Uint64()
		want := parseOps(xml, seed, false)
		got := parseOps(xml, seed, true)
		if got != want {
			t.Fatalf("input %d: the fast path parses differently\ninput:\n%s\ngeneral path:\n%s\nfast path:\n%s", i, trim(xml), trim(want), trim(got))
		}
	}
}

func trim(s string) string {
	if len(s) > 4000 {
		return s[:2000] + "\n...\n" + s[len(s)-2000:]
	}
	return s
}

// fastNumber reads exactly the digits a digit-by-digit scan reads, with
// the same value, for numbers of every length around its 8-byte word and
// its 19-digit limit, followed by any byte.
func TestFastNumber(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for range 200000 {
		n := rng.IntN(24)
		b := make([]byte, 0, n+fastMargin)
		for range n {
			b = append(b, byte('0'+rng.IntN(10)))
		}
		if n > 0 && rng.IntN(4) == 0 {
			b[0] = '9' // the largest values of each length
		}
		for len(b) < cap(b) {
			b = append(b, byte(rng.IntN(256)))
		}
		// The reference: digit by digit.
		var want uint64
		end := 0
		for end < 20 && b[end] >= '0' && b[end] <= '9' {
			want = want*10 + uint64(b[end]-'0')
			end++
		}
		wantOK := end > 0 && end < 20
		v, next, ok := fastNumber(b, 0)
		if ok != wantOK || ok && (v != want || next != end) {
			t.Fatalf("fastNumber(%q) = %d, %d, %v; want %d, %d, %v", b[:min(len(b), 24)], v, next, ok, want, end, wantOK)
		}
	}
}
