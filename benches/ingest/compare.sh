#!/usr/bin/env bash
# Ingest benchmark: lines/second into SQLite from one text file, for the sqlite3 CLI's
# .import, sqlite-utils' `insert --lines`, and pc-host's `--source file:`. All tools read the
# same generated file in the same run, interleaved (A B C A B C ...) so that drift in machine
# load hits every tool alike; each run writes a fresh WAL database and is timed wall-clock,
# process start included. See --help.
set -euo pipefail
export LC_ALL=C # '.' as decimal point in $EPOCHREALTIME and awk, byte-wise sort

usage() {
  cat <<'EOF'
Usage: benches/ingest/compare.sh [--lines N] [--repeats R] [--only TOOL] [--help]

Measures lines/s into SQLite from one N-line log-like text file (default N=1000000),
running each tool R times (default 3), interleaved, each into a fresh database.
Prints per tool: median seconds, median lines/s, and the ratio to sqlite3 .import.

  --lines N     lines in the generated input file
  --repeats R   runs per tool
  --only TOOL   run one tool: sqlite3 | sqlite-utils | pc-host
  PC_HOST=path  pc-host binary (default: target/release/pc-host, from the repo root)
  TMPDIR=dir    where the input file and databases go (removed on exit)
EOF
}

die() { echo "compare.sh: error: $*" >&2; exit 1; }  # a failure: one line, status 1
usage_error() { echo "compare.sh: error: $*" >&2; exit 2; }  # bad arguments: status 2

LINES=1000000 REPEATS=3 ONLY=""
while (($#)); do
  case "$1" in
    --lines)   [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage_error "--lines needs a positive integer"; LINES=$2; shift 2 ;;
    --repeats) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage_error "--repeats needs a positive integer"; REPEATS=$2; shift 2 ;;
    --only)    [[ ${2:-} =~ ^(sqlite3|sqlite-utils|pc-host)$ ]] || usage_error "--only needs sqlite3, sqlite-utils or pc-host"; ONLY=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *)         usage_error "unknown argument '$1' (see --help)" ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/../.." # repo root, so the default PC_HOST path resolves
PC_HOST=${PC_HOST:-target/release/pc-host}
command -v sqlite3 >/dev/null || die "sqlite3 not found (apt-get install sqlite3); it also counts rows"
command -v python3 >/dev/null || die "python3 not found; it generates the input file"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ingest-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
INPUT=$WORK/input.txt

# Deterministic log-like lines, 20..200 bytes, fixed seed. Many carry commas, double quotes
# and backslashes, 1% start with a quote, so a CSV-parsing import would mangle them; none have
# leading/trailing blanks (sqlite-utils --lines strips them) nor \x1f (sqlite3's field separator).
python3 - "$LINES" "$INPUT" <<'EOF'
import random, sys
n, path = int(sys.argv[1]), sys.argv[2]
r = random.Random(42)
lv = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
svc = ["api", "auth", "billing", "ingest", "scheduler", "cache"]
words = "request user order retry timeout cache miss hit queue flush commit token expired upstream".split()
with open(path, "w") as f:
    for i in range(n):
        s = (f"2024-05-{1 + i * 30 // n:02d}T{r.randrange(24):02d}:{r.randrange(60):02d}:"
             f"{r.randrange(60):02d}.{r.randrange(1000):03d}Z {r.choice(lv)} {r.choice(svc)}"
             f"[{r.randrange(1, 9)}] req={r.getrandbits(32):08x} "
             f"GET /v1/items/{r.randrange(10**6)}?page={r.randrange(50)},size=20 "
             f'status={r.choice((200, 200, 201, 404, 500))} dur_ms={r.randrange(2000)} msg="')
        while len(s) < 200:
            s += r.choice(words) + r.choice((" ", " ", ", ", ' "q" ', " \\ "))
        if r.random() < 0.01: # a leading quote starts a quoted field for CSV readers
            s = '"' + s
        s = s[:r.randrange(20, 201)].rstrip()
        f.write(s + "x" * (20 - len(s)) + "\n") # pad the rare stripped-short line back to 20
EOF
read -r BYTES < <(wc -c < "$INPUT")
echo "input: $LINES lines, $BYTES bytes; $REPEATS run(s) per tool, interleaved; work dir $WORK" >&2

# Each run_* ingests $INPUT into fresh DB $1 and returns non-zero on failure; only the
# ingest itself is inside the timer (see timed), database preparation is not.
prep_wal() { sqlite3 "$1" 'PRAGMA journal_mode=WAL; CREATE TABLE lines(line TEXT);' >/dev/null; }

# ascii mode: no CSV quoting rules, so '"' and ',' stay data; \037 (unit separator) as field
# separator so each "\n"-terminated line is one single-column record.
run_sqlite3() {
  sqlite3 "$1" -cmd '.mode ascii' -cmd '.separator "\037" "\n"' ".import $INPUT lines"
}
# Default batch size (100 rows per transaction); WAL was set by prep_wal, which also made
# the table, so sqlite-utils' own table creation is out of the picture.
run_sqlite_utils() { sqlite-utils insert "$1" lines "$INPUT" --lines >/dev/null; }
run_pc_host() {
  "$PC_HOST" --source "file:$INPUT" --db "$1" --report-interval 0 --output json \
    >"$WORK/pc.out" 2>"$WORK/pc.err"
}

# Checks a database holds every line; prints why not and fails otherwise.
# For the `lines` table it also compares total bytes, which catches mangled quotes/commas.
verify() { # db table
  local got want=$LINES
  if [[ $2 == lines ]]; then
    got=$(sqlite3 "$1" "SELECT COUNT(*) || ' rows, ' || (COALESCE(SUM(LENGTH(CAST(line AS BLOB))), 0) + COUNT(*)) || ' bytes' FROM lines")
    want="$LINES rows, $BYTES bytes"
  else
    got=$(sqlite3 "$1" "SELECT COUNT(*) FROM $2") || { echo "cannot count $2"; return 1; }
  fi
  [[ $got == "$want" ]] || { echo "got $got, want $want"; return 1; }
}

# timed TOOL: one fresh-database run; appends its seconds to $WORK/TOOL.times.
declare -A SKIPPED=()
timed() {
  local tool=$1 db="$WORK/$1.db" t0 t1 why
  rm -f "$db" "$db-wal" "$db-shm"
  case $tool in
    sqlite3)      prep_wal "$db"; t0=$EPOCHREALTIME
                  run_sqlite3 "$db" || die "sqlite3 .import failed (exit $?)"; t1=$EPOCHREALTIME
                  why=$(verify "$db" lines) || die "sqlite3 .import: $why" ;;
    sqlite-utils) prep_wal "$db"; t0=$EPOCHREALTIME
                  run_sqlite_utils "$db" || die "sqlite-utils insert failed (exit $?)"; t1=$EPOCHREALTIME
                  why=$(verify "$db" lines) || die "sqlite-utils: $why" ;;
    pc-host)      t0=$EPOCHREALTIME
                  run_pc_host "$db" || { SKIPPED[$tool]="exit $?: $(tail -n1 "$WORK/pc.err")"; return; }
                  t1=$EPOCHREALTIME
                  why=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["stored"], d["elapsed_s"])' \
                        <"$WORK/pc.out" 2>&1) || { SKIPPED[$tool]="bad JSON on stdout: ${why##*$'\n'}"; return; }
                  echo "  pc-host own report: stored=${why% *} elapsed_s=${why#* }" >&2
                  why=$(verify "$db" messages) || { SKIPPED[$tool]="messages table: $why"; return; } ;;
  esac
  rm -f "$db" "$db-wal" "$db-shm" # keep disk use at one database at a time
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' | tee -a "$WORK/$tool.times" |
    sed "s/^/  $tool: /;s/$/ s/" >&2
}

TOOLS=()
for t in sqlite3 sqlite-utils pc-host; do [[ -z $ONLY || $ONLY == "$t" ]] && TOOLS+=("$t"); done
command -v sqlite-utils >/dev/null || SKIPPED[sqlite-utils]="not installed (pip install sqlite-utils)"
[[ -x $PC_HOST ]] || SKIPPED[pc-host]="no executable at $PC_HOST (cargo build --release -p pc-host, or set PC_HOST)"

for ((i = 1; i <= REPEATS; i++)); do
  echo "round $i/$REPEATS" >&2
  for t in "${TOOLS[@]}"; do
    if [[ -v SKIPPED[$t] ]]; then continue; fi # not `|| timed`: that would switch off set -e in it
    timed "$t"
  done
done

# Median seconds per tool (mean of the middle two when R is even), then the table.
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
[[ -s $WORK/sqlite3.times ]] && BASE=$(median "$WORK/sqlite3.times") || BASE=""
printf '\n%-14s %10s %12s %12s   (%s lines, median of %s)\n' tool median_s lines_per_s vs_import "$LINES" "$REPEATS"
for t in "${TOOLS[@]}"; do
  if [[ -v SKIPPED[$t] ]]; then echo "SKIP $t: ${SKIPPED[$t]}"; continue; fi
  awk -v t="$t" -v s="$(median "$WORK/$t.times")" -v n="$LINES" -v b="$BASE" 'BEGIN {
    printf "%-14s %10.3f %12.0f %12s\n", t, s, n / s, (b == "" ? "-" : sprintf("%.2fx", b / s)) }'
done
