#!/usr/bin/env bash
# MySQL / MariaDB sink benchmark: rows/s of pc-host's generator into the server with 1, 2 and
# 4 consumers (--rps 0 --messages N), against the same rows loaded by the server's own bulk
# path, LOAD DATA LOCAL INFILE (through the mariadb/mysql client), into a table of the same
# definition, in the same run, interleaved (load c1 c2 c4 load c1 c2 c4 ...) so that drift in
# machine load hits every case alike; each run gets a fresh database and is timed wall-clock,
# process start included. Then a paced run per consumer count (--rps RATE --duration S):
# achieved rate and p99 latency. See --help.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

URL_HELP='  --url URL      a database on the server to benchmark, mysql://USER[:PASSWORD]@HOST[:PORT]/DB;
                 scratch databases pc_bench_* are created and dropped beside it (default
                 $PC_BENCH_MYSQL_URL, else mysql://root@127.0.0.1:3306/test); the user needs
                 CREATE and DROP, and the server local_infile=ON'
URL=${PC_BENCH_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}
parse_options "$@"
# The URL's parts for the client: [mysql|mariadb]://[USER[:PASSWORD]@]HOST[:PORT]/DB[?..].
[[ $URL =~ ^(mysql|mariadb)://(([^:@/]*)(:([^@/]*))?@)?([^:/?]+)(:([0-9]+))?/([^/?]+)(\?.*)?$ ]] ||
  usage_error "--url: want mysql://USER[:PASSWORD]@HOST[:PORT]/DB, got something else"
need_pc_host
CLIENT=$(command -v mariadb || command -v mysql) ||
  die "no mariadb or mysql client (apt-get install mariadb-client)"

USER_=${BASH_REMATCH[3]:-root} HOST=${BASH_REMATCH[6]} PORT=${BASH_REMATCH[8]:-3306}
DB=${BASH_REMATCH[9]} QUERY=${BASH_REMATCH[10]}
export MYSQL_PWD=${BASH_REMATCH[5]} # the client reads it; it stays out of `ps`
SERVER="${BASH_REMATCH[1]}://${BASH_REMATCH[2]}$HOST${BASH_REMATCH[7]}" # up to the database
SHOWN="${BASH_REMATCH[1]}://${BASH_REMATCH[3]}${BASH_REMATCH[4]:+:***}${BASH_REMATCH[2]:+@}$HOST${BASH_REMATCH[7]}/$DB"
sql() { # DB SQL: runs SQL in DB, rows tab-separated on stdout, special characters escaped
  "$CLIENT" --protocol=TCP -h "$HOST" -P "$PORT" -u "$USER_" --local-infile=1 -B -N "$1" -e "$2"
}
sql "$DB" 'SELECT 1' >/dev/null || die "cannot connect to $SHOWN"

start_work mysql-bench
DB_URL=$SERVER/$BENCH_DB$QUERY
drop_db() { sql "$DB" "DROP DATABASE IF EXISTS $BENCH_DB"; }
create_db() { sql "$DB" "CREATE DATABASE $BENCH_DB"; }

# The bulk tool, LOAD DATA LOCAL INFILE, into pc-host's `messages` as a twin: same columns,
# keys and engine.
COLUMNS="message, created_at, producer, seq, run_id"
BULK=load BULK_NAME='LOAD DATA LOCAL'
bulk_table() {
  sql "$BENCH_DB" "CREATE TABLE messages_copy (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, message LONGTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL, producer INT NOT NULL, seq BIGINT NOT NULL,
    run_id BIGINT NOT NULL, UNIQUE KEY (run_id, producer, seq)
  ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
}
bulk_load() {
  sql "$BENCH_DB" "LOAD DATA LOCAL INFILE '$WORK/rows.tsv' INTO TABLE messages_copy
                   CHARACTER SET utf8mb4 ($COLUMNS)"
}
# The client's batch mode escapes tab, newline, backslash and NUL as LOAD DATA reads them.
dump_rows() { sql "$BENCH_DB" "SELECT $COLUMNS FROM messages ORDER BY id" >"$1"; }
count_rows() { sql "$BENCH_DB" "SELECT COUNT(*) FROM $1"; }

export_rows 'LOAD DATA'
run_rounds
report
