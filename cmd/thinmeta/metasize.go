package main

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
)

var metadataSizeCommand = &command{
	name:    "metadata-size",
	summary: "estimate the metadata device a pool needs (as thin_metadata_size)",
	usage: `Usage: thinmeta metadata-size -b BLOCKSIZE -s POOLSIZE -m MAXTHINS [options]

Estimate the size of the metadata device a dm-thin pool needs: a pool of
POOLSIZE whose data blocks of BLOCKSIZE are all mapped, spread over at
most MAXTHINS thin devices and snapshots. The estimate is one the pool
really fits in, under the kernel: whatever the spread over the thins and
the order of the writes, with room for the transaction in flight and the
metadata the kernel keeps in reserve (min(16 MiB, a tenth of the
device)). It is never smaller than thin_metadata_size's.

thin_metadata_size (0.9.0 and 1.1.0) counts only the mapping leaves,
assumed half full, one block per thin and the superblock. A pool written
in order leaves its leaves half full and does not fit in that: about 5%
more is needed for a large pool, and a small one needs far more (every
pool has space maps and trees of its own). --compat prints either
generation's estimate instead, the same number the tool prints.

Options:
  -b, --block-size SIZE     the data block size: a multiple of 64 KiB
                            from 64 KiB to 1 GiB (as the kernel requires)
  -s, --pool-size SIZE      the size of the data device (the pool)
  -m, --max-thins N         the most thin devices and snapshots (a plain
                            number)
  -u, --unit UNIT           the unit of the result (default s, sectors)
  -n, --numeric-only[=short|long]
                            print only the number; with short or long,
                            followed by the unit's letter or name
      --compat 0.9|1.1      print thin_metadata_size's estimate of that
                            generation (0.9: 1 + floor(2 × data blocks /
                            252) + MAXTHINS blocks, unbounded; 1.1: 1 +
                            ceil(data blocks / 126) + MAXTHINS blocks, at
                            most the 15.9 GiB a metadata space map can
                            track)
  -h, --help                show this help

A SIZE is a number followed by a unit; a bare number is sectors. Units:
b bytes, s sectors (512 bytes), k K kibibytes and kilobytes, m M
mebibytes and megabytes, g G, t T, p P, e E (lower case powers of 1024,
upper case powers of 1000); a unit name (or its beginning: "mebi") also
serves, for -u too.

Standard output gets one line: the estimate and its unit ("1127264
sectors"), as thin_metadata_size 1.1.0 prints it; a whole number is
printed as one, any other with two decimals. thin_metadata_size 0.9.0
prefixes its name and appends the options; 1.1.0 prints more digits
below 1.

Differences from thin_metadata_size, which thinmeta follows as noted:
the block size must be one the kernel accepts (0.9.0 takes any power of
two, such as 4 KiB, and refuses others, such as 192 KiB; 1.1.0 as
thinmeta); MAXTHINS is
a plain number (0.9.0 also takes a unit, 1k being 1024) and may be 0
(as 1.1.0; 0.9.0 refuses it); POOLSIZE must hold a block (as 0.9.0, which
requires more than one; 1.1.0 takes any); the units of 0.9.0 are taken
(1.1.0 takes fewer). When no metadata device can hold the pool (it
would need more than 15.9 GiB), the largest one is printed and a warning
goes to standard error.

Exit status: 0 success, 2 bad usage.
`,
}

func init() { metadataSizeCommand.run = runMetadataSize }

// sizeUnits are thin_metadata_size's units: letters, names and factors
// in bytes (lower case letters powers of 1024, upper case of 1000).
var sizeUnits = []struct {
	letter byte
	name   string
	factor *big.Int
}{}

func init() {
	letters := "bskKmMgGtTpPeE"
	names := []string{"bytes", "sectors", "kibibytes", "kilobytes", "mebibytes", "megabytes", "gibibytes", "gigabytes",
		"tebibytes", "terabytes", "pebibytes", "petabytes", "exbibytes", "exabytes"}
	bin, dec := big.NewInt(1024), big.NewInt(1000)
	for i := range names {
		f := big.NewInt(1)
		switch {
		case i == 1:
			f = big.NewInt(512)
		case i >= 2:
			f = new(big.Int).Exp(bin, big.NewInt(int64(i/2)), nil)
			if i%2 == 1 {
				f = new(big.Int).Exp(dec, big.NewInt(int64(i/2)), nil)
			}
		}
		sizeUnits = append(sizeUnits, struct {
			letter byte
			name   string
			factor *big.Int
		}{letters[i], names[i], f})
	}
}

// unitIndex finds a unit by its letter or by (the beginning of) its name.
func unitIndex(s string) (int, bool) {
	if len(s) == 1 {
		for i, u := range sizeUnits {
			if u.letter == s[0] {
				return i, true
			}
		}
		return 0, false
	}
	for i, u := range sizeUnits {
		if s != "" && strings.HasPrefix(u.name, s) {
			return i, true
		}
	}
	return 0, false
}

// parseUnitSize parses a SIZE (a number and a unit, sectors if none) into
// bytes; it fails on a size of more than 2^64-1 bytes.
func parseUnitSize(s string) (uint64, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a number and a unit", s)
	}
	n, ok := new(big.Int).SetString(s[:i], 10)
	if !ok {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	u := 1 // sectors
	if i < len(s) {
		if u, ok = unitIndex(s[i:]); !ok {
			return 0, fmt.Errorf("unknown unit %q in %q", s[i:], s)
		}
	}
	n.Mul(n, sizeUnits[u].factor)
	if !n.IsUint64() {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n.Uint64(), nil
}

// numericFlag is -n: a flag with an optional value (short or long).
type numericFlag struct {
	set  bool
	form string // "", "short" or "long"
}

func (f *numericFlag) String() string   { return f.form }
func (f *numericFlag) IsBoolFlag() bool { return true }
func (f *numericFlag) Set(s string) error {
	f.set = true
	switch {
	case s == "true":
		f.form = ""
	case s != "" && strings.HasPrefix("short", s):
		f.form = "short"
	case s != "" && strings.HasPrefix("long", s):
		f.form = "long"
	default:
		return fmt.Errorf("-n takes short or long, not %q", s)
	}
	return nil
}

func runMetadataSize(e *env, args []string) int {
	c := metadataSizeCommand
	// getopt's arguments joined to the letter: -b64k, -um, and -n's
	// optional one, -nshort.
	var split []string
	for i, a := range args {
		if a == "--" {
			split = append(split, args[i:]...)
			break
		}
		switch {
		case len(a) > 2 && a[0] == '-' && a[1] == 'n' && a[2] != '=':
			split = append(split, "-n="+a[2:])
		case len(a) > 2 && a[0] == '-' && strings.IndexByte("bsmu", a[1]) >= 0 && a[2] != '=':
			split = append(split, a[:2], a[2:])
		default:
			split = append(split, a)
		}
	}
	args = split
	fs := e.flagSet(c)
	var bsArg, poolArg, thinsArg, unitArg, compat string
	var numeric numericFlag
	stringFlag(fs, &bsArg, "", "b", "block-size")
	stringFlag(fs, &poolArg, "", "s", "pool-size")
	stringFlag(fs, &thinsArg, "", "m", "max-thins")
	stringFlag(fs, &unitArg, "", "u", "unit")
	stringFlag(fs, &compat, "", "compat")
	fs.Var(&numeric, "n", "")
	fs.Var(&numeric, "numeric-only", "")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return e.usageError(c, "unexpected arguments %q", pos)
	}
	for _, r := range [][2]string{{bsArg, "-b (--block-size)"}, {poolArg, "-s (--pool-size)"}, {thinsArg, "-m (--max-thins)"}} {
		if r[0] == "" {
			return e.usageError(c, "%s is required", r[1])
		}
	}
	bs, err := parseUnitSize(bsArg)
	if err != nil {
		return e.usageError(c, "-b: %v", err)
	}
	if bs%512 != 0 || bs > math.MaxUint32*512 || !thin.ValidDataBlockSize(uint32(bs/512)) {
		return e.usageError(c, "-b: a block size of %d bytes: must be a multiple of 64 KiB from 64 KiB to 1 GiB", bs)
	}
	pool, err := parseUnitSize(poolArg)
	if err != nil {
		return e.usageError(c, "-s: %v", err)
	}
	if pool < bs {
		return e.usageError(c, "-s: a pool of %d bytes holds no block of %d", pool, bs)
	}
	thins, err := strconv.ParseUint(thinsArg, 10, 64)
	if err != nil {
		return e.usageError(c, "-m: %q is not a number of thins", thinsArg)
	}
	unit := 1
	if unitArg != "" {
		if unit, ok = unitIndex(unitArg); !ok {
			return e.usageError(c, "-u: unknown unit %q", unitArg)
		}
	}
	var blocks uint64
	switch compat {
	case "":
		var fits bool
		blocks, fits = thin.EstimateMetadataBlocks(pool/bs, thins)
		if !fits {
			fmt.Fprintf(e.stderr, "thinmeta %s: warning: no metadata device holds such a pool: it would need more than the %d blocks a metadata space map can track\n",
				c.name, uint64(spacemap.MaxMetadataBlocks))
		}
	case "0.9":
		blocks = toolEstimate090(pool/512, bs/512, thins)
	case "1.1":
		blocks = toolEstimate110(pool/bs, thins)
	default:
		return e.usageError(c, "unknown --compat %q (0.9 or 1.1)", compat)
	}
	fmt.Fprintln(e.stdout, formatEstimate(blocks, unit, numeric))
	return exitOK
}

// toolEstimate090 is thin_metadata_size 0.9.0's estimate in 4 KiB blocks:
// one for the superblock, twice the data blocks over the 252 mappings it
// takes a leaf to hold (integer divisions in this order), one per thin.
func toolEstimate090(poolSectors, blockSectors, thins uint64) uint64 {
	return 1 + 2*poolSectors/blockSectors/252 + thins
}

// toolEstimate110 is thin_metadata_size 1.1.0's estimate in 4 KiB blocks:
// the superblock, the data blocks over 126 (leaves half full) rounded up,
// one per thin, and no more than a metadata space map can track.
func toolEstimate110(nrData, thins uint64) uint64 {
	return min(1+nrData/126+min(nrData%126, 1)+thins, spacemap.MaxMetadataBlocks)
}

// formatEstimate prints blocks (4 KiB) in the unit: whole numbers as
// such, others with two decimals.
func formatEstimate(blocks uint64, unit int, numeric numericFlag) string {
	u := sizeUnits[unit]
	bytes := new(big.Int).Mul(new(big.Int).SetUint64(blocks), big.NewInt(4096))
	q, r := new(big.Int).QuoRem(bytes, u.factor, new(big.Int))
	var s string
	if r.Sign() == 0 {
		s = q.String()
	} else {
		f, _ := new(big.Rat).SetFrac(bytes, u.factor).Float64()
		s = strconv.FormatFloat(f, 'f', 2, 64)
	}
	switch {
	case !numeric.set:
		return s + " " + u.name
	case numeric.form == "short":
		return s + string(u.letter)
	case numeric.form == "long":
		return s + u.name
	}
	return s
}
