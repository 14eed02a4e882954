#!/usr/bin/env bash
# PostgreSQL sink benchmark: rows/s of pc-host's generator into PostgreSQL with 1, 2 and 4
# consumers (--rps 0 --messages N), against the same rows loaded by psql's \copy into a table
# of the same definition, in the same run, interleaved (copy c1 c2 c4 copy c1 c2 c4 ...) so
# that drift in machine load hits every case alike; each run gets a fresh database and is
# timed wall-clock, process start included. Then a paced run per consumer count
# (--rps RATE --duration S): achieved rate and p99 latency. See --help.
set -euo pipefail
export LC_ALL=C # '.' as decimal point in $EPOCHREALTIME and awk

usage() {
  cat <<'EOF'
Usage: benches/sinks/postgres.sh [--url URL] [--messages N] [--repeats R] [--producers P]
                                 [--rate RPS] [--duration S] [--help]

  --url URL      a database on the server to benchmark; scratch databases pc_bench_* are
                 created and dropped beside it (default $PC_BENCH_POSTGRES_URL, else
                 postgres://postgres@127.0.0.1:5432/test); the user needs CREATEDB
  --messages N   rows per bulk run (default 1000000)
  --repeats R    runs per case, interleaved; medians are reported (default 3)
  --producers P  pc-host generator threads (default 4)
  --rate RPS     target rate of the paced runs (default 100000)
  --duration S   seconds of each paced run (default 5)
  PC_HOST=path   pc-host binary (default: target/release/pc-host, from the repo root)
  TMPDIR=dir     where the exported rows go (removed on exit)
EOF
}

die() { echo "postgres.sh: error: $*" >&2; exit 1; }

URL=${PC_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
MESSAGES=1000000 REPEATS=3 PRODUCERS=4 RATE=100000 DURATION=5
CONSUMERS=(1 2 4)
posint='^[1-9][0-9]*$'
while (($#)); do
  case "$1" in
    --url)       [[ -n ${2:-} ]] || die "--url needs a URL"; URL=$2; shift 2 ;;
    --messages)  [[ ${2:-} =~ $posint ]] || die "--messages needs a positive integer"; MESSAGES=$2; shift 2 ;;
    --repeats)   [[ ${2:-} =~ $posint ]] || die "--repeats needs a positive integer"; REPEATS=$2; shift 2 ;;
    --producers) [[ ${2:-} =~ $posint ]] || die "--producers needs a positive integer"; PRODUCERS=$2; shift 2 ;;
    --rate)      [[ ${2:-} =~ $posint ]] || die "--rate needs a positive integer"; RATE=$2; shift 2 ;;
    --duration)  [[ ${2:-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration needs seconds"; DURATION=$2; shift 2 ;;
    -h|--help)   usage; exit 0 ;;
    *)           die "unknown argument '$1' (see --help)" ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/../.." # repo root, so the default PC_HOST path resolves
PC_HOST=${PC_HOST:-target/release/pc-host}
[[ -x $PC_HOST ]] || die "no executable at $PC_HOST (cargo build --release -p pc-host, or set PC_HOST)"
command -v psql >/dev/null || die "psql not found (apt-get install postgresql-client)"
command -v python3 >/dev/null || die "python3 not found; it reads pc-host's JSON summary"
psql -X -q -v ON_ERROR_STOP=1 "$URL" -c 'SELECT 1' >/dev/null || die "cannot connect to $URL"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pg-bench.XXXXXX")
BENCH_DB=pc_bench_$$
# $URL with its database replaced by the scratch one (parameters kept).
base=${URL%%\?*} query=${URL#"$base"}
DB_URL=${base%/*}/$BENCH_DB$query
admin() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 "$URL" -c "$1" >/dev/null; }
in_db() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$DB_URL" -c "$1"; }
fresh_db() { admin "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)"; admin "CREATE DATABASE $BENCH_DB"; }
cleanup() { admin "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" || true; rm -rf "$WORK"; }
trap cleanup EXIT

# The bulk tool's table: pc-host's `messages`, same columns, keys and index.
COPY_TABLE="CREATE TABLE messages_copy (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, message TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL, producer INT NOT NULL, seq BIGINT NOT NULL,
  run_id BIGINT NOT NULL, UNIQUE (run_id, producer, seq))"
COLUMNS="message, created_at, producer, seq, run_id"

pc_run() { # JSON-FILE ARGS...: one pc-host run into $DB_URL, its JSON summary to the file
  local out=$1; shift
  "$PC_HOST" --sink "$DB_URL" --producers "$PRODUCERS" --report-interval 0 --output json "$@" \
    >"$out" 2>"$WORK/pc.err" || die "pc-host failed (exit $?): $(tail -n1 "$WORK/pc.err")"
}
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

# The rows \copy loads: exported from a pc-host run, so both load the same text.
fresh_db
pc_run "$WORK/export.json" --consumers 1 --rps 0 --messages "$MESSAGES"
in_db "\\copy (SELECT $COLUMNS FROM messages ORDER BY id) TO '$WORK/rows.tsv'"
read -r BYTES < <(wc -c < "$WORK/rows.tsv")
echo "rows: $MESSAGES ($BYTES bytes as COPY text); $REPEATS run(s) per case, interleaved; db $BENCH_DB" >&2

# timed CASE: one run into a fresh database; appends its seconds to $WORK/CASE.times.
timed() {
  local case=$1 t0 t1 got
  fresh_db
  case $case in
    copy) in_db "$COPY_TABLE" >/dev/null
          t0=$EPOCHREALTIME
          in_db "\\copy messages_copy ($COLUMNS) FROM '$WORK/rows.tsv'" >/dev/null
          t1=$EPOCHREALTIME
          got=$(in_db "SELECT count(*) FROM messages_copy") ;;
    c*)   t0=$EPOCHREALTIME
          pc_run "$WORK/$case.json" --consumers "${case#c}" --rps 0 --messages "$MESSAGES"
          t1=$EPOCHREALTIME
          got=$(in_db "SELECT count(*) FROM messages") ;;
  esac
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

CASES=(copy)
for c in "${CONSUMERS[@]}"; do CASES+=("c$c"); done
for ((i = 1; i <= REPEATS; i++)); do
  echo "round $i/$REPEATS" >&2
  for case in "${CASES[@]}"; do timed "$case"; done
  for c in "${CONSUMERS[@]}"; do paced "$c"; done
done

# Median of a column (mean of the middle two when R is even).
median() { awk -v k="${2:-1}" '{ print $k }' "$1" | sort -g |
  awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
BASE=$(median "$WORK/copy.times")
printf '\n%-22s %10s %12s %10s   (%s rows, median of %s)\n' case median_s rows_per_s vs_copy "$MESSAGES" "$REPEATS"
for case in "${CASES[@]}"; do
  name='psql \copy'; [[ $case == copy ]] || name="pc-host consumers ${case#c}"
  NAME=$name awk -v s="$(median "$WORK/$case.times")" -v n="$MESSAGES" -v b="$BASE" 'BEGIN {
    printf "%-22s %10.3f %12.0f %9.2fx\n", ENVIRON["NAME"], s, n / s, b / s }'
done
printf '\n%-22s %12s %12s   (--rps %s --duration %s, median of %s)\n' paced achieved_rps p99_ms "$RATE" "$DURATION" "$REPEATS"
for c in "${CONSUMERS[@]}"; do
  printf '%-22s %12s %12s\n' "pc-host consumers $c" "$(median "$WORK/rate-c$c" 1)" "$(median "$WORK/rate-c$c" 2)"
done
