package restore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/restore"
)

const sb = `<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">`

// restoreString restores xml into a new in-memory device of 4 MiB.
func restoreString(xml string) (*memdev.Dev, restore.Stats, error) {
	dev := memdev.New(4 << 20)
	st, err := restore.Restore(context.Background(), strings.NewReader(xml), dev, dev.Size(), restore.Options{})
	return dev, st, err
}

// Input thin_restore refuses, or that is not the XML of thin_dump, is
// refused with an *InputError naming the line at fault.
func TestInputErrors(t *testing.T) {
	dev := func(body string) string {
		return sb + "\n<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n" +
			body + "\n</device>\n</superblock>\n"
	}
	def := `<def name="d"><range_mapping origin_begin="100" data_begin="0" length="10" time="0"/></def>` + "\n"
	tests := []struct {
		name, xml string
		line      int64
		msg       string
	}{
		{"empty", "", 1, "no <superblock>"},
		{"only comments", "<!-- x -->\n  \n<!-- y -->\n", 4, "no <superblock>"},
		{"not superblock", "\n<device/>", 2, "expected <superblock>"},
		{"end tag first", "</superblock>", 1, "expected <superblock>"},
		{"unknown element", sb + "\n\n<foo/></superblock>", 3, "unknown element <foo>"},
		{"unknown superblock attribute", `<superblock uuid="" time="1" transaction="2" colour="red" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, `unknown attribute "colour"`},
		{"missing nr_data_blocks", `<superblock uuid="" time="1" transaction="2" data_block_size="128"></superblock>`, 1, "lacks the required attribute nr_data_blocks"},
		{"missing uuid", `<superblock time="1" transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "lacks the required attribute uuid"},
		{"repeated attribute", `<superblock uuid="" time="1" time="1" transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "attribute time given twice"},
		{"not a number", `<superblock uuid="" time="x" transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "attribute time of <superblock>"},
		{"negative", `<superblock uuid="" time="-1" transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "not a number"},
		{"time beyond u32", `<superblock uuid="" time="4294967296" transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "from 0 to 4294967295"},
		{"beyond u64", `<superblock uuid="" time="1" transaction="18446744073709551616" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "not a number"},
		{"spaces in number", `<superblock uuid="" time=" 1" transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "not a number"},
		{"empty number", `<superblock uuid="" time="" transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "not a number"},
		{"block size small", `<superblock uuid="" time="1" transaction="2" data_block_size="64" nr_data_blocks="1"></superblock>`, 1, "invalid data block size 64"},
		{"block size odd", `<superblock uuid="" time="1" transaction="2" data_block_size="129" nr_data_blocks="1"></superblock>`, 1, "invalid data block size"},
		{"block size large", `<superblock uuid="" time="1" transaction="2" data_block_size="4194304" nr_data_blocks="1"></superblock>`, 1, "invalid data block size"},
		{"data device too big", `<superblock uuid="" time="1" transaction="2" data_block_size="128" nr_data_blocks="1000000000000"></superblock>`, 1, "needs at least"},
		{"two superblocks", sb + "</superblock>\n" + sb + "</superblock>", 2, "exactly one superblock"},
		{"nested superblock", sb + "\n" + sb + "</superblock></superblock>", 2, "<superblock> inside <superblock>"},
		{"unclosed superblock", sb + "\n\n", 3, "<superblock> not closed"},
		{"unclosed device", sb + "\n<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n", 3, "<device> not closed"},
		{"wrong end tag", dev("</def>"), 3, "</def> does not close <device>"},
		{"end after end", sb + "</superblock>\n</device>", 2, "</device> after </superblock>"},
		{"mapping at top", sb + "\n<single_mapping origin_block=\"1\" data_block=\"1\" time=\"0\"/></superblock>", 2, "outside <device> and <def>"},
		{"device in device", dev(`<device dev_id="2" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0"/>`), 3, "<device> inside <device>"},
		{"def in device", dev(`<def name="x"/>`), 3, "<def> inside <device>"},
		{"device attr missing", sb + "\n<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\"/></superblock>", 2, "lacks the required attribute snap_time"},
		{"dev_id beyond u32", sb + "\n<device dev_id=\"4294967296\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\"/></superblock>", 2, "dev_id"},
		{"device twice", sb + "\n<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\"/>\n<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\"/></superblock>", 3, "device 1 already defined at line 2"},
		{"def twice", sb + "\n" + def + def + "</superblock>", 3, `def "d" already defined at line 2`},
		{"def without name", sb + "\n<def/></superblock>", 2, "lacks the required attribute name"},
		{"ref outside device", sb + "\n" + def + "<ref name=\"d\"/></superblock>", 3, "<ref> outside <device>"},
		{"ref in def", sb + "\n" + def + "<def name=\"e\">\n<ref name=\"d\"/></def></superblock>", 4, "a <def> cannot refer to another"},
		{"ref to nothing", dev(`<ref name="d"/>`), 3, `<ref name="d"> names no <def>`},
		{"ref before def", sb + "\n<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n<ref name=\"d\"/></device>\n" + def + "</superblock>", 3, "names no <def>"},
		{"keys equal", dev(`<single_mapping origin_block="5" data_block="1" time="0"/>` + "\n" + `<single_mapping origin_block="5" data_block="2" time="0"/>`), 4, "virtual block 5 is not above the previous mapping's 5"},
		{"keys decreasing", dev(`<single_mapping origin_block="5" data_block="1" time="0"/>` + "\n" + `<single_mapping origin_block="4" data_block="2" time="0"/>`), 4, "strictly increasing"},
		{"ranges overlap", dev(`<range_mapping origin_begin="0" data_begin="0" length="10" time="0"/>` + "\n" + `<single_mapping origin_block="9" data_block="20" time="0"/>`), 4, "virtual block 9 is not above the previous mapping's 9"},
		{"keys in def", sb + "\n<def name=\"d\">\n<single_mapping origin_block=\"5\" data_block=\"1\" time=\"0\"/>\n<single_mapping origin_block=\"5\" data_block=\"2\" time=\"0\"/></def></superblock>", 4, "strictly increasing"},
		{"ref overlaps before", sb + "\n" + def + "<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n<single_mapping origin_block=\"100\" data_block=\"50\" time=\"0\"/>\n<ref name=\"d\"/></device></superblock>", 5, `<ref name="d"> starts at block 100, not above the previous mapping's 100`},
		{"ref overlaps after", sb + "\n" + def + "<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n<ref name=\"d\"/>\n<single_mapping origin_block=\"109\" data_block=\"50\" time=\"0\"/></device></superblock>", 5, "virtual block 109 is not above the previous mapping's 109"},
		{"ref twice", sb + "\n" + def + "<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n<ref name=\"d\"/>\n<ref name=\"d\"/></device></superblock>", 5, "starts at block 100"},
		{"data block at end", dev(`<single_mapping origin_block="0" data_block="1000" time="0"/>`), 3, "beyond the end of the data device"},
		{"range past end", dev(`<range_mapping origin_begin="0" data_begin="995" length="6" time="0"/>`), 3, "6 blocks from data block 995, nr_data_blocks 1000"},
		{"range wraps", dev(`<range_mapping origin_begin="18446744073709551615" data_begin="0" length="2" time="0"/>`), 3, "run past 2^64"},
		{"time beyond 24 bits", dev(`<single_mapping origin_block="0" data_block="1" time="16777216"/>`), 3, "does not fit the 24 bits"},
		{"range without length", dev(`<range_mapping origin_begin="0" data_begin="1" time="0"/>`), 3, "lacks the required attribute length"},
		{"single with length", dev(`<single_mapping origin_block="0" data_block="1" length="1" time="0"/>`), 3, `unknown attribute "length"`},
		{"mapping not empty", dev(`<single_mapping origin_block="0" data_block="1" time="0"><ref name="x"/></single_mapping>`), 3, "<single_mapping> must be empty"},
		{"text", dev("hello"), 3, `unexpected text "hello"`},
		{"text in superblock", sb + "x</superblock>", 1, "unexpected text"},
		{"cdata", dev("<![CDATA[x]]>"), 3, "CDATA sections and DOCTYPE"},
		{"doctype", "<!DOCTYPE superblock>\n" + sb + "</superblock>", 1, "DOCTYPE"},
		{"late declaration", sb + "\n<?xml version=\"1.0\"?></superblock>", 2, "only an XML declaration at the start"},
		{"processing instruction", "<?php x ?>" + sb + "</superblock>", 1, "processing instruction"},
		{"unterminated comment", sb + "\n<!-- x\n\n", 2, "unterminated comment"},
		{"unterminated declaration", "<?xml version=\"1.0\"", 1, "unterminated XML declaration"},
		{"unquoted value", `<superblock uuid="" time=1 transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "not quoted"},
		{"no value", `<superblock uuid="" time transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "has no value"},
		{"no space between attributes", `<superblock uuid=""time="1" transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "malformed attribute"},
		{"lt in value", `<superblock uuid="<" time="1" transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "'<' in the value"},
		{"bad entity", `<superblock uuid="&nbsp;" time="1" transaction="2" data_block_size="128" nr_data_blocks="1"></superblock>`, 1, "bad character reference"},
		{"truncated tag", sb + "\n<device dev_id=\"1\" mapped", 2, "end of input inside a tag"},
		{"bad slash", sb + "\n<device dev_id=\"1\" / ></superblock>", 2, "'/' not followed by '>'"},
		{"malformed end tag", sb + "\n</superblock x>", 2, "malformed end tag"},
		{"lone lt", sb + "\n< device/></superblock>", 2, "malformed tag"},
		{"content after", sb + "</superblock>\n\n<device/>", 3, "after </superblock>"},
		{"text after", sb + "</superblock>\nx", 2, "unexpected text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, _, err := restoreString(tc.xml)
			var ie *restore.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T), want an *InputError", err, err)
			}
			if ie.Line != tc.line || !strings.Contains(ie.Msg, tc.msg) {
				t.Errorf("got %q, want line %d: ...%s...", err, tc.line, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Errorf("message %q does not start with the line", err)
			}
			if _, err := thin.NewPool(d, d.Size()); err == nil {
				t.Error("a failed restore left a pool behind")
			}
		})
	}
}

// Every form XML allows for the same content is accepted: a declaration,
// a byte order mark, comments anywhere, either quotes, any attribute order,
// whitespace around '=' and inside tags, CRLF line ends, empty elements
// written as start and end tags, character references; and the optional
// attributes of 1.x and 0.9.0 may be present or not.
func TestInputForms(t *testing.T) {
	plain := sb + "\n" +
		`<device dev_id="3" mapped_blocks="12" transaction="4" creation_time="5" snap_time="6">` + "\n" +
		`<single_mapping origin_block="0" data_block="7" time="8"/>` + "\n" +
		`<range_mapping origin_begin="10" data_begin="20" length="11" time="9"/>` + "\n" +
		"</device>\n" +
		`<device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">` + "\n</device>\n" +
		"</superblock>\n"
	fancy := "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<!-- a comment -->\r\n" +
		"<superblock nr_data_blocks = '1000' data_block_size=\"128\" version='2' flags=\"0\"\r\n transaction=\"2\" time=\"1\" uuid=\"&lt;&#65;&#x42;&amp;&quot;&apos;&gt;\" metadata_snap=\"0\">\r\n" +
		"<!-- devices -->\r\n<def name=\"unused &amp; empty\"></def>\r\n" +
		"<device snap_time=\"6\" creation_time=\"5\" transaction=\"4\" mapped_blocks=\"12\" dev_id=\"3\"   >" +
		"<single_mapping time=\"8\" data_block=\"7\" origin_block=\"0\"></single_mapping>\r\n" +
		"<range_mapping length=\"0\" origin_begin=\"5\" data_begin=\"999\" time=\"0\"/>" +
		"<range_mapping origin_begin=\"10\" data_begin=\"20\"\r\n length=\"11\" time=\"9\" ><!-- inside --></range_mapping>" +
		"<!----></device><device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\"/>\r\n" +
		"</superblock >\r\n<!-- the end -->\r\n"
	dump := func(xml string) string {
		t.Helper()
		d, _, err := restoreString(xml)
		if err != nil {
			t.Fatal(err)
		}
		p, err := thin.NewPool(d, d.Size())
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		for dv, err := range p.Devices() {
			if err != nil {
				t.Fatal(err)
			}
			out.WriteString(strings.Join([]string{"dev", u(dv.ID), u(dv.MappedBlocks), u(dv.TransactionID),
				u(uint64(dv.CreationTime)), u(uint64(dv.SnapshottedTime))}, " ") + "\n")
			for m, err := range p.Mappings(dv.ID, 0, ^uint64(0)) {
				if err != nil {
					t.Fatal(err)
				}
				out.WriteString(strings.Join([]string{" ", u(m.VBlock), u(m.Block), u(uint64(m.Time))}, " ") + "\n")
			}
		}
		s := p.Superblock()
		out.WriteString(strings.Join([]string{"sb", u(uint64(s.Time)), u(s.TransactionID), u(uint64(s.Flags)), u(uint64(s.Version)), u(uint64(s.DataBlockSize)), u(p.NrDataBlocks())}, " "))
		sum, _ := check.Device(context.Background(), d, d.Size(), check.Options{}, func(f check.Finding) { t.Errorf("check: %v", f.Err) })
		if !sum.OK(false) {
			t.Errorf("check %+v", sum)
		}
		return out.String()
	}
	a, b := dump(plain), dump(fancy)
	if a != b {
		t.Errorf("plain:\n%s\nfancy:\n%s", a, b)
	}
	if !strings.Contains(a, "dev 3 12 4 5 6\n  0 7 8\n  10 20 9\n  11 21 9") || !strings.HasSuffix(a, "sb 1 2 0 2 128 1000") {
		t.Errorf("unexpected pool:\n%s", a)
	}
	// Without flags and version: as thin_restore 0.9.0, version 1 and no
	// flags; flags and version are kept when given.
	v1 := strings.Replace(plain, ` flags="0" version="2"`, "", 1)
	if got, want := dump(v1), strings.Replace(a, "sb 1 2 0 2 ", "sb 1 2 0 1 ", 1); got != want {
		t.Errorf("without flags and version:\n%s", got)
	}
	nc := strings.Replace(plain, ` flags="0" version="2"`, ` flags="1" version="1"`, 1)
	d, _, err := restoreString(nc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := thin.NewPool(d, d.Size())
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Superblock(); s.Flags != superblock.FlagNeedsCheck || s.Version != 1 || s.HeldRoot != 0 {
		t.Errorf("superblock %v", s)
	}
}

func u(v uint64) string { return strconv.FormatUint(v, 10) }

// A tag may straddle the tokenizer's refills, at any offset, and lines are
// still counted right.
func TestChunkBoundaries(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(sb + "\n")
	b.WriteString(`<device dev_id="1" mapped_blocks="100000" transaction="0" creation_time="0" snap_time="0">` + "\n")
	for i := range 100000 {
		b.WriteString(`<single_mapping origin_block="` + u(uint64(2*i)) + `" data_block="` + u(uint64(i%1000)) + `" time="0"/>` + "\n")
		if i%7 == 0 {
			b.WriteString("<!-- " + strings.Repeat("-x", i%97) + " -->\n")
		}
	}
	b.WriteString("</device>\n<bad/>\n</superblock>\n")
	lines := int64(bytes.Count(b.Bytes(), []byte("\n")))
	_, _, err := restoreString(b.String())
	var ie *restore.InputError
	if !errors.As(err, &ie) || ie.Line != lines-1 || !strings.Contains(ie.Msg, "unknown element <bad>") {
		t.Fatalf("error %v, want line %d: unknown element", err, lines-1)
	}
}

// Reads in odd-sized pieces (as from a pipe) give the same result.
func TestSmallReads(t *testing.T) {
	xml := sb + "\n" + `<device dev_id="1" mapped_blocks="3" transaction="0" creation_time="0" snap_time="0">` +
		`<range_mapping origin_begin="1" data_begin="2" length="3" time="4"/></device></superblock>`
	dev := memdev.New(1 << 20)
	if _, err := restore.Restore(context.Background(), &oneByte{s: xml}, dev, dev.Size(), restore.Options{}); err != nil {
		t.Fatal(err)
	}
	p, err := thin.NewPool(dev, dev.Size())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m, err := range p.Mappings(1, 0, ^uint64(0)) {
		if err != nil || m.Block != m.VBlock+1 || m.Time != 4 {
			t.Errorf("mapping %+v, %v", m, err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d mappings", n)
	}
}

type oneByte struct{ s string }

func (r *oneByte) Read(p []byte) (int, error) {
	if len(r.s) == 0 {
		return 0, io.EOF
	}
	p[0] = r.s[0]
	r.s = r.s[1:]
	return 1, nil
}
