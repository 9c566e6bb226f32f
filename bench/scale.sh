#!/usr/bin/env bash
# scale.sh: the scale run (opt-in, not part of .ci/run). Times
# thin-provisioning-tools 1.1.0 and thinmeta on a pool of 100M mappings
# (about 3 GiB of metadata, in a sparse file) with bench/compare.sh, after
# a run on a pool of 10M mappings of the same shape, and shows how each
# tool's peak RSS grows with the metadata against the space maps' own
# counts (2 bits a block). See bench/README.md.
#
# Environment (all optional):
#   THINS=100 MAPPINGS=1000000        the large pool (100M mappings)
#   SMALL_MAPPINGS=100000             mappings per thin of the small pool
#   RUNS=3                            timed runs per command and tool
#   ONLY="restore check dump ls"      which commands
#   WORK=bench/out/scale              work directory (git-ignored); the
#                                     XML takes about 1 GB, the image
#                                     about 3.3 GB of disk
#   KEEP_SMALL=                       1: keep the small pool's XML and
#                                     image (about 0.4 GB) for later runs;
#                                     by default they are removed once
#                                     timed, to leave disk for the large
# and compare.sh's LOCK, SCRATCH, TPT1, SOURCE, THINMETA. thinmeta is
# built once, for both pools. 0.9.0 is left out (its restore alone takes
# minutes at this size).
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
THINS=${THINS:-100}
MAPPINGS=${MAPPINGS:-1000000}
SMALL_MAPPINGS=${SMALL_MAPPINGS:-100000}
export RUNS=${RUNS:-3}
export ONLY=${ONLY:-restore check dump ls}
WORK=${WORK:-$repo/bench/out/scale}

die() { echo "scale.sh: $*" >&2; exit 1; }

need=$((THINS * MAPPINGS * 45 / 1048576 + 1024)) # XML + image, MiB
avail=$(df -Pm "$(dirname "$WORK")" 2>/dev/null | awk 'NR == 2 {print $4}')
[ -z "$avail" ] || [ "$avail" -gt "$need" ] || die "about $need MiB of disk needed under $(dirname "$WORK"), $avail available"

mkdir -p "$WORK/bin" || die "cannot create $WORK"
# One thinmeta for both pools, however the tree changes during the run:
# the growth of memory compares the same binary.
if [ -z "${THINMETA:-}" ]; then
	src=$repo
	if [ "${SOURCE:-tree}" = head ]; then
		src=$WORK/_src
		rm -rf "$src" && mkdir -p "$src" && git -C "$repo" archive HEAD | tar -x -C "$src" || die "git archive failed"
		THINMETA_DESC="$(git -C "$repo" rev-parse --short HEAD) clean"
	else
		THINMETA_DESC=$(git -C "$repo" describe --always --dirty 2>/dev/null)
	fi
	(cd "$src" && go build -o "$WORK/bin/thinmeta" ./cmd/thinmeta) || die "go build thinmeta failed (try SOURCE=head)"
	export THINMETA=$WORK/bin/thinmeta THINMETA_DESC
fi
small=$WORK/small.results
large=$WORK/large.results
common=(TOOLS="v110 ours" BASE=v110 DUMPER=thinmeta)
echo "== small pool: $THINS thins x $SMALL_MAPPINGS mappings" >&2
env "${common[@]}" THINS="$THINS" MAPPINGS="$SMALL_MAPPINGS" WORK="$WORK/small" RESULTS="$small" \
	"$here/compare.sh" >"$WORK/small.table" || die "compare.sh failed on the small pool"
echo "== large pool: $THINS thins x $MAPPINGS mappings" >&2
env "${common[@]}" THINS="$THINS" MAPPINGS="$MAPPINGS" WORK="$WORK/large" RESULTS="$large" \
	"$here/compare.sh" >"$WORK/large.table" || die "compare.sh failed on the large pool"
[ "${KEEP_SMALL:-}" = 1 ] || rm -f "$WORK/small/pool.xml" "$WORK/small/pool.img"

cat "$WORK/large.table"
echo
echo "Small pool ($((THINS * SMALL_MAPPINGS)) mappings) for the growth of memory:"
tail -n +5 "$WORK/small.table" | sed -n '1,/^(median/p' | grep -v '^(median'
echo
# Memory: growth of peak RSS from the small pool to the large one, against
# what 2 bits for every data block and metadata block more would take.
awk -v small="$small" -v large="$large" '
function load(f, a, p,   line, x) {
	while ((getline line < f) > 0) {
		split(line, x, " ")
		if (x[1] == "pool") { p["data"] = x[2]; p["meta"] = x[3]; continue }
		a[x[1] " " x[2]] = x[5]
	}
}
BEGIN {
	load(small, s, ps); load(large, l, pl)
	blocks = (pl["data"] - ps["data"]) + (pl["meta"] - ps["meta"])
	bound = blocks * 2 / 8 / 1048576
	printf "Peak RSS growth from the small pool to the large one (data blocks %d -> %d, metadata blocks used %d -> %d);\n", ps["data"], pl["data"], ps["meta"], pl["meta"]
	printf "2 bits for each block more: %.1f MiB\n", bound
	printf "%-8s %-8s %9s %9s %9s %12s  %s\n", "command", "tool", "small MiB", "large MiB", "growth", "B/block more", "verdict"
	n = split("restore check dump ls", cmds, " ")
	for (i = 1; i <= n; i++) for (t = 1; t <= 2; t++) {
		tool = t == 1 ? "v110" : "ours"
		k = cmds[i] " " tool
		if (!(k in s) || !(k in l)) continue
		g = (l[k] - s[k]) / 1024
		v = ""
		if (tool == "ours") v = g <= bound ? "within 2 bits a block" : "ABOVE 2 bits a block"
		printf "%-8s %-8s %9.1f %9.1f %9.1f %12.2f  %s\n", cmds[i], tool == "v110" ? "1.1.0" : "thinmeta", s[k] / 1024, l[k] / 1024, g, g * 1048576 / blocks, v
	}
}'
