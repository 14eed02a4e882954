#!/usr/bin/env bash
# Priority lanes under overload: pc-host's generator asking FACTOR x (default 3x) what the sink
# can store, with `--lanes high:1,low:9` and without lanes, rounds interleaved, each into a fresh
# SQLite database. The sink is made slow and steady: `--synchronous full` (an fsync per commit)
# and small transactions (`--batch-size`), with few consumers (a consumer holds the batch it
# popped until it commits, so each one adds up to a commit to what a record waits).
#
# First the sink's capacity: `--rps 0` runs with the same sink settings, median msg/s. Then each
# round runs both cases at RATE = FACTOR x capacity for DURATION seconds and prints:
#   lanes     high's p99 (a tenth of the records: its own producers and token bucket) and
#             low's p99 (it absorbs the backlog)
#   no lanes  the p99 of all records: one FIFO ring, so the records that would be high wait
#             behind the same backlog as the rest (their p99 is the run's p99)
# Every run must be OK with every record stored (per lane too), or the script fails.
#
#   benches/lanes/overload.sh [--duration S] [--repeats R] [--factor F] [--batch-size B]
#                             [--consumers C] [--help]
#   PC_HOST=path  the binary (default target/release/pc-host, from the repo root)
#   TMPDIR=dir    where the databases go (removed on exit; use a real disk: fsync must cost)
set -euo pipefail
export LC_ALL=C

die() { echo "${0##*/}: error: $*" >&2; exit 1; }  # a failure: one line, status 1
usage_error() { echo "${0##*/}: error: $*" >&2; exit 2; }  # bad arguments: status 2

DURATION=10 REPEATS=3 FACTOR=3 BATCH=100 CONSUMERS=1
posint='^[1-9][0-9]*$' number='^[0-9]+(\.[0-9]+)?$'
while (($#)); do
  case "$1" in
    --duration)   [[ ${2:-} =~ $number ]] || usage_error "--duration needs seconds"; DURATION=$2; shift 2 ;;
    --repeats)    [[ ${2:-} =~ $posint ]] || usage_error "--repeats needs a positive integer"; REPEATS=$2; shift 2 ;;
    --factor)     [[ ${2:-} =~ $number ]] || usage_error "--factor needs a number"; FACTOR=$2; shift 2 ;;
    --batch-size) [[ ${2:-} =~ $posint ]] || usage_error "--batch-size needs a positive integer"; BATCH=$2; shift 2 ;;
    --consumers)  [[ ${2:-} =~ $posint ]] || usage_error "--consumers needs a positive integer"; CONSUMERS=$2; shift 2 ;;
    -h|--help)    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *)            usage_error "unknown argument '$1' (see --help)" ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PC_HOST=${PC_HOST:-target/release/pc-host}
[[ -x $PC_HOST ]] || die "no $PC_HOST (cargo build --release -p pc-host, or set PC_HOST)"
command -v python3 >/dev/null || die "python3 not found; it reads pc-host's JSON summary"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pc-lanes-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# json_field FILE EXPR: a value from a JSON summary (python3 reads it as v).
json_field() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])); print($2)" "$1"; }
# One page size for every run: the default follows --rps, and the capacity runs (--rps 0) and
# the overload runs (3x that capacity, which may be under 50k msg/s) must write alike.
SINK=(--synchronous full --page-size 16384 --batch-size "$BATCH" --consumers "$CONSUMERS" --report-interval 0 --output json)

# pc NAME ARGS...: one run into a fresh database; its summary in $WORK/NAME.json, checked.
pc() {
  local name=$1; shift
  rm -f "$WORK"/*.db*
  "$PC_HOST" --db "$WORK/$name.db" "${SINK[@]}" "$@" >"$WORK/$name.json" 2>"$WORK/$name.err" \
    || die "pc-host $name failed: $(tail -n1 "$WORK/$name.err")"
  [[ $(json_field "$WORK/$name.json" "v['result']") == OK ]] || die "pc-host $name not OK"
  [[ $(json_field "$WORK/$name.json" \
    "all(l['produced'] == l['stored'] for l in v.get('lanes', {}).values())") == True ]] \
    || die "pc-host $name: a lane's produced != stored"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
p99_ms() { json_field "$1" "round($2['latency_ns']['p99'] / 1e6, 3)"; }

capacity=()
for ((i = 1; i <= REPEATS; i++)); do
  pc capacity --rps 0 --duration "$DURATION"
  capacity+=("$(json_field "$WORK/capacity.json" "round(v['throughput_msgs_per_s'])")")
  echo "capacity run $i: ${capacity[-1]} msg/s stored" >&2
done
CAP=$(median "${capacity[@]}")
RATE=$(awk -v c="$CAP" -v f="$FACTOR" 'BEGIN { printf "%d", c * f }')
((RATE >= 2)) || die "measured capacity $CAP msg/s is too low to split a rate across two lanes"

high=() low=() plain=()
for ((i = 1; i <= REPEATS; i++)); do
  pc lanes --lanes high:1,low:9 --rps "$RATE" --duration "$DURATION"
  high+=("$(p99_ms "$WORK/lanes.json" "v['lanes']['high']")")
  low+=("$(p99_ms "$WORK/lanes.json" "v['lanes']['low']")")
  pc plain --rps "$RATE" --duration "$DURATION"
  plain+=("$(p99_ms "$WORK/plain.json" "v")")
  echo "round $i: lanes high p99 ${high[-1]} ms, low p99 ${low[-1]} ms; no lanes p99 ${plain[-1]} ms" >&2
done

echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "cpu:      $(lscpu | sed -n 's/^Model name: *//p' | head -1) ($(nproc) CPUs)"
echo "command:  benches/lanes/overload.sh --duration $DURATION --repeats $REPEATS --factor $FACTOR --batch-size $BATCH --consumers $CONSUMERS"
echo "sink:     SQLite, synchronous=full, batches of up to $BATCH rows, $CONSUMERS consumer(s)"
echo "capacity: $CAP msg/s (median of $REPEATS --rps 0 runs); offered: $RATE msg/s (${FACTOR}x)"
printf '%-34s %14s %14s\n' "p99 latency, ms (median of $REPEATS)" "high (10%)" "low / all"
printf '%-34s %14s %14s\n' "--lanes high:1,low:9" "$(median "${high[@]}")" "$(median "${low[@]}")"
printf '%-34s %14s %14s\n' "no lanes (one ring)" "$(median "${plain[@]}")" "$(median "${plain[@]}")"
printf 'per round, high p99 with lanes / p99 without:'
for ((i = 0; i < REPEATS; i++)); do printf ' %s / %s' "${high[i]}" "${plain[i]}"; done
echo
