package tptest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// CanonicalDump turns the XML of thin_dump of either generation into one
// canonical text, so that the two can be compared: the superblock's
// attributes in a fixed order (a missing flags attribute, which 1.1.0 leaves
// out when it is zero, reads as 0), then each device's attributes and its
// mappings one per line ("vblock dblock time"), with 1.1.0's shared leaves
// (<def>, <ref>) expanded and ranges split, so how a generation groups
// mappings into runs does not matter. It is an independent reading of the
// format: it shares no code with thinmeta's restore or dump.
func CanonicalDump(data []byte) (string, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var (
		out     strings.Builder
		defs    = map[string][]string{}
		def     string // the <def> being read
		defMaps []string
		inDev   bool
		nSuper  int
	)
	emit := func(line string) {
		switch {
		case def != "":
			defMaps = append(defMaps, line)
		case inDev:
			out.WriteString(line + "\n")
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		switch e := tok.(type) {
		case xml.StartElement:
			a := map[string]string{}
			for _, at := range e.Attr {
				a[at.Name.Local] = at.Value
			}
			get := func(names ...string) ([]uint64, error) {
				var vs []uint64
				for _, n := range names {
					s, ok := a[n]
					if !ok {
						return nil, fmt.Errorf("<%s> without %s", e.Name.Local, n)
					}
					v, err := strconv.ParseUint(s, 10, 64)
					if err != nil {
						return nil, fmt.Errorf("<%s %s=%q>: %v", e.Name.Local, n, s, err)
					}
					vs = append(vs, v)
				}
				return vs, nil
			}
			switch e.Name.Local {
			case "superblock":
				nSuper++
				if _, ok := a["flags"]; !ok {
					a["flags"] = "0"
				}
				fmt.Fprintf(&out, "superblock uuid=%q time=%s transaction=%s flags=%s version=%s data_block_size=%s nr_data_blocks=%s\n",
					a["uuid"], a["time"], a["transaction"], a["flags"], a["version"], a["data_block_size"], a["nr_data_blocks"])
			case "def":
				def, defMaps = a["name"], nil
				if def == "" {
					return "", errors.New("<def> without a name")
				}
			case "device":
				inDev = true
				fmt.Fprintf(&out, "device dev_id=%s mapped_blocks=%s transaction=%s creation_time=%s snap_time=%s\n",
					a["dev_id"], a["mapped_blocks"], a["transaction"], a["creation_time"], a["snap_time"])
			case "ref":
				m, ok := defs[a["name"]]
				if !ok {
					return "", fmt.Errorf("<ref name=%q> to no <def>", a["name"])
				}
				for _, l := range m {
					emit(l)
				}
			case "single_mapping":
				v, err := get("origin_block", "data_block", "time")
				if err != nil {
					return "", err
				}
				emit(fmt.Sprintf("%d %d %d", v[0], v[1], v[2]))
			case "range_mapping":
				v, err := get("origin_begin", "data_begin", "length", "time")
				if err != nil {
					return "", err
				}
				for i := range v[2] {
					emit(fmt.Sprintf("%d %d %d", v[0]+i, v[1]+i, v[3]))
				}
			default:
				return "", fmt.Errorf("unknown element <%s>", e.Name.Local)
			}
		case xml.EndElement:
			switch e.Name.Local {
			case "def":
				defs[def] = slices.Clone(defMaps)
				def = ""
			case "device":
				inDev = false
			}
		}
	}
	if nSuper != 1 {
		return "", fmt.Errorf("%d <superblock> elements", nSuper)
	}
	return out.String(), nil
}

// SameDump fails the test unless two thin_dump outputs (of either
// generation, or a model's rendering) describe the same pool, as
// CanonicalDump reads them.
func SameDump(t interface {
	Helper()
	Fatalf(string, ...any)
}, what string, got, want []byte) {
	t.Helper()
	g, err := CanonicalDump(got)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, got)
	}
	w, err := CanonicalDump(want)
	if err != nil {
		t.Fatalf("%s (expected): %v\n%s", what, err, want)
	}
	if g != w {
		gl, wl := strings.Split(g, "\n"), strings.Split(w, "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		at := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(end)"
		}
		t.Fatalf("%s: the pools differ at line %d of the canonical form: %q, expected %q", what, i+1, at(gl), at(wl))
	}
}
