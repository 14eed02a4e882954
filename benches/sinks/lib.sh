# Shared by the sink benchmarks (postgres.sh, mysql.sh); sourced, not run. Each round times
# the server's own bulk load and pc-host with 1, 2 and 4 consumers, interleaved, each run into
# a fresh database; then a paced pc-host run per consumer count; then the medians.
#
# The sourcing script sets URL_HELP (its lines of --help about --url) and URL (the default)
# before parse_options; then it defines drop_db and create_db (the scratch database
# $BENCH_DB), dump_rows FILE (pc-host's rows as the bulk tool loads them), bulk_table (creates
# messages_copy), bulk_load (loads $WORK/rows.tsv into it) and count_rows TABLE, and sets
# DB_URL (the scratch database's URL), BULK (the bulk case's name) and BULK_NAME (its label).

export LC_ALL=C # '.' as decimal point in $EPOCHREALTIME and awk

die() { echo "${0##*/}: error: $*" >&2; exit 1; }  # a failure: one line, status 1
usage_error() { echo "${0##*/}: error: $*" >&2; exit 2; }  # bad arguments: status 2

# The help: the script's own lines about --url ($URL_HELP) among the shared ones.
usage() {
  local name="benches/sinks/${0##*/}"
  printf 'Usage: %s [--url URL] [--messages N] [--repeats R] [--producers P]\n' "$name"
  printf '       %*s [--rate RPS] [--duration S] [--help]\n\n%s\n' "${#name}" '' "$URL_HELP"
  cat <<'EOF'
  --messages N   rows per bulk run (default 1000000)
  --repeats R    runs per case, interleaved; medians are reported (default 3)
  --producers P  pc-host generator threads (default 4)
  --rate RPS     target rate of the paced runs (default 100000)
  --duration S   seconds of each paced run (default 5)
  PC_HOST=path   pc-host binary (default: target/release/pc-host, from the repo root)
  TMPDIR=dir     where the exported rows go (removed on exit)
EOF
}

# parse_options ARGS...: sets URL (default: $URL as set before), MESSAGES, REPEATS,
# PRODUCERS, RATE, DURATION; --help prints usage and exits.
parse_options() {
  MESSAGES=1000000 REPEATS=3 PRODUCERS=4 RATE=100000 DURATION=5
  CONSUMERS=(1 2 4)
  local posint='^[1-9][0-9]*$'
  while (($#)); do
    case "$1" in
      --url)       [[ -n ${2:-} ]] || usage_error "--url needs a URL"; URL=$2; shift 2 ;;
      --messages)  [[ ${2:-} =~ $posint ]] || usage_error "--messages needs a positive integer"; MESSAGES=$2; shift 2 ;;
      --repeats)   [[ ${2:-} =~ $posint ]] || usage_error "--repeats needs a positive integer"; REPEATS=$2; shift 2 ;;
      --producers) [[ ${2:-} =~ $posint ]] || usage_error "--producers needs a positive integer"; PRODUCERS=$2; shift 2 ;;
      --rate)      [[ ${2:-} =~ $posint ]] || usage_error "--rate needs a positive integer"; RATE=$2; shift 2 ;;
      --duration)  [[ ${2:-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage_error "--duration needs seconds"; DURATION=$2; shift 2 ;;
      -h|--help)   usage; exit 0 ;;
      *)           usage_error "unknown argument '$1' (see --help)" ;;
    esac
  done
}

# Goes to the repo root (so the default PC_HOST path resolves) and checks pc-host and python3.
need_pc_host() {
  cd "$(dirname "${BASH_SOURCE[0]}")/../.."
  PC_HOST=${PC_HOST:-target/release/pc-host}
  [[ -x $PC_HOST ]] || die "no executable at $PC_HOST (cargo build --release -p pc-host, or set PC_HOST)"
  command -v python3 >/dev/null || die "python3 not found; it reads pc-host's JSON summary"
}

# start_work PREFIX: the scratch directory $WORK and the scratch database $BENCH_DB, both
# removed on exit.
start_work() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  BENCH_DB=pc_bench_$$
  trap cleanup EXIT
}
cleanup() { drop_db || true; rm -rf "$WORK"; }
fresh_db() { drop_db; create_db; }

pc_run() { # JSON-FILE ARGS...: one pc-host run into $DB_URL, its JSON summary to the file
  local out=$1; shift
  "$PC_HOST" --sink "$DB_URL" --producers "$PRODUCERS" --report-interval 0 --output json "$@" \
    >"$out" 2>"$WORK/pc.err" || die "pc-host failed (exit $?): $(tail -n1 "$WORK/pc.err")"
}
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

# export_rows FORMAT: the rows the bulk tool loads, exported from a pc-host run (so both load
# the same text), to $WORK/rows.tsv.
export_rows() {
  fresh_db
  pc_run "$WORK/export.json" --consumers 1 --rps 0 --messages "$MESSAGES"
  dump_rows "$WORK/rows.tsv"
  read -r BYTES < <(wc -c < "$WORK/rows.tsv")
  echo "rows: $MESSAGES ($BYTES bytes as $1 text); $REPEATS run(s) per case, interleaved; db $BENCH_DB" >&2
}

# timed CASE: one run into a fresh database; appends its seconds to $WORK/CASE.times.
timed() {
  local case=$1 t0 t1 got
  fresh_db
  if [[ $case == "$BULK" ]]; then
    bulk_table
    t0=$EPOCHREALTIME
    bulk_load
    t1=$EPOCHREALTIME
    got=$(count_rows messages_copy)
  else
    t0=$EPOCHREALTIME
    pc_run "$WORK/$case.json" --consumers "${case#c}" --rps 0 --messages "$MESSAGES"
    t1=$EPOCHREALTIME
    got=$(count_rows messages)
  fi
  [[ $got == "$MESSAGES" ]] || die "$case stored $got rows, want $MESSAGES"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' | tee -a "$WORK/$case.times" |
    sed "s/^/  $case: /;s/$/ s/" >&2
}

# paced C: one --rps run with C consumers; appends "achieved_rps p99_ms" to $WORK/rate-cC.
paced() {
  fresh_db
  pc_run "$WORK/rate.json" --consumers "$1" --rps "$RATE" --duration "$DURATION"
  field "$WORK/rate.json" '"%.0f %.3f" % (d["achieved_rps"], d["latency_ns"]["p99"] / 1e6)' |
    tee -a "$WORK/rate-c$1" | sed "s/^/  rate c$1: /" >&2
}

# The rounds: every case timed, then the paced runs, $REPEATS times.
run_rounds() {
  local i case c
  CASES=("$BULK")
  for c in "${CONSUMERS[@]}"; do CASES+=("c$c"); done
  for ((i = 1; i <= REPEATS; i++)); do
    echo "round $i/$REPEATS" >&2
    for case in "${CASES[@]}"; do timed "$case"; done
    for c in "${CONSUMERS[@]}"; do paced "$c"; done
  done
}

# Median of a column (mean of the middle two when R is even).
median() { awk -v k="${2:-1}" '{ print $k }' "$1" | sort -g |
  awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The medians: each case against the bulk tool, then the paced runs.
report() {
  local base case name c
  base=$(median "$WORK/$BULK.times")
  printf '\n%-22s %10s %12s %10s   (%s rows, median of %s)\n' case median_s rows_per_s "vs_$BULK" "$MESSAGES" "$REPEATS"
  for case in "${CASES[@]}"; do
    name=$BULK_NAME; [[ $case == "$BULK" ]] || name="pc-host consumers ${case#c}"
    NAME=$name awk -v s="$(median "$WORK/$case.times")" -v n="$MESSAGES" -v b="$base" 'BEGIN {
      printf "%-22s %10.3f %12.0f %9.2fx\n", ENVIRON["NAME"], s, n / s, b / s }'
  done
  printf '\n%-22s %12s %12s   (--rps %s --duration %s, median of %s)\n' paced achieved_rps p99_ms "$RATE" "$DURATION" "$REPEATS"
  for c in "${CONSUMERS[@]}"; do
    printf '%-22s %12s %12s\n' "pc-host consumers $c" "$(median "$WORK/rate-c$c" 1)" "$(median "$WORK/rate-c$c" 2)"
  done
}
