#!/usr/bin/env bash
# PostgreSQL sink benchmark: rows/s of pc-host's generator into PostgreSQL with 1, 2 and 4
# consumers (--rps 0 --messages N), against the same rows loaded by psql's \copy into a table
# of the same definition, in the same run, interleaved (copy c1 c2 c4 copy c1 c2 c4 ...) so
# that drift in machine load hits every case alike; each run gets a fresh database and is
# timed wall-clock, process start included. Then a paced run per consumer count
# (--rps RATE --duration S): achieved rate and p99 latency. See --help.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

URL_HELP='  --url URL      a database on the server to benchmark; scratch databases pc_bench_* are
                 created and dropped beside it (default $PC_BENCH_POSTGRES_URL, else
                 postgres://postgres@127.0.0.1:5432/test); the user needs CREATEDB'
URL=${PC_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
parse_options "$@"
need_pc_host
command -v psql >/dev/null || die "psql not found (apt-get install postgresql-client)"
psql -X -q -v ON_ERROR_STOP=1 "$URL" -c 'SELECT 1' >/dev/null || die "cannot connect to $URL"

start_work pg-bench
# $URL with its database replaced by the scratch one (parameters kept).
base=${URL%%\?*} query=${URL#"$base"}
DB_URL=${base%/*}/$BENCH_DB$query
admin() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 "$URL" -c "$1" >/dev/null; }
in_db() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$DB_URL" -c "$1"; }
drop_db() { admin "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)"; }
create_db() { admin "CREATE DATABASE $BENCH_DB"; }

# The bulk tool, psql's \copy, into pc-host's `messages` as a twin: same columns, keys, index.
COLUMNS="message, created_at, producer, seq, run_id"
BULK=copy BULK_NAME='psql \copy'
bulk_table() {
  in_db "CREATE TABLE messages_copy (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, message TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, producer INT NOT NULL, seq BIGINT NOT NULL,
    run_id BIGINT NOT NULL, UNIQUE (run_id, producer, seq))" >/dev/null
}
bulk_load() { in_db "\\copy messages_copy ($COLUMNS) FROM '$WORK/rows.tsv'" >/dev/null; }
dump_rows() { in_db "\\copy (SELECT $COLUMNS FROM messages ORDER BY id) TO '$1'"; }
count_rows() { in_db "SELECT count(*) FROM $1"; }

export_rows COPY
run_rounds
report
