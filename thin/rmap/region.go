package rmap

import (
	"errors"
	"math"
)

// Errors of ParseRegion, worded as thin_rmap words them.
var (
	ErrRegionNoDots  = errors.New("badly formed region (no dots)")
	ErrRegionNumbers = errors.New("badly formed region (couldn't parse numbers)")
	ErrRegionEmpty   = errors.New("badly formed region (end <= begin)")
)

// ParseRegion parses a region given as "BEGIN..END" (END one past the
// last block), accepting what thin_rmap's stream parsing accepts: white
// space before each number, an optional sign (a negative number wraps
// modulo 2^64), and anything after END.
func ParseRegion(s string) (Region, error) {
	begin, rest, ok := scanUint(s)
	if !ok || len(rest) < 2 || rest[:2] != ".." {
		return Region{}, ErrRegionNoDots
	}
	end, _, ok := scanUint(rest[2:])
	if !ok {
		return Region{}, ErrRegionNumbers
	}
	if end <= begin {
		return Region{}, ErrRegionEmpty
	}
	return Region{Begin: begin, End: end}, nil
}

// scanUint reads an unsigned decimal number as a C++ istream does: leading
// white space, an optional sign, at least one digit, failing on overflow.
func scanUint(s string) (v uint64, rest string, ok bool) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	overflow := false
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		d := uint64(s[i] - '0')
		if v > (math.MaxUint64-d)/10 {
			overflow = true
		}
		v = v*10 + d
		i++
	}
	if i == start || overflow {
		return 0, s[i:], false
	}
	if neg {
		v = -v
	}
	return v, s[i:], true
}
