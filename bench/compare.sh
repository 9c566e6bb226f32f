#!/usr/bin/env bash
# compare.sh: time thinmeta against thin-provisioning-tools on the same
# generated pool, in the same run. See bench/README.md.
#
# Environment (all optional):
#   THINS=50 MAPPINGS=200000 SEED=1   shape of the generated pool
#   RUNS=5                            timed runs per command and tool
#   RESTORE_RUNS=$RUNS                timed runs of the restore pair
#   WORK=bench/out                    work directory (git-ignored)
#   META_MB=auto                      size of the sparse metadata file
#   ONLY="restore check dump ls"      which pairs to time
#   LS_FIELDS=DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS
#   SOURCE=tree                       build thinmeta from the working tree;
#                                     "head" builds the last commit instead
#   THINMETA=                         use this thinmeta binary, build nothing
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
THINS=${THINS:-50}
MAPPINGS=${MAPPINGS:-200000}
SEED=${SEED:-1}
RUNS=${RUNS:-5}
RESTORE_RUNS=${RESTORE_RUNS:-$RUNS}
WORK=${WORK:-$repo/bench/out}
ONLY=${ONLY:-restore check dump ls}
LS_FIELDS=${LS_FIELDS:-DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS}
export PATH="$PATH:/usr/sbin:/sbin"

die() { echo "compare.sh: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }

for t in thin_check thin_dump thin_ls thin_restore; do
	command -v "$t" >/dev/null || die "$t not found: install thin-provisioning-tools"
done
if [ ! -x /usr/bin/time ]; then
	note "installing package time (for /usr/bin/time)"
	apt-get install -y -q time >/dev/null || die "/usr/bin/time missing and apt-get install time failed"
fi

mkdir -p "$WORK/bin" || die "cannot create $WORK"
WORK=$(cd "$WORK" && pwd)
bin=$WORK/bin

src=$repo
if [ "${SOURCE:-tree}" = head ]; then
	src=$WORK/_src # "_": ignored by go ./...
	rm -rf "$src" && mkdir -p "$src" && git -C "$repo" archive HEAD | tar -x -C "$src" || die "git archive failed"
fi
note "building genxml${THINMETA:+ (thinmeta: using $THINMETA)}${THINMETA:- and thinmeta from $src}"
(cd "$repo" && go build -o "$bin/genxml" ./bench/genxml) || die "go build genxml failed"
if [ -n "${THINMETA:-}" ]; then
	tm=$(command -v "$THINMETA") || die "$THINMETA not found"
else
	(cd "$src" && go build -o "$bin/thinmeta" ./cmd/thinmeta) || die "go build thinmeta failed (try SOURCE=head)"
	tm=$bin/thinmeta
fi

# Pool: XML, then a metadata image restored by thin_restore.
xml=$WORK/pool.xml
img=$WORK/pool.img
nmap=$((THINS * MAPPINGS))
if [ "${META_MB:-auto}" = auto ]; then
	# thin_restore uses about 35 bytes of metadata per mapping; double it.
	META_MB=$((nmap * 70 / 1048576 + THINS / 8 + 16))
fi
note "generating $THINS thins x $MAPPINGS mappings (seed $SEED)"
"$bin/genxml" -thins "$THINS" -mappings "$MAPPINGS" -seed "$SEED" -info -o "$xml" || die "genxml failed"

fresh() { rm -f "$1" && truncate -s "${META_MB}M" "$1"; }

# measure OUT ERR CMD...: run CMD with stdout to OUT and stderr to ERR, and
# set rc, secs (wall), cpu (user + system seconds) and rss (KiB).
measure() {
	local out=$1 err=$2 tf=$WORK/time.out
	shift 2
	/usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$out" 2>"$err"
	rc=$?
	local u s
	read -r secs rss u s < <(tail -n 1 "$tf")
	cpu=$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')
}

# Results, keyed "cmd tool": space-separated seconds; max RSS; status.
declare -A T C RSS STATUS

record() { # cmd tool
	T["$1 $2"]+="$secs "
	C["$1 $2"]+="$cpu "
	if [ -z "${RSS["$1 $2"]:-}" ] || [ "$rss" -gt "${RSS["$1 $2"]}" ]; then RSS["$1 $2"]=$rss; fi
}

# timepair CMD RUNS SETUP VERIFY TPT-ARGV... -- THINMETA-ARGV...
# Runs SETUP before each run (e.g. a fresh output file). Runs the thinmeta
# command once untimed first and VERIFY (a function, given the tool) on its
# output; if either fails the thinmeta column is "n/a". Then RUNS timed runs
# of each tool, alternating which goes first.
timepair() {
	local cmd=$1 runs=$2 setup=$3 verify=$4
	shift 4
	local -a tpt=() ours=()
	while [ "$1" != -- ]; do tpt+=("$1"); shift; done
	shift
	ours=("$@")
	local o=$WORK/$cmd

	note "$cmd: warm-up and verification"
	$setup tpt
	measure "$o.tpt.out" "$o.tpt.err" "${tpt[@]}"
	[ "$rc" = 0 ] || die "${tpt[0]} failed (exit $rc): $(head -c 300 "$o.tpt.err")"
	$verify tpt || die "${tpt[0]} output failed verification"
	$setup ours
	measure "$o.ours.out" "$o.ours.err" "${ours[@]}"
	local na=""
	if [ "$rc" != 0 ]; then
		na="exit $rc: $(head -n 1 "$o.ours.err" | head -c 100)"
	elif ! $verify ours; then
		na="output differs"
	fi
	if [ -n "$na" ]; then
		STATUS[$cmd]="n/a ($na)"
		note "$cmd: thinmeta n/a ($na); timing ${tpt[0]} only"
	else
		STATUS[$cmd]=ok
	fi
	local i
	for ((i = 0; i < runs; i++)); do
		local order="tpt ours"
		((i % 2 == 1)) && order="ours tpt"
		for w in $order; do
			[ "$w" = ours ] && [ -n "$na" ] && continue
			$setup $w
			if [ "$w" = tpt ]; then
				measure "$o.$w.out" "$o.$w.err" "${tpt[@]}"
			else
				measure "$o.$w.out" "$o.$w.err" "${ours[@]}"
			fi
			[ "$rc" = 0 ] || die "$cmd ($w) failed in timed run $i (exit $rc)"
			# Re-verify cheap outputs after every run (restore's needs a dump).
			if [ "$cmd" != restore ]; then
				$verify $w || die "$cmd ($w): output changed in timed run $i"
			fi
			record "$cmd" "$w"
			note "$cmd run $((i + 1))/$runs $w: ${secs}s wall ${cpu}s cpu ${rss}KiB"
		done
	done
}

noop() { :; }

# restore: each run writes a fresh sparse file; verify by dumping it with
# thin_dump and comparing with the input XML (genxml writes thin_dump's
# exact format).
restore_setup() { fresh "$WORK/restore.$1.img"; }
restore_verify() {
	thin_dump "$WORK/restore.$1.img" >"$WORK/restore.$1.dump" 2>/dev/null &&
		cmp -s "$WORK/restore.$1.dump" "$xml"
}
# check: exit status 0 on the good pool, and (once) a non-zero exit on a
# copy with one B-tree node in the middle of the used area damaged, where
# thin_check fails too: a command that checks nothing is not timed.
damage_done=""
check_verify() {
	[ "$1" = ours ] && [ -z "$damage_done" ] || return 0
	damage_done=1
	local bad=$WORK/damaged.img blk
	cp --sparse=always "$img" "$bad" || return 1
	blk=$(($(du -B4096 "$img" | cut -f1) / 2))
	printf 'thinmeta-bench-damage' | dd of="$bad" bs=1 seek=$((blk * 4096 + 64)) conv=notrunc status=none
	if thin_check -q "$bad" >/dev/null 2>&1; then
		note "check: damaging block $blk did not upset thin_check; damage test skipped"
	elif "$tm" check "$bad" >/dev/null 2>&1; then
		rm -f "$bad"
		note "check: thinmeta check passes a pool where thin_check finds block $blk damaged"
		return 1
	else
		note "check: thinmeta check rejects the pool with block $blk damaged, as thin_check does"
	fi
	rm -f "$bad"
}
dump_verify() {
	if [ "$1" = tpt ]; then
		cmp -s "$WORK/dump.tpt.out" "$xml"
	else
		cmp -s "$WORK/dump.ours.out" "$WORK/dump.tpt.out"
	fi
}
ls_verify() { [ "$1" = tpt ] || cmp -s "$WORK/ls.ours.out" "$WORK/ls.tpt.out"; }

load0=$(cut -d' ' -f1-3 /proc/loadavg)
note "restoring the pool with thin_restore (${META_MB} MiB sparse metadata file)"
fresh "$img"
thin_restore -q -i "$xml" -o "$img" || die "thin_restore failed"
cat "$img" >/dev/null # warm the page cache: every measurement is warm-cache

for c in $ONLY; do
	case $c in
	restore)
		timepair restore "$RESTORE_RUNS" restore_setup restore_verify \
			thin_restore -q -i "$xml" -o "$WORK/restore.tpt.img" -- \
			"$tm" restore -i "$xml" -o "$WORK/restore.ours.img"
		rm -f "$WORK"/restore.*.img "$WORK"/restore.*.dump
		;;
	check)
		timepair check "$RUNS" noop check_verify thin_check "$img" -- "$tm" check "$img"
		;;
	dump)
		timepair dump "$RUNS" noop dump_verify thin_dump "$img" -- "$tm" dump "$img"
		;;
	ls)
		timepair ls "$RUNS" noop ls_verify thin_ls -o "$LS_FIELDS" "$img" -- "$tm" ls -o "$LS_FIELDS" "$img"
		;;
	*) die "unknown command $c in ONLY" ;;
	esac
done
rm -f "$WORK/dump.tpt.out" "$WORK/dump.ours.out"

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) printf "%.2f", a[(NR+1)/2]; else printf "%.2f", (a[NR/2]+a[NR/2+1])/2}'; }
mib() { [ -n "${1:-}" ] && awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}' || echo -; }

declare -A TARGET=([restore]=10 [check]=8 [dump]=5 [ls]=8)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.1fx", a/b; else print "inf"}'; }

echo
echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
echo "Load average: $load0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end (other work on the machine inflates wall times)"
echo "Versions: thin-provisioning-tools $(thin_dump -V 2>&1), thinmeta $("$tm" --version 2>&1) ($(if [ -n "${THINMETA:-}" ]; then echo "$tm"; elif [ "$src" = "$repo" ]; then git -C "$repo" describe --always --dirty 2>/dev/null; else echo "$(git -C "$repo" rev-parse --short HEAD) clean"; fi)), $(go version | cut -d' ' -f3)"
echo "Pool: $THINS thins x $MAPPINGS mappings (seed $SEED), XML $(du -m --apparent-size "$xml" | cut -f1) MiB, metadata $(du -m "$img" | cut -f1) MiB used of ${META_MB} MiB; warm page cache; medians of $RUNS runs (restore $RESTORE_RUNS)"
echo
fmt='%-8s %9s %9s %7s %6s | %8s %8s %7s | %8s %8s  %s\n'
printf "$fmt" "" "wall s" "" "" "" "cpu s" "" "" "peak RSS MiB" "" ""
printf "$fmt" command tool thinmeta ratio target tool thinmeta ratio tool thinmeta verdict
for c in $ONLY; do
	tt=$(echo "${T["$c tpt"]:-}" | median)
	tc=$(echo "${C["$c tpt"]:-}" | median)
	ot=- oc=- r=- rc_=- verdict=${STATUS[$c]}
	if [ "${STATUS[$c]}" = ok ]; then
		ot=$(echo "${T["$c ours"]:-}" | median)
		oc=$(echo "${C["$c ours"]:-}" | median)
		r=$(ratio "$tt" "$ot")
		rc_=$(ratio "$tc" "$oc")
		verdict=$(awk -v a="$tt" -v b="$ot" -v t="${TARGET[$c]}" 'BEGIN {print (b == 0 || a/b >= t) ? "meets target" : "BELOW TARGET"}')
		if [ "$c" = check ] && [ "${RSS["$c ours"]}" -gt "${RSS["$c tpt"]}" ]; then verdict="$verdict; RSS ABOVE thin_check"; fi
		if [ "$c" = dump ] || [ "$c" = ls ] || [ "$c" = restore ]; then verdict="$verdict; output identical"; fi
	fi
	printf "$fmt" "$c" "$tt" "$ot" "$r" "${TARGET[$c]}x" "$tc" "$oc" "$rc_" \
		"$(mib "${RSS["$c tpt"]:-}")" "$(mib "${RSS["$c ours"]:-}")" "$verdict"
done
echo "(tool = thin_restore, thin_check, thin_dump, thin_ls resp.; ratio = tool / thinmeta; target is for the wall ratio; RSS = max over runs)"
