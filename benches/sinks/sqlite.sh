#!/usr/bin/env bash
# pc-host's SQLite sink against the bare SQLite ceiling, in the same run: `sqlite_loop`
# (benches/src/bin/sqlite_loop.rs: one thread building pc-host's messages and inserting them
# with 128-row statements in 10k-row transactions, WAL + NORMAL, SQLite's own
# autocheckpoint; nothing else) and pc-host `--rps 0 --messages N` with its defaults and with
# 1 producer and 1 consumer, each into a fresh database, rounds interleaved; medians and the
# ratios pc-host / bare loop.
#
#   benches/sinks/sqlite.sh [--messages N] [--repeats R] [--help]
#   PC_HOST=path SQLITE_LOOP=path  the binaries (default target/release/...)
set -euo pipefail
# A failure inside `$( )` ends the script too (bash turns errexit off there otherwise).
shopt -s inherit_errexit
export LC_ALL=C

die() { echo "${0##*/}: error: $*" >&2; exit 1; }  # a failure: one line, status 1
usage_error() { echo "${0##*/}: error: $*" >&2; exit 2; }  # bad arguments: status 2

MESSAGES=1000000 REPEATS=3
while (($#)); do
  case "$1" in
    --messages) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage_error "--messages needs a positive integer"; MESSAGES=$2; shift 2 ;;
    --repeats)  [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage_error "--repeats needs a positive integer"; REPEATS=$2; shift 2 ;;
    -h|--help)  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *)          usage_error "unknown argument '$1' (see --help)" ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PC_HOST=${PC_HOST:-target/release/pc-host}
SQLITE_LOOP=${SQLITE_LOOP:-target/release/sqlite_loop}
[[ -x $PC_HOST ]] || die "no $PC_HOST (cargo build --release -p pc-host)"
[[ -x $SQLITE_LOOP ]] || die "no $SQLITE_LOOP (cargo build --release -p pc-benches --bin sqlite_loop)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pc-sqlite-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# json_field FILE EXPR: a value from a JSON file (python3 reads it).
json_field() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])); print($2)" "$1"; }

# pc_host_run NAME ARGS...: pc-host --rps 0 --messages N ARGS into $WORK/NAME.json (its stderr
# into NAME.err); a run that fails, or ends other than OK, stops the script with its last lines.
pc_host_run() {
  local name=$1
  shift
  if ! "$PC_HOST" "$@" --rps 0 --messages "$MESSAGES" --report-interval 0 --output json \
    >"$WORK/$name.json" 2>"$WORK/$name.err" \
    || [[ $(json_field "$WORK/$name.json" "v['result']" 2>/dev/null) != OK ]]; then
    tail -n 5 "$WORK/$name.err" >&2
    die "pc-host $* did not end OK (its last lines above)"
  fi
}

bare=() pc_default=() pc_one=()
for ((i = 1; i <= REPEATS; i++)); do
  rm -f "$WORK"/*.db*
  "$SQLITE_LOOP" --db "$WORK/bare.db" --messages "$MESSAGES" >"$WORK/bare.json" \
    || die "sqlite_loop failed (its error above)"
  bare+=("$(json_field "$WORK/bare.json" "round(v['per_s'])")")
  rm -f "$WORK"/*.db*
  pc_host_run pc --db "$WORK/pc.db"
  pc_default+=("$(json_field "$WORK/pc.json" "round(v['throughput_msgs_per_s'])")")
  rm -f "$WORK"/*.db*
  pc_host_run pc1 --db "$WORK/pc1.db" --producers 1 --consumers 1
  pc_one+=("$(json_field "$WORK/pc1.json" "round(v['throughput_msgs_per_s'])")")
  echo "round $i: bare ${bare[-1]}  pc-host ${pc_default[-1]}  pc-host 1P1C ${pc_one[-1]} msg/s" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mb=$(median "${bare[@]}") md=$(median "${pc_default[@]}") m1=$(median "${pc_one[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "cpu:     $(lscpu | sed -n 's/^Model name: *//p' | head -1) ($(nproc) CPUs)"
echo "command: benches/sinks/sqlite.sh --messages $MESSAGES --repeats $REPEATS"
printf '%-36s %12s %10s\n' "case (median of $REPEATS)" "msg/s" "vs bare"
printf '%-36s %12s %10s\n' "bare loop (sqlite_loop)" "$mb" "1.00x"
printf '%-36s %12s %10s\n' "pc-host defaults (10 P, 1 C)" "$md" "$(ratio "$md" "$mb")"
printf '%-36s %12s %10s\n' "pc-host 1 producer, 1 consumer" "$m1" "$(ratio "$m1" "$mb")"
printf 'per-round ratios (defaults / bare):'
for ((i = 0; i < REPEATS; i++)); do printf ' %s' "$(ratio "${pc_default[i]}" "${bare[i]}")"; done
echo
