#!/usr/bin/env bash
# compare.sh: time thin-provisioning-tools 0.9.0, thin-provisioning-tools
# 1.1.0 and thinmeta on the same generated pool, in the same run.
# See bench/README.md.
#
# Environment (all optional):
#   THINS=50 MAPPINGS=200000 SEED=1   shape of the generated pool
#   RUNS=5                            timed runs per command and tool
#   RESTORE_RUNS=$RUNS                timed runs of restore (0.9.0 takes ~17 s)
#   REPAIR_RUNS=3                     timed runs of repair (0.9.0 takes ~20 s)
#   WORK=bench/out                    work directory (git-ignored)
#   META_MB=auto                      size of the sparse metadata file
#   ONLY="restore check dump ls rmap delta repair repair-damaged"
#                                     which commands to time
#   TOOLS="v090 v110 ours"            which tools to time
#   BASE=v090                         whose thin_restore writes the pool
#                                     image the other commands read (v110:
#                                     1.1.0's, much faster at scale)
#   LS_FIELDS=DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS
#   TPT1=~/.cache/thinmeta/tpt-1.1.0/usr/sbin   where 1.1.0's tools are
#                                     (fetched with .ci/tpt1 when missing)
#   SCRATCH=/dev/shm/thinmeta-bench.PID   where restore and repair write
#                                     their output images (tmpfs: their
#                                     fsyncs do not wait for the disk);
#                                     removed at the end
#   LOCK=/tmp/thinmeta-heavy.lock     taken around each command's runs and
#                                     released between commands; empty: none
#   DUMPER=/usr/sbin/thin_dump        dumps restored and repaired images to
#                                     verify them against the XML;
#                                     "thinmeta": thinmeta dump (at scale)
#   RESULTS=                          also write the medians and peak RSS
#                                     to this file, one line per command
#                                     and tool (for bench/scale.sh)
#   SOURCE=tree                       build thinmeta from the working tree;
#                                     "head" builds the last commit instead
#   THINMETA=                         use this thinmeta binary, build nothing
#   THINMETA_DESC=                    what to call it in the table (the
#                                     commit it was built from)
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
THINS=${THINS:-50}
MAPPINGS=${MAPPINGS:-200000}
SEED=${SEED:-1}
RUNS=${RUNS:-5}
RESTORE_RUNS=${RESTORE_RUNS:-$RUNS}
REPAIR_RUNS=${REPAIR_RUNS:-$((RUNS < 3 ? RUNS : 3))}
WORK=${WORK:-$repo/bench/out}
ONLY=${ONLY:-restore check dump ls rmap delta repair repair-damaged}
TOOLS=${TOOLS:-v090 v110 ours}
LS_FIELDS=${LS_FIELDS:-DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS}
TPT1=${TPT1:-$HOME/.cache/thinmeta/tpt-1.1.0/usr/sbin}
LOCK=${LOCK-/tmp/thinmeta-heavy.lock}
V090=/usr/sbin
BASE=${BASE:-v090}
DUMPER=${DUMPER:-$V090/thin_dump}
RESULTS=${RESULTS:-}
if [ -z "${SCRATCH:-}" ]; then
	SCRATCH=$WORK
	[ -d /dev/shm ] && [ -w /dev/shm ] && SCRATCH=/dev/shm/thinmeta-bench.$$
fi

die() { echo "compare.sh: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }

for t in thin_check thin_dump thin_ls thin_restore thin_rmap thin_delta thin_repair; do
	[ -x "$V090/$t" ] || die "$V090/$t not found: install thin-provisioning-tools (0.9.0)"
done
if [[ " $TOOLS " == *" v110 "* ]] && [ ! -x "$TPT1/pdata_tools" ]; then
	note "fetching thin-provisioning-tools 1.1.0 with .ci/tpt1"
	TPT1=$("$repo/.ci/tpt1") || die "thin-provisioning-tools 1.1.0 not found in $TPT1 and .ci/tpt1 failed"
fi
if [ ! -x /usr/bin/time ]; then
	note "installing package time (for /usr/bin/time)"
	apt-get install -y -q time >/dev/null || die "/usr/bin/time missing and apt-get install time failed"
fi

lockfd=
if [ -n "$LOCK" ]; then exec {lockfd}>>"$LOCK" || die "cannot open $LOCK"; fi
lock() { [ -z "$lockfd" ] || { note "waiting for $LOCK"; flock "$lockfd"; }; }
unlock() { [ -z "$lockfd" ] || flock -u "$lockfd"; }

mkdir -p "$WORK/bin" "$SCRATCH" || die "cannot create $WORK or $SCRATCH"
WORK=$(cd "$WORK" && pwd)
SCRATCH=$(cd "$SCRATCH" && pwd)
[ "$SCRATCH" = "$WORK" ] || trap 'rm -rf "$SCRATCH"' EXIT
bin=$WORK/bin

src=$repo
if [ "${SOURCE:-tree}" = head ]; then
	src=$WORK/_src # "_": ignored by go ./...
	rm -rf "$src" && mkdir -p "$src" && git -C "$repo" archive HEAD | tar -x -C "$src" || die "git archive failed"
fi
note "building genxml${THINMETA:+ (thinmeta: using $THINMETA)}$([ -n "${THINMETA:-}" ] || echo " and thinmeta from $src")"
(cd "$repo" && go build -o "$bin/genxml" ./bench/genxml) || die "go build genxml failed"
if [ -n "${THINMETA:-}" ]; then
	tm=$(command -v "$THINMETA") || die "$THINMETA not found"
else
	(cd "$src" && go build -o "$bin/thinmeta" ./cmd/thinmeta) || die "go build thinmeta failed (try SOURCE=head)"
	tm=$bin/thinmeta
fi
# What was built, named now: the tree may change during a long run.
if [ -n "${THINMETA_DESC:-}" ]; then
	built=$THINMETA_DESC
elif [ -n "${THINMETA:-}" ]; then
	built=$tm
elif [ "$src" = "$repo" ]; then
	built=$(git -C "$repo" describe --always --dirty 2>/dev/null)
else
	built="$(git -C "$repo" rev-parse --short HEAD) clean"
fi

[ "$DUMPER" = thinmeta ] && DUMPER="$tm dump"

# Pool: XML, then a metadata image restored by thin_restore 0.9.0.
xml=$WORK/pool.xml
img=$WORK/pool.img
nmap=$((THINS * MAPPINGS))
if [ "${META_MB:-auto}" = auto ]; then
	# thin_restore uses about 35 bytes of metadata per mapping; double it.
	META_MB=$((nmap * 70 / 1048576 + THINS / 8 + 16))
fi
note "generating $THINS thins x $MAPPINGS mappings (seed $SEED)"
"$bin/genxml" -thins "$THINS" -mappings "$MAPPINGS" -seed "$SEED" -info -o "$xml" || die "genxml failed"
pair=$("$bin/genxml" -thins "$THINS" -mappings "$MAPPINGS" -seed "$SEED" -pair 2>/dev/null) || pair=""
nr_data=$(head -n 1 "$xml" | sed -n 's/.* nr_data_blocks="\([0-9]*\)".*/\1/p')

fresh() { rm -f "$1" && truncate -s "${META_MB}M" "$1"; }

# measure OUT ERR CMD...: run CMD with stdout to OUT and stderr to ERR, and
# set rc, secs (wall), cpu (user + system seconds) and rss (peak resident
# set, KiB: the "Maximum resident set size" of /usr/bin/time -v).
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
declare -A NAME=([v090]="0.9.0" [v110]="1.1.0" [ours]=thinmeta)

record() { # cmd tool
	T["$1 $2"]+="$secs "
	C["$1 $2"]+="$cpu "
	if [ -z "${RSS["$1 $2"]:-}" ] || [ "$rss" -gt "${RSS["$1 $2"]}" ]; then RSS["$1 $2"]=$rss; fi
}

in_tools() { [[ " $TOOLS " == *" $1 "* ]]; }

# argv_of TOOL: sets argv to the command line of TOOL (v090, v110, ours).
argv_of() {
	case $1 in
	v090) argv=("${v090[@]}") ;;
	v110) argv=("${v110[@]}") ;;
	ours) argv=("${ours[@]}") ;;
	esac
}

# timeall CMD RUNS SETUP VERIFY: times the commands in the arrays v090,
# v110 and ours (an empty array: the tool lacks the command). SETUP runs
# before each run (e.g. a fresh output file). Each tool runs once untimed
# first and VERIFY (a function, given the tool) checks its output; a tool
# that fails is "n/a" with the reason. Then RUNS timed runs of each, the
# order rotating from run to run. The lock is held for the whole command.
timeall() {
	local cmd=$1 runs=$2 setup=$3 verify=$4 o=$WORK/$1 w i
	local -a order=() argv=()
	lock
	note "$cmd: warm-up and verification"
	rm -f "$o".*.out
	for w in $TOOLS; do
		argv_of "$w"
		if [ ${#argv[@]} = 0 ]; then
			STATUS["$cmd $w"]="-"
			continue
		fi
		$setup "$w"
		measure "$o.$w.out" "$o.$w.err" "${argv[@]}"
		if [ "$rc" != 0 ]; then
			STATUS["$cmd $w"]="n/a (exit $rc: $(head -n 1 "$o.$w.err" | head -c 100))"
		elif ! $verify "$w"; then
			STATUS["$cmd $w"]="n/a (output failed verification)"
		else
			STATUS["$cmd $w"]=ok
			order+=("$w")
			continue
		fi
		note "$cmd: ${NAME[$w]} ${STATUS["$cmd $w"]}"
		[ "$w" = ours ] || [[ "$cmd" == repair* ]] || { unlock; die "${argv[0]} $cmd failed"; }
	done
	local n=${#order[@]}
	for ((i = 0; i < runs; i++)); do
		local j
		for ((j = 0; j < n; j++)); do
			w=${order[$(((i + j) % n))]}
			argv_of "$w"
			$setup "$w"
			measure "$o.$w.out" "$o.$w.err" "${argv[@]}"
			[ "$rc" = 0 ] || { unlock; die "$cmd (${NAME[$w]}) failed in timed run $i (exit $rc)"; }
			# Re-verify cheap outputs after every run (an image needs a dump).
			case $cmd in restore | repair*) ;; *) $verify "$w" || { unlock; die "$cmd (${NAME[$w]}): output changed in timed run $i"; } ;; esac
			record "$cmd" "$w"
			note "$cmd run $((i + 1))/$runs ${NAME[$w]}: ${secs}s wall ${cpu}s cpu ${rss}KiB"
		done
	done
	unlock
}

noop() { :; }
# same A B: files A and B are byte-identical.
same() { cmp -s "$1" "$2"; }

# restore: each run writes a fresh sparse file; verify by dumping it with
# $DUMPER (thin_dump 0.9.0 unless told) and comparing with the input XML
# (genxml writes thin_dump 0.9.0's exact format).
restore_setup() { fresh "$SCRATCH/restore.$1.img"; }
restore_verify() {
	$DUMPER "$SCRATCH/restore.$1.img" >"$WORK/restore.$1.dump" 2>/dev/null &&
		same "$WORK/restore.$1.dump" "$xml"
}
# check: exit status 0 on the good pool, and (once) a non-zero exit on a
# copy with one B-tree node in the middle of the used area damaged, where
# thin_check 0.9.0 fails too: a command that checks nothing is not timed.
checked_damage=
check_verify() {
	[ "$1" = ours ] || return 0
	# Once: the timed runs re-verify only the exit status (a copy of the
	# 100M pool of bench/scale.sh is 1.6 GB and thin_check's 5 s).
	[ -z "$checked_damage" ] || return 0
	checked_damage=1
	local bad=$WORK/damaged.img blk
	damage_image "$img" "$bad" || return 1
	blk=$dmg_blk
	local tc=$V090/thin_check
	in_tools v090 || tc=$TPT1/thin_check
	if "$tc" -q "$bad" >/dev/null 2>&1; then
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
# dump: 0.9.0's output is the generated XML and thinmeta's is identical to
# it; 1.1.0's is identical to thinmeta dump --compat 1.1 (made once,
# untimed).
dump_verify() {
	case $1 in
	v090) same "$WORK/dump.v090.out" "$xml" ;;
	ours) same "$WORK/dump.ours.out" "$xml" ;;
	v110)
		[ -s "$WORK/dump.compat11" ] || "$tm" dump --compat 1.1 "$img" >"$WORK/dump.compat11" || return 1
		same "$WORK/dump.v110.out" "$WORK/dump.compat11"
		;;
	esac
}
# ls, rmap, delta: thinmeta's output is identical to 0.9.0's (when 0.9.0
# runs); 1.1.0's differs in format only (see thinmeta help ls, rmap,
# delta), so it must just succeed with some output.
like090() {
	if [ "$1" = ours ] && in_tools v090; then
		same "$WORK/$2.ours.out" "$WORK/$2.v090.out"
	else
		[ -s "$WORK/$2.$1.out" ]
	fi
}
ls_verify() { like090 "$1" ls; }
rmap_verify() { like090 "$1" rmap; }
delta_verify() { like090 "$1" delta; }
# damage_image IMG OUT: OUT is a copy of IMG with 21 bytes of the block in
# the middle of the used metadata (nearly all of which are mapping leaves)
# garbled, past its header; sets dmg_blk.
damage_image() {
	cp --sparse=always "$1" "$2" || return 1
	dmg_blk=$(($(du -B4096 "$1" | cut -f1) / 2))
	printf 'thinmeta-bench-damage' | dd of="$2" bs=1 seek=$((dmg_blk * 4096 + 64)) conv=notrunc status=none
}
# repair: each run writes a fresh sparse file, which must dump (thin_dump
# 0.9.0) to exactly the input XML: nothing is lost from a clean pool.
repair_setup() { fresh "$SCRATCH/repair.$1.img"; }
# repair-damaged: the output of the damaged pool must pass thin_check 0.9.0
# and 1.1.0 (what each recovers is compared in thin/repair's tests).
rdmg_setup() { fresh "$SCRATCH/rdmg.$1.img"; }
rdmg_verify() {
	"$V090/thin_check" -q "$SCRATCH/rdmg.$1.img" && "$TPT1/thin_check" -q "$SCRATCH/rdmg.$1.img"
}
repair_verify() {
	$DUMPER "$SCRATCH/repair.$1.img" >"$WORK/repair.$1.dump" 2>/dev/null &&
		same "$WORK/repair.$1.dump" "$xml"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
lock
base=$V090/thin_restore
[ "$BASE" = v110 ] && base=$TPT1/thin_restore
note "restoring the pool with $base (${META_MB} MiB sparse metadata file)"
fresh "$img"
"$base" -q -i "$xml" -o "$img" || { unlock; die "$base failed"; }
unlock
cat "$img" >/dev/null # warm the page cache: every measurement is warm-cache

for c in $ONLY; do
	v090=() v110=() ours=()
	case $c in
	restore)
		v090=("$V090/thin_restore" -q -i "$xml" -o "$SCRATCH/restore.v090.img")
		v110=("$TPT1/thin_restore" -q -i "$xml" -o "$SCRATCH/restore.v110.img")
		ours=("$tm" restore -q -i "$xml" -o "$SCRATCH/restore.ours.img")
		timeall restore "$RESTORE_RUNS" restore_setup restore_verify
		rm -f "$SCRATCH"/restore.*.img "$WORK"/restore.*.dump
		;;
	check)
		v090=("$V090/thin_check" "$img")
		v110=("$TPT1/thin_check" "$img")
		ours=("$tm" check "$img")
		timeall check "$RUNS" noop check_verify
		;;
	dump)
		v090=("$V090/thin_dump" "$img")
		v110=("$TPT1/thin_dump" "$img")
		ours=("$tm" dump "$img")
		timeall dump "$RUNS" noop dump_verify
		rm -f "$WORK"/dump.*
		;;
	ls)
		v090=("$V090/thin_ls" -o "$LS_FIELDS" "$img")
		v110=("$TPT1/thin_ls" -o "$LS_FIELDS" "$img")
		ours=("$tm" ls -o "$LS_FIELDS" "$img")
		timeall ls "$RUNS" noop ls_verify
		;;
	rmap)
		# The whole data device: every mapping is reported.
		v090=("$V090/thin_rmap" --region "0..$nr_data" "$img")
		v110=("$TPT1/thin_rmap" --region "0..$nr_data" "$img")
		ours=("$tm" rmap --region "0..$nr_data" "$img")
		timeall rmap "$RUNS" noop rmap_verify
		rm -f "$WORK"/rmap.*.out
		;;
	delta)
		if [ -z "$pair" ]; then
			note "delta: the pool has no snapshot; skipped"
			continue
		fi
		read -r o s <<<"$pair"
		v090=("$V090/thin_delta" --snap1 "$o" --snap2 "$s" "$img")
		v110=("$TPT1/thin_delta" --snap1 "$o" --snap2 "$s" "$img")
		ours=("$tm" delta --snap1 "$o" --snap2 "$s" "$img")
		timeall delta "$RUNS" noop delta_verify
		;;
	repair)
		v090=("$V090/thin_repair" -i "$img" -o "$SCRATCH/repair.v090.img")
		v110=("$TPT1/thin_repair" -q -i "$img" -o "$SCRATCH/repair.v110.img")
		if "$tm" repair -h >/dev/null 2>&1; then
			ours=("$tm" repair -q -i "$img" -o "$SCRATCH/repair.ours.img")
		else
			note "repair: this thinmeta has no repair command; timing thin_repair only"
		fi
		timeall repair "$REPAIR_RUNS" repair_setup repair_verify
		rm -f "$SCRATCH"/repair.*.img "$WORK"/repair.*.dump
		;;
	repair-damaged)
		bad=$WORK/rdmg.input.img
		damage_image "$img" "$bad" || die "cannot damage a copy of the image"
		note "repair-damaged: block $dmg_blk garbled; thin_check 0.9.0 says: $("$V090/thin_check" "$bad" 2>&1 | tr '\n' ' ' | head -c 200)"
		v090=("$V090/thin_repair" -i "$bad" -o "$SCRATCH/rdmg.v090.img")
		v110=("$TPT1/thin_repair" -q -i "$bad" -o "$SCRATCH/rdmg.v110.img")
		if "$tm" repair -h >/dev/null 2>&1; then
			ours=("$tm" repair -q -i "$bad" -o "$SCRATCH/rdmg.ours.img")
		fi
		timeall repair-damaged "$REPAIR_RUNS" rdmg_setup rdmg_verify
		rm -f "$SCRATCH"/rdmg.*.img "$bad"
		;;
	*) die "unknown command $c in ONLY" ;;
	esac
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) printf "%.2f", a[(NR+1)/2]; else printf "%.2f", (a[NR/2]+a[NR/2+1])/2}'; }
# spread: (max - min) / median of the runs, in percent: how noisy they were.
spread() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR < 2) {print "-"; exit}; m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; if (m > 0) printf "%.0f%%", 100*(a[NR]-a[1])/m; else print "-"}'; }
mib() { [ -n "${1:-}" ] && awk -v k="$1" 'BEGIN {printf "%.0f", k/1024}' || echo -; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-") print "-"; else if (b > 0) printf "%.1fx", a/b; else print "inf"}'; }

# Targets: wall-time ratio 1.1.0 / thinmeta (issues 8 and 11); thinmeta's
# peak RSS must be below 1.1.0's. rmap and delta: at least as fast.
declare -A TARGET=([restore]=5 [check]=8 [dump]=8 [ls]=10 [repair]=3 [repair-damaged]=3 [rmap]=1 [delta]=1)

echo
echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
echo "Load average: $load0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end (other work on the machine inflates wall times)"
echo "Versions: thin-provisioning-tools $("$V090/thin_dump" -V 2>&1) and $("$TPT1/thin_dump" -V 2>&1), thinmeta $("$tm" --version 2>&1) ($built), $(go version | cut -d' ' -f3)"
[ -z "$RESULTS" ] || echo "pool $nr_data $(du -B4096 "$img" | cut -f1)" >"$RESULTS"
echo "Pool: $THINS thins x $MAPPINGS mappings (seed $SEED), XML $(du -m --apparent-size "$xml" | cut -f1) MiB, metadata $(du -m "$img" | cut -f1) MiB used of ${META_MB} MiB; warm page cache; medians of $RUNS runs (restore $RESTORE_RUNS, repair $REPAIR_RUNS)"
echo
fmt='%-14s | %7s %7s %8s | %6s %6s %6s | %6s %8s %6s | %6s %6s %8s | %5s %5s %5s | %s\n'
printf "$fmt" "" "wall s" "" "" "vs" "vs" "target" "cpu s" "" "vs" "spread" "" "" "peak" "RSS" "MiB" ""
printf "$fmt" command 0.9.0 1.1.0 thinmeta 0.9.0 1.1.0 "1.1.0" 1.1.0 thinmeta 1.1.0 0.9.0 1.1.0 thinmeta 0.9.0 1.1.0 ours verdict
for c in $ONLY; do
	declare -A med=() spr=() cmed=()
	for w in v090 v110 ours; do
		med[$w]=- spr[$w]=- cmed[$w]=-
		if [ "${STATUS["$c $w"]:-}" = ok ]; then
			med[$w]=$(echo "${T["$c $w"]:-}" | median)
			cmed[$w]=$(echo "${C["$c $w"]:-}" | median)
			spr[$w]=$(echo "${T["$c $w"]:-}" | spread)
		fi
	done
	verdict=
	if [ "${STATUS["$c ours"]:-}" != ok ]; then
		verdict="thinmeta ${STATUS["$c ours"]:-not run}"
		[ "${STATUS["$c ours"]:-}" = - ] && verdict="thinmeta lacks the command"
	elif [ "${med[v110]}" != - ]; then
		verdict=$(awk -v a="${med[v110]}" -v b="${med[ours]}" -v t="${TARGET[$c]}" 'BEGIN {print (b == 0 || a/b >= t) ? "meets target" : "BELOW TARGET"}')
		if [ "${RSS["$c ours"]}" -ge "${RSS["$c v110"]}" ]; then verdict="$verdict; RSS NOT BELOW 1.1.0"; fi
	fi
	for w in v090 v110; do
		[ "${STATUS["$c $w"]:-}" = ok ] || [ "${STATUS["$c $w"]:-}" = - ] || [ -z "${STATUS["$c $w"]:-}" ] ||
			verdict="$verdict; ${NAME[$w]} ${STATUS["$c $w"]}"
	done
	if [ -n "$RESULTS" ]; then
		for w in v090 v110 ours; do
			[ "${STATUS["$c $w"]:-}" = ok ] && echo "$c $w ${med[$w]} ${cmed[$w]} ${RSS["$c $w"]}" >>"$RESULTS"
		done
	fi
	printf "$fmt" "$c" "${med[v090]}" "${med[v110]}" "${med[ours]}" \
		"$(ratio "${med[v090]}" "${med[ours]}")" "$(ratio "${med[v110]}" "${med[ours]}")" "${TARGET[$c]}x" \
		"${cmed[v110]}" "${cmed[ours]}" "$(ratio "${cmed[v110]}" "${cmed[ours]}")" \
		"${spr[v090]}" "${spr[v110]}" "${spr[ours]}" \
		"$(mib "${RSS["$c v090"]:-}")" "$(mib "${RSS["$c v110"]:-}")" "$(mib "${RSS["$c ours"]:-}")" "$verdict"
done
echo "(median wall and CPU (user + system) seconds; vs = that tool's time / thinmeta's; target is for the wall ratio to 1.1.0; spread = (slowest - fastest) / median over the runs; peak RSS = max over the runs; outputs verified before timing, see bench/README.md)"
