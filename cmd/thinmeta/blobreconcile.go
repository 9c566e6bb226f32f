package main

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"

	"github.com/thinmeta/thinmeta/blob"
)

var reconcileCommand = &command{
	name:    "reconcile",
	summary: "compare a volume manager's list of thins with an extended pool",
	usage: `Usage: thinmeta reconcile --list FILE [options] METADATA

Compare a volume manager's own list of thins, in FILE, with the thins of
the extended pool in METADATA (a metadata device, an image file or a
packed image), and print where they disagree, one line each, in id order:

  orphan ID BLOB              the pool has the thin, the list does not
                              (its space is leaked until it is deleted)
  missing ID IDENTITY         the list has the thin, the pool does not
  mismatch ID IDENTITY BLOB   both have it, but its blob is not the
                              identity the list gives

Each line of FILE ("-" for standard input) is a thin id, one space, and
the identity the manager expects the thin's blob to hold: text, up to the
end of the line, or hexadecimal with --hex. It is padded with zero bytes
to the blob size. Empty lines and lines starting with # are ignored; an
id listed twice is an error. Blobs and identities are printed as
"thinmeta blob" prints blobs (Go-quoted text, or hexadecimal with --hex).
The pool is read once, in id order, without loading it into memory.

Options:
      --list FILE       the manager's list (required)
      --hex             identities in FILE are hexadecimal, and blobs are
                        printed in hexadecimal
  -m, --metadata-snap   compare with the metadata snapshot (held root),
                        opening the device shared
  -q, --quiet           do not print the summary line on standard error
  -h, --help            show this help

Exit status, as diff's: 0 the list and the pool agree, 1 they disagree,
2 trouble: bad usage (including a malformed FILE) or a pool that could not
be read.
`,
}

func init() { reconcileCommand.run = runReconcile }

// readList parses a reconcile list.
func readList(r io.Reader, isHex bool) ([]blob.Entry, error) {
	var list []blob.Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		idText, rest, _ := bytes.Cut(line, []byte(" "))
		id, err := strconv.ParseUint(string(idText), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: bad thin id %q", n, idText)
		}
		ident, err := parseBytes(string(rest), isHex)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		list = append(list, blob.Entry{ID: id, Identity: ident})
	}
	return list, sc.Err()
}

func runReconcile(e *env, args []string) int {
	c := reconcileCommand
	fs := e.flagSet(c)
	var listPath string
	var isHex, snap, quiet bool
	stringFlag(fs, &listPath, "", "list")
	boolFlag(fs, &isHex, "", "hex")
	boolFlag(fs, &snap, "", "m", "metadata-snap")
	boolFlag(fs, &quiet, "", "q", "quiet")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one METADATA argument")
	}
	if listPath == "" {
		return e.usageError(c, "--list is required")
	}
	var in io.Reader = e.stdin
	if listPath != "-" {
		f, err := os.Open(listPath)
		if err != nil {
			return e.trouble(c, err)
		}
		defer f.Close()
		in = f
	}
	list, err := readList(in, isHex)
	if err != nil {
		return e.usageError(c, "%s: %v", listPath, err)
	}
	tp, err := openPool(pos[0], snap)
	if err != nil {
		return e.trouble(c, err)
	}
	defer tp.Close()
	if snap {
		live := tp
		if tp, err = tp.MetadataSnapshot(); err != nil {
			return e.trouble(c, preferStale(live.Stale, err))
		}
	}
	p, err := blob.FromView(tp)
	if err != nil {
		return e.trouble(c, fmt.Errorf("%s: %w", pos[0], err))
	}
	r, err := p.Reconcile(list)
	if errors.Is(err, blob.ErrDuplicate) || errors.Is(err, blob.ErrBlobSize) {
		return e.usageError(c, "%s: %v", listPath, err)
	}
	if err != nil {
		return e.trouble(c, err)
	}
	// Merge the three parts into id order.
	type row struct {
		id   uint64
		text []byte
	}
	var rows []row
	for _, t := range r.Orphans {
		rows = append(rows, row{t.ID, formatBlob(fmt.Appendf(nil, "orphan %d ", t.ID), t.Blob, isHex)})
	}
	for _, m := range r.Missing {
		rows = append(rows, row{m.ID, formatBlob(fmt.Appendf(nil, "missing %d ", m.ID), m.Identity, isHex)})
	}
	for _, m := range r.Mismatches {
		b := formatBlob(fmt.Appendf(nil, "mismatch %d ", m.ID), m.Identity, isHex)
		rows = append(rows, row{m.ID, formatBlob(append(b, ' '), m.Blob, isHex)})
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(a.id, b.id) })
	w := bufio.NewWriter(e.stdout)
	for _, x := range rows {
		w.Write(append(x.text, '\n'))
	}
	if err := w.Flush(); err != nil {
		return e.trouble(c, err)
	}
	if !quiet {
		fmt.Fprintf(e.stderr, "%d matched, %d orphan(s), %d missing, %d mismatch(es)\n",
			r.Matched, len(r.Orphans), len(r.Missing), len(r.Mismatches))
	}
	if !r.Clean() {
		return exitFail
	}
	return exitOK
}
