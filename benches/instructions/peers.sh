#!/usr/bin/env bash
# Instructions per single-thread push+pop, for pc and every peer of `compare`, counted by
# valgrind's callgrind: a figure that repeats exactly on a noisy machine (timings do not) and
# says how much work each queue does per operation, apart from what that work costs in time
# (a locked instruction counts one, like any other).
#
# Builds `compare` with v0 symbol mangling (so each instantiation of the measuring loop is named
# after its queue type) into its own target dir, runs `compare --only single-thread --repeats 1`
# once under callgrind, counting only inside the loop (`single_thread_pairs`, from the first
# push to the last pop), and prints a table: queue type, instructions per push+pop, and pc's
# count over each one's (< 1: pc does less work per operation).
#
#   benches/instructions/peers.sh [--help]
set -euo pipefail
export LC_ALL=C

die() { echo "${0##*/}: error: $*" >&2; exit 1; }  # a failure: one line, status 1
usage_error() { echo "${0##*/}: error: $*" >&2; exit 2; }  # bad arguments: status 2

case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) usage_error "unknown argument '$1' (see --help)" ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
command -v callgrind_annotate >/dev/null || die "callgrind_annotate is not installed (it comes with valgrind)"
# The loop's pair count, from the source it is compiled from.
PAIRS=$(sed -n 's/^ *const PAIRS: u64 = \([0-9_]*\);.*/\1/p' benches/src/bin/compare.rs | tr -d _)
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || die "could not read PAIRS from benches/src/bin/compare.rs"

TARGET=target/instructions
RUSTFLAGS="-Csymbol-mangling-version=v0" CARGO_TARGET_DIR=$TARGET \
  cargo build -q --release -p pc-benches --bin compare
OUT=$TARGET/callgrind.single.out
valgrind --tool=callgrind --callgrind-out-file="$OUT" --toggle-collect='*single_thread_pairs*' \
  "$TARGET/release/compare" --only single-thread --repeats 1 >/dev/null 2>"$TARGET/valgrind.log" \
  || die "callgrind failed (see $TARGET/valgrind.log)"

# One inclusive total per instantiation: the first line naming the loop (the inclusive listing
# comes before any per-file detail).
callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$OUT" \
  | sed -n 's/^ *\([0-9,]*\) .*harness\.rs:[a-z_:]*single_thread_pairs::<pc_benches::ring::\([A-Za-z]*\)>.*/\2 \1/p' \
  | tr -d , \
  | awk -v pairs="$PAIRS" -v cmd="compare --only single-thread --repeats 1" '
      seen[$1]++ { next }
      { n++; name[n] = $1; per[n] = $2 / pairs; if ($1 == "Pc") pc = per[n] }
      END {
        if (n == 0 || pc == "") { print "no per-queue totals found in the callgrind output" > "/dev/stderr"; exit 1 }
        printf "Instructions per single-thread push+pop (%s pairs, `%s` under callgrind)\n\n", pairs, cmd
        print "| queue | instructions per push+pop | pc / this |"
        print "|---|---:|---:|"
        # Fewest first.
        for (i = 1; i <= n; i++) order[i] = i
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
          if (per[order[j]] < per[order[i]]) { t = order[i]; order[i] = order[j]; order[j] = t }
        for (k = 1; k <= n; k++) { i = order[k]; printf "| %s | %.1f | %.2f |\n", name[i], per[i], pc / per[i] }
      }'
echo
echo "Where they go: callgrind_annotate $OUT"
