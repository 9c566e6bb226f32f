package main

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

var formatCommand = &command{
	name:    "format",
	summary: "write a new, empty pool to a metadata device or file",
	usage: `Usage: thinmeta format [options] METADATA

Write a new, empty dm-thin pool to METADATA, a metadata block device or a
file, as the kernel does when a pool is created on zeroed metadata. The
whole device is used (up to the 15.9 GiB a metadata space map can track)
unless --metadata-blocks says otherwise. A file that does not exist is
created with --size. Everything METADATA held is lost: an existing pool is
only overwritten with --force.

Options:
      --data-block-size SECTORS   data block size in 512-byte sectors: a
                                  multiple of 128 from 128 (64 KiB) to
                                  2097152 (1 GiB); default 128
      --nr-data-blocks N          size of the data device in data blocks
                                  (required); its space map must fit the
                                  metadata device: 4 KiB for each 16320
                                  blocks, so 64 MiB of metadata describe
                                  up to 265656960 (bad usage otherwise)
      --metadata-blocks N         use only the first N 4 KiB blocks
      --size BYTES                create (or grow) a file of this size
                                  (suffixes K, M, G, T: powers of 1024;
                                  "thinmeta metadata-size" says how much
                                  a pool needs)
      --extended                  write a pool of the extended format:
                                  a blob per thin, 64-bit ids that are
                                  never reused (see "thinmeta blob"); the
                                  kernel and thin-provisioning-tools
                                  refuse it
      --blob-size N               with --extended: bytes of blob per thin,
                                  1 to 1322 (required)
      --index-bytes K             with --extended: index the thins by the
                                  first K bytes of their blobs, 0 to N
                                  (default 0: no index)
  -f, --force                     overwrite an existing pool
  -h, --help                      show this help

Exit status: 0 success, 1 failure, 2 bad usage.
`,
}

func init() { formatCommand.run = runFormat }

func runFormat(e *env, args []string) int {
	c := formatCommand
	fs := e.flagSet(c)
	var bs, nrData, metaBlocks, size, blobSize, indexBytes string
	var force, extended bool
	stringFlag(fs, &bs, "", "data-block-size")
	stringFlag(fs, &nrData, "", "nr-data-blocks")
	stringFlag(fs, &metaBlocks, "", "metadata-blocks")
	stringFlag(fs, &size, "", "size")
	boolFlag(fs, &force, "", "f", "force")
	boolFlag(fs, &extended, "", "extended")
	stringFlag(fs, &blobSize, "", "blob-size")
	stringFlag(fs, &indexBytes, "", "index-bytes")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one METADATA argument")
	}
	num := func(s, name string, def uint64) (uint64, bool) {
		if s == "" {
			return def, true
		}
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			e.usageError(c, "bad %s %q", name, s)
			return 0, false
		}
		return v, true
	}
	opts := &thin.FormatOptions{}
	v, ok := num(bs, "--data-block-size", 128)
	if !ok {
		return exitUsage
	}
	if v > 1<<32-1 || !thin.ValidDataBlockSize(uint32(v)) {
		return e.usageError(c, "data block size %d: %v", v, thin.ErrDataBlockSize)
	}
	opts.DataBlockSize = uint32(v)
	if nrData == "" {
		return e.usageError(c, "--nr-data-blocks is required")
	}
	if opts.NrDataBlocks, ok = num(nrData, "--nr-data-blocks", 0); !ok {
		return exitUsage
	}
	if opts.MetadataBlocks, ok = num(metaBlocks, "--metadata-blocks", 0); !ok {
		return exitUsage
	}
	if code := formatExtended(e, c, opts, extended, blobSize, indexBytes); code != exitOK {
		return code
	}
	sz, err := parseSize(size)
	if err != nil {
		return e.usageError(c, "--size: %v", err)
	}
	// A data device too large for the metadata is refused before anything
	// is written (the file grown or the space map built).
	if most := thin.MaxDataBlocks(spacemap.MaxMetadataBlocks); opts.NrDataBlocks > most {
		return e.usageError(c, "--nr-data-blocks %d: more than any pool can describe (%d)", opts.NrDataBlocks, most)
	}
	if nr := min(opts.MetadataBlocks, sz/transaction.BlockSize); nr > 0 || opts.MetadataBlocks > 0 || sz > 0 {
		if nr == 0 {
			nr = max(opts.MetadataBlocks, sz/transaction.BlockSize)
		}
		if err := thin.CheckDataSize(opts.NrDataBlocks, nr); err != nil {
			return e.usageError(c, "%v", err)
		}
	}
	path := pos[0]
	if _, err := os.Stat(path); sz == 0 && errors.Is(err, iofs.ErrNotExist) {
		return e.usageError(c, "%s does not exist: give --size to create a file that large (e.g. --size 64M)", path)
	}
	opts.Size = int64(sz)
	opts.Wait = waitLocks
	if !force {
		if p, err := thin.Open(path, nil); err == nil {
			p.Close()
			return e.fail(c, fmt.Errorf("%s already holds a pool; use --force to overwrite it", path))
		}
	}
	m, err := thin.CreateMetadata(path, opts)
	if errors.Is(err, thin.ErrMetadataTooSmall) {
		return e.usageError(c, "%v", err)
	}
	if err != nil {
		return e.fail(c, err)
	}
	if err := m.Close(); err != nil {
		return e.fail(c, err)
	}
	return exitOK
}

// parseSize parses a byte count with an optional K, M, G or T suffix.
func parseSize(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	mult := uint64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	case "T":
		mult = 1 << 40
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > (1<<63)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}
