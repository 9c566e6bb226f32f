package main

import (
	"bufio"
	"fmt"
	"strconv"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/thin"
)

var convertCommand = &command{
	name:    "convert",
	summary: "convert a pool between the stock and the extended (blob) format",
	usage: `Usage: thinmeta convert --to extended --blob-size N [options] METADATA
       thinmeta convert --to stock [--renumber] [options] METADATA

Convert the pool in METADATA (a metadata device or file that no active
pool is using) to another format, in one commit: after a crash the pool
is in its old format or in the new one. Every thin keeps its mappings,
shared as before (the mapping trees are not rewritten), and its details.

--to extended gives every thin a blob of N bytes, all zero, makes ids
64-bit and never reused (the next id is one above the largest), and with
--index-bytes keeps an index of the thins by the first K bytes of their
blobs. The kernel and thin-provisioning-tools refuse the extended format;
use "thinmeta blob" to work with it.

--to stock drops the blobs and the index: the kernel and thin_check
accept the result. The stock format's ids have 24 bits: a thin with a
larger id refuses the conversion unless --renumber is given; then each
such thin, in id order, takes the lowest id no thin has, and a line
"OLD NEW" is printed for each.

A pool with a metadata snapshot (held root) is refused: release it first
("thinmeta message METADATA release_metadata_snap"). Before anything is
written the pool is checked, as by "thinmeta check".

Options:
      --to FORMAT        extended or stock (required)
      --blob-size N      extended: bytes of blob per thin, 1 to 1322
                         (required)
      --index-bytes K    extended: index the first K bytes of each blob
                         (0 to N; default 0, no index)
      --renumber         stock: renumber thins whose ids do not fit 24 bits
  -f, --force            write even though needs_check is set
      --no-verify        skip the check before writing
      --ignore-non-fatal-errors
                         accept leaks and under-populated nodes in the check
  -q, --quiet            print nothing on success but renumberings
  -h, --help             show this help

Exit status: 0 converted, 1 nothing was changed (the reason is printed),
2 bad usage.
`,
}

func init() { convertCommand.run = runConvert }

func runConvert(e *env, args []string) int {
	c := convertCommand
	fs := e.flagSet(c)
	var to, blobSize, indexBytes string
	var renumber, force, noVerify, ignore, quiet bool
	stringFlag(fs, &to, "", "to")
	stringFlag(fs, &blobSize, "", "blob-size")
	stringFlag(fs, &indexBytes, "", "index-bytes")
	boolFlag(fs, &renumber, "", "renumber")
	boolFlag(fs, &force, "", "f", "force")
	boolFlag(fs, &noVerify, "", "no-verify")
	boolFlag(fs, &ignore, "", "ignore-non-fatal-errors")
	boolFlag(fs, &quiet, "", "q", "quiet")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one METADATA argument")
	}
	var bs, ib int
	switch to {
	case "extended":
		if renumber {
			return e.usageError(c, "--renumber applies to --to stock only")
		}
		if blobSize == "" {
			return e.usageError(c, "--to extended needs --blob-size")
		}
		v, err := strconv.ParseUint(blobSize, 10, 16)
		if err != nil || v < 1 || v > thin.MaxBlobSize {
			return e.usageError(c, "bad --blob-size %q: from 1 to %d", blobSize, thin.MaxBlobSize)
		}
		bs = int(v)
		if indexBytes != "" {
			v, err := strconv.ParseUint(indexBytes, 10, 16)
			if err != nil || int(v) > bs {
				return e.usageError(c, "bad --index-bytes %q: from 0 to the blob size", indexBytes)
			}
			ib = int(v)
		}
	case "stock":
		if blobSize != "" || indexBytes != "" {
			return e.usageError(c, "--blob-size and --index-bytes apply to --to extended only")
		}
	case "":
		return e.usageError(c, "--to is required")
	default:
		return e.usageError(c, "--to %q: expected extended or stock", to)
	}
	md, err := openWriter(pos[0], force, noVerify, ignore)
	if err != nil {
		return e.fail(c, err)
	}
	defer md.Close()
	if to == "extended" {
		if err := blob.Upgrade(md, bs, ib); err != nil {
			return e.fail(c, fmt.Errorf("%w (nothing was changed)", err))
		}
		if !quiet {
			fmt.Fprintf(e.stderr, "converted to the extended format: %d thins, blob size %d, index width %d, next id %d\n",
				md.NrThins(), bs, ib, md.NextID())
		}
		return exitOK
	}
	changes, err := blob.Downgrade(md, renumber)
	if err != nil {
		return e.fail(c, fmt.Errorf("%w (nothing was changed)", err))
	}
	w := bufio.NewWriter(e.stdout)
	for _, ch := range changes {
		fmt.Fprintf(w, "%d %d\n", ch.Old, ch.New)
	}
	if err := w.Flush(); err != nil {
		return e.fail(c, err)
	}
	if !quiet {
		fmt.Fprintf(e.stderr, "converted to the stock format; %d thin(s) renumbered\n", len(changes))
	}
	return exitOK
}

// formatExtended applies format's --extended, --blob-size and
// --index-bytes to opts.
func formatExtended(e *env, c *command, opts *thin.FormatOptions, extended bool, blobSize, indexBytes string) int {
	if !extended {
		if blobSize != "" || indexBytes != "" {
			return e.usageError(c, "--blob-size and --index-bytes need --extended")
		}
		return exitOK
	}
	if blobSize == "" {
		return e.usageError(c, "--extended needs --blob-size")
	}
	v, err := strconv.ParseUint(blobSize, 10, 16)
	if err != nil || v < 1 || v > thin.MaxBlobSize {
		return e.usageError(c, "bad --blob-size %q: from 1 to %d", blobSize, thin.MaxBlobSize)
	}
	opts.Variant, opts.BlobSize = thin.Extended, int(v)
	if indexBytes != "" {
		v, err := strconv.ParseUint(indexBytes, 10, 16)
		if err != nil || int(v) > opts.BlobSize {
			return e.usageError(c, "bad --index-bytes %q: from 0 to the blob size", indexBytes)
		}
		opts.IndexBytes = int(v)
	}
	return exitOK
}
