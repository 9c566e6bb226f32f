package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

var blobCommand = &command{
	name:    "blob",
	summary: "thins and their blobs in an extended pool: create, snap, set, get, list, find, ...",
	usage: `Usage: thinmeta blob VERB [options] METADATA [ARGS]

Work with the thins of an extended pool (see "thinmeta format --extended"
and "thinmeta convert"), each of which carries a blob: a fixed number of
bytes of the volume manager's choosing, such as the volume's name. Thin
ids are 64-bit and never used twice in a pool, even after the thin is
deleted; the pool hands them out itself unless --id chooses one.

Verbs that change the pool (create, snap, set, clear, delete) commit one
transaction: the thin and its blob are created together, or, after a
crash, not at all.

Verbs:
  create [--id ID] METADATA [BLOB]
                  create an empty thin with BLOB (zeros if not given) and
                  print its id
  snap [--id ID] METADATA ORIGIN [BLOB]
                  create a snapshot of thin ORIGIN with BLOB and print its
                  id
  set METADATA ID BLOB
                  replace a thin's blob
  clear METADATA ID
                  set a thin's blob to zeros
  delete METADATA ID
                  delete a thin, its blob, and what only it mapped
  get [--raw] METADATA ID
                  print a thin's blob
  list METADATA   print every thin, in id order: its id, mapped blocks,
                  creation time, snapshot time and blob, separated by
                  spaces
  find METADATA KEY
                  print, as list does, the thins whose blob starts with
                  KEY followed by zero bytes up to the key width (the
                  pool's index width, or the whole blob if it has no
                  index); with an index only a few blocks are read
  count METADATA  print the number of thins (read from the superblock)

A BLOB or KEY is taken as text (its bytes as given), or as hexadecimal
with --hex; one shorter than the pool's blob size is padded with zero
bytes, a longer one is refused. Blobs are printed as Go-quoted text
without their trailing zero bytes (e.g. "vm-root", "\xff\x00\x01"), or
with --hex as hexadecimal without their trailing zero bytes (as in the
extended XML of "thinmeta dump").

Options:
      --id ID        create or snap: give the new thin this id; it must be
                     at least the pool's next id (see count --verbose)
      --hex          BLOB and KEY arguments are hexadecimal, and blobs are
                     printed in hexadecimal
      --raw          get: write the whole blob, every byte, as is
  -v, --verbose      count: print the blob size, index width and next id
                     too
  -m, --metadata-snap
                     get, list, find, count: read the metadata snapshot
                     (held root), opening the device shared
  -f, --force        write even though needs_check is set
      --no-verify    skip the check made before writing (only for
                     metadata known to be sound)
      --ignore-non-fatal-errors
                     accept leaks and under-populated nodes in that check
  -q, --quiet        create, snap: do not print the new id
  -h, --help         show this help

A pool of the stock format is refused: convert it first.

Exit status: 0 success, 1 failure (nothing was changed; the reason is
printed), 2 bad usage. find exits as grep does: 0 if a thin matched, 1 if
none did, 2 on trouble (bad usage, a pool that could not be read).
`,
}

func init() { blobCommand.run = runBlob }

// blobVerbs are the verbs' synopses, as the help shows them: the words
// after METADATA are the verb's arguments, optional ones in brackets.
var blobVerbs = map[string]string{
	"create": "create [--id ID] METADATA [BLOB]",
	"snap":   "snap [--id ID] METADATA ORIGIN [BLOB]",
	"set":    "set METADATA ID BLOB",
	"clear":  "clear METADATA ID",
	"delete": "delete METADATA ID",
	"get":    "get [--raw] METADATA ID",
	"list":   "list METADATA",
	"find":   "find METADATA KEY",
	"count":  "count METADATA",
}

// synopsisArity returns how many positional arguments a synopsis takes:
// at least min, at most max (optional ones are in brackets; options, the
// words starting with "[-", and their values are not counted).
func synopsisArity(synopsis string) (min, max int) {
	inOption := false
	for _, w := range strings.Fields(synopsis)[1:] {
		switch {
		case strings.HasPrefix(w, "[-"):
			inOption = !strings.HasSuffix(w, "]")
		case inOption:
			inOption = !strings.HasSuffix(w, "]")
		case strings.HasPrefix(w, "["):
			max++
		default:
			min++
			max++
		}
	}
	return min, max
}

type blobOpts struct {
	id                             string
	hexOut, raw, verbose, snap     bool
	force, noVerify, ignore, quiet bool
}

func runBlob(e *env, args []string) int {
	c := blobCommand
	if len(args) == 0 {
		return e.usageError(c, "expected a VERB")
	}
	verb := args[0]
	if verb == "-h" || verb == "--help" || verb == "help" {
		if len(args) > 1 {
			if _, ok := blobVerbs[args[1]]; !ok || len(args) > 2 {
				return e.usageError(c, "no help for %q: no such verb", strings.Join(args[1:], " "))
			}
		}
		fmt.Fprint(e.stdout, c.usage)
		return exitOK
	}
	synopsis, ok := blobVerbs[verb]
	if !ok {
		return e.usageError(c, "unknown verb %q", verb)
	}
	var o blobOpts
	fs := e.flagSet(c)
	stringFlag(fs, &o.id, "", "id")
	boolFlag(fs, &o.hexOut, "", "hex")
	boolFlag(fs, &o.raw, "", "raw")
	boolFlag(fs, &o.verbose, "", "v", "verbose")
	boolFlag(fs, &o.snap, "", "m", "metadata-snap")
	boolFlag(fs, &o.force, "", "f", "force")
	boolFlag(fs, &o.noVerify, "", "no-verify")
	boolFlag(fs, &o.ignore, "", "ignore-non-fatal-errors")
	boolFlag(fs, &o.quiet, "", "q", "quiet")
	pos, code, ok := e.parse(c, fs, args[1:])
	if !ok {
		return code
	}
	if least, most := synopsisArity(synopsis); len(pos) < least || len(pos) > most {
		return e.synopsisError(c, synopsis)
	}
	if o.id != "" && verb != "create" && verb != "snap" {
		return e.usageError(c, "--id applies to create and snap only")
	}
	if o.raw && verb != "get" {
		return e.usageError(c, "--raw applies to get only")
	}
	if o.snap && !isBlobQuery(verb) {
		return e.usageError(c, "--metadata-snap applies to get, list, find and count only")
	}
	if isBlobQuery(verb) {
		return blobQuery(e, c, verb, &o, pos[0], pos[1:])
	}
	return blobChange(e, c, verb, &o, pos[0], pos[1:])
}

func isBlobQuery(verb string) bool {
	return verb == "get" || verb == "list" || verb == "find" || verb == "count"
}

// parseBytes parses a BLOB or KEY argument.
func parseBytes(s string, isHex bool) ([]byte, error) {
	if !isHex {
		return []byte(s), nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad hexadecimal %q", s)
	}
	return b, nil
}

// formatBlob appends a blob as printed: quoted text or hexadecimal, both
// without trailing zero bytes.
func formatBlob(b, blobBytes []byte, isHex bool) []byte {
	blobBytes = bytes.TrimRight(blobBytes, "\x00")
	if isHex {
		return hex.AppendEncode(b, blobBytes)
	}
	return strconv.AppendQuote(b, string(blobBytes))
}

func parseThinID(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad thin id %q", s)
	}
	return v, nil
}

func blobQuery(e *env, c *command, verb string, o *blobOpts, path string, args []string) int {
	var id uint64
	var key []byte
	var err error
	switch verb {
	case "get":
		id, err = parseThinID(args[0])
	case "find":
		key, err = parseBytes(args[0], o.hexOut)
	}
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	// find exits as grep: 0 found, 1 no match, 2 trouble.
	fail := e.fail
	if verb == "find" {
		fail = e.trouble
	}
	tp, err := openPool(path, o.snap)
	if err != nil {
		return fail(c, err)
	}
	defer tp.Close()
	if o.snap {
		live := tp
		if tp, err = tp.MetadataSnapshot(); err != nil {
			return fail(c, preferStale(live.Stale, err))
		}
	}
	p, err := blob.FromView(tp)
	if err != nil {
		return fail(c, fmt.Errorf("%s: %w (convert it with \"thinmeta convert --to extended\")", path, err))
	}
	w := guardOutput(e.stdout, tp.Stale)
	line := make([]byte, 0, 256)
	switch verb {
	case "count":
		line = strconv.AppendUint(line, p.Count(), 10)
		if o.verbose {
			line = fmt.Appendf(line, " thins, blob size %d, index width %d, next id %d", p.BlobSize(), p.IndexBytes(), p.NextID())
		}
		w.Write(append(line, '\n'))
	case "get":
		t, err := p.Thin(id)
		if err != nil {
			return fail(c, preferStale(tp.Stale, err))
		}
		if o.raw {
			w.Write(t.Blob)
		} else {
			w.Write(append(formatBlob(line, t.Blob, o.hexOut), '\n'))
		}
	case "list", "find":
		seq := p.Thins()
		if verb == "find" {
			seq = p.Find(key)
		}
		found := false
		for t, err := range seq {
			found = true
			if err != nil {
				if err = finishGuarded(w, tp.Stale, err); errors.Is(err, blob.ErrBlobSize) {
					return e.usageError(c, "%v", err)
				}
				return fail(c, err)
			}
			line = appendThin(line[:0], t, o.hexOut)
			if _, err := w.Write(line); err != nil {
				return fail(c, err)
			}
		}
		if !found && verb == "find" {
			if err := finishGuarded(w, tp.Stale, nil); err != nil {
				return fail(c, err)
			}
			return exitFail
		}
	}
	if err := finishGuarded(w, tp.Stale, nil); err != nil {
		return fail(c, err)
	}
	return exitOK
}

// appendThin appends a thin as list prints it.
func appendThin(b []byte, t blob.Thin, isHex bool) []byte {
	b = strconv.AppendUint(b, t.ID, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, t.MappedBlocks, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(t.CreationTime), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(t.SnapshottedTime), 10)
	b = append(b, ' ')
	return append(formatBlob(b, t.Blob, isHex), '\n')
}

// openBlobWriter opens an extended pool for changes, checking it first
// unless told not to.
func openBlobWriter(path string, force, noVerify, ignore bool) (*blob.Writer, error) {
	var verify func(*thin.Pool) error
	if !noVerify {
		verify = check.Verifier(context.Background(), ignore)
	}
	return blob.OpenWriter(path, &thin.WriteOptions{Force: force, Verify: verify, Wait: waitLocks})
}

func blobChange(e *env, c *command, verb string, o *blobOpts, path string, args []string) int {
	// Parse everything before opening anything.
	var id, origin uint64
	var data []byte
	var err error
	haveID := o.id != ""
	if haveID {
		if id, err = parseThinID(o.id); err != nil {
			return e.usageError(c, "--id: %v", err)
		}
	}
	switch verb {
	case "create":
		if len(args) > 0 {
			data, err = parseBytes(args[0], o.hexOut)
		}
	case "snap":
		if origin, err = parseThinID(args[0]); err == nil && len(args) > 1 {
			data, err = parseBytes(args[1], o.hexOut)
		}
	case "set":
		if id, err = parseThinID(args[0]); err == nil {
			data, err = parseBytes(args[1], o.hexOut)
		}
	default:
		id, err = parseThinID(args[0])
	}
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	w, err := openBlobWriter(path, o.force, o.noVerify, o.ignore)
	if err != nil {
		return e.fail(c, err)
	}
	defer w.Close()
	switch verb {
	case "create":
		if !haveID {
			id, err = w.NewThin(data)
		} else {
			err = w.CreateThin(id, data)
		}
	case "snap":
		if !haveID {
			id, err = w.NewSnapshot(origin, data)
		} else {
			err = w.CreateSnapshot(id, origin, data)
		}
	case "set":
		err = w.SetBlob(id, data)
	case "clear":
		err = w.ClearBlob(id)
	case "delete":
		err = w.Delete(id)
	}
	if err == nil {
		err = w.Commit()
	}
	if err != nil {
		return e.fail(c, fmt.Errorf("%s: %w (nothing was changed)", verb, err))
	}
	if (verb == "create" || verb == "snap") && !o.quiet {
		fmt.Fprintln(e.stdout, id)
	}
	return exitOK
}
