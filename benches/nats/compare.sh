#!/usr/bin/env bash
# NATS JetStream benchmark: messages/s of producer -> JetStream -> consumer -> SQLite with
# pc-host on both ends, next to a bare async-nats publish/consume loop (nats_loop: no pc, no
# database) in the same run, interleaved per round (baseline, pc-host, baseline, pc-host ...)
# so that drift in machine load hits both alike; each side gets a fresh stream (deleted after
# the round) and pc-host a fresh SQLite database. The ratio pc-host / baseline shows what
# pc's part costs. With --tier instead: pc-host publishing at --rate for --duration while a
# pc-host consumer reads the stream into SQLite at the same time: achieved rate and p99 of
# both sides. See --help. Run it alone on a quiet machine.
set -euo pipefail
export LC_ALL=C # '.' as decimal point in awk and printf

usage() {
  cat <<'EOF'
Usage: benches/nats/compare.sh [--url URL] [--messages N] [--repeats R] [--payload BYTES]
                               [--pc-consumers C] [--help]
       benches/nats/compare.sh --tier [--url URL] [--rate RPS] [--duration S]
                               [--producers P] [--repeats R] [--payload BYTES] [--help]

Default mode, per round: the baseline (nats_loop publish N, then nats_loop consume N) and
pc-host (--producers 2 --rps 0 --messages N into JetStream, then --source nats://...
?until=empty into a fresh SQLite database). Publish rate: nats_loop's per_s, pc-host's
throughput_msgs_per_s (stored / elapsed_s); consume rate: nats_loop's per_s, pc-host's
stored / elapsed_s. Prints the medians and the ratios pc-host / baseline. pc-host's
elapsed_s includes its last until=empty check (about 0.1 s: small at 1000000 messages, large
at a few thousand); its stream also holds one more message, the run's end.

--tier: pc-host --rps RPS --duration S --producers P publishing while a pc-host consumer
(--source nats://STREAM, no until=empty) stores into SQLite; once the publisher ends, the
consumer is stopped with SIGINT as soon as the stream's consumer has nothing pending and
nothing unacknowledged. Prints achieved rate and p99 of both sides (medians).

  --url URL          NATS server (default $PC_BENCH_NATS_URL, else nats://127.0.0.1:4222)
  --messages N       messages per run (default 1000000)
  --repeats R        rounds, interleaved; medians are reported (default 3)
  --payload BYTES    message size: nats_loop --payload, pc-host --payload-size (default 64)
  --pc-consumers C   pc-host publisher's --consumers (default: pc-host's own, 5)
  --tier             the paced run instead (see above)
  --rate RPS         --tier: publisher's --rps (default 100000)
  --duration S       --tier: publisher's --duration (default 5)
  --producers P      --tier: publisher's --producers (default 4)
  PC_HOST=path       pc-host binary (default target/release/pc-host, from the repo root)
  NATS_LOOP=path     nats_loop binary (default target/release/nats_loop; build it with
                     cargo build --release -p pc-benches --bin nats_loop)
  TMPDIR=dir         where the databases go (removed on exit)
Streams PCB_<pid>_* (subjects pcbench.<pid>.*) are created on the server and deleted.
EOF
}

die() { echo "compare.sh: error: $*" >&2; exit 1; }  # a failure: one line, status 1
usage_error() { echo "compare.sh: error: $*" >&2; exit 2; }  # bad arguments: status 2

COMMAND="benches/nats/compare.sh $*"
URL=${PC_BENCH_NATS_URL:-nats://127.0.0.1:4222}
MESSAGES=1000000 REPEATS=3 PAYLOAD=64 PC_CONSUMERS="" TIER=0 RATE=100000 DURATION=5 PRODUCERS=4
posint='^[1-9][0-9]*$'
while (($#)); do
  case "$1" in
    --url)          [[ -n ${2:-} ]] || usage_error "--url needs a URL"; URL=$2; shift 2 ;;
    --messages)     [[ ${2:-} =~ $posint ]] || usage_error "--messages needs a positive integer"; MESSAGES=$2; shift 2 ;;
    --repeats)      [[ ${2:-} =~ $posint ]] || usage_error "--repeats needs a positive integer"; REPEATS=$2; shift 2 ;;
    --payload)      [[ ${2:-} =~ ^[0-9]+$ ]] || usage_error "--payload needs bytes"; PAYLOAD=$2; shift 2 ;;
    --pc-consumers) [[ ${2:-} =~ $posint ]] || usage_error "--pc-consumers needs a positive integer"; PC_CONSUMERS=$2; shift 2 ;;
    --tier)         TIER=1; shift ;;
    --rate)         [[ ${2:-} =~ $posint ]] || usage_error "--rate needs a positive integer"; RATE=$2; shift 2 ;;
    --duration)     [[ ${2:-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage_error "--duration needs seconds"; DURATION=$2; shift 2 ;;
    --producers)    [[ ${2:-} =~ $posint ]] || usage_error "--producers needs a positive integer"; PRODUCERS=$2; shift 2 ;;
    -h|--help)      usage; exit 0 ;;
    *)              usage_error "unknown argument '$1' (see --help)" ;;
  esac
done

URL=${URL%/}
cd "$(dirname "${BASH_SOURCE[0]}")/../.." # repo root, so the default binary paths resolve
PC_HOST=${PC_HOST:-target/release/pc-host}
NATS_LOOP=${NATS_LOOP:-target/release/nats_loop}
[[ -x $PC_HOST ]] || die "no executable at $PC_HOST (cargo build --release -p pc-host, or set PC_HOST)"
[[ -x $NATS_LOOP ]] || die "no executable at $NATS_LOOP (cargo build --release -p pc-benches --bin nats_loop, or set NATS_LOOP)"
command -v python3 >/dev/null || die "python3 not found; it reads the JSON summaries"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nats-bench.XXXXXX")
STREAMS=() CONSUMER_PID=""
cleanup() {
  [[ -z $CONSUMER_PID ]] || kill "$CONSUMER_PID" 2>/dev/null || true
  for s in "${STREAMS[@]}"; do "$NATS_LOOP" delete --url "$URL" --stream "$s" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
"$NATS_LOOP" delete --url "$URL" --stream "PCB_$$_ping" 2>"$WORK/ping.err" ||
  die "NATS server $URL: $(tail -n1 "$WORK/ping.err")"

# field FILE EXPR: EXPR evaluated over the JSON in FILE as d.
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }
# Median of a column (mean of the middle two when R is even).
median() { awk -v k="${2:-1}" '{ print $k }' "$1" | sort -g |
  awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# note FILE LABEL VALUE...: appends the values as one line to $WORK/FILE and logs them.
note() { local f=$1 label=$2; shift 2; echo "$*" >>"$WORK/$f"; echo "  $label: $*" >&2; }

# pc FILE ARGS...: one pc-host run, its JSON summary to $WORK/FILE; fails unless result OK.
pc() {
  local out=$WORK/$1; shift
  "$PC_HOST" --report-interval 0 --output json "$@" >"$out" 2>"$WORK/pc.err" ||
    die "pc-host failed (exit $?): $(tail -n1 "$WORK/pc.err")"
  [[ $(field "$out" 'd["result"]') == OK ]] || die "pc-host: result $(field "$out" 'd["result"]'): $(tail -n1 "$WORK/pc.err")"
}
pc_publish() { # STREAM SUBJECT FILE ARGS...
  local stream=$1 subject=$2 out=$3; shift 3
  pc "$out" --sink "$URL/$subject?stream=$stream" --payload-size "$PAYLOAD" \
    ${PC_CONSUMERS:+--consumers "$PC_CONSUMERS"} "$@"
}
want_stored() { # FILE WANT LABEL
  local got; got=$(field "$WORK/$1" 'd["stored"]')
  [[ $got == "$2" ]] || die "$3 stored $got, want $2"
}

# One round of the default mode: the baseline, then pc-host; each on its own stream.
round() {
  local i=$1 base="PCB_$$_${1}_base" pcs="PCB_$$_${1}_pc" db="$WORK/pc.db"
  STREAMS+=("$base" "$pcs")
  "$NATS_LOOP" publish --url "$URL" --subject "pcbench.$$.$i.base" --stream "$base" \
    --messages "$MESSAGES" --payload "$PAYLOAD" >"$WORK/b-pub.json"
  note base-pub "baseline publish msg/s" "$(field "$WORK/b-pub.json" 'round(d["per_s"])')"
  "$NATS_LOOP" consume --url "$URL" --stream "$base" --consumer bench \
    --messages "$MESSAGES" >"$WORK/b-con.json"
  note base-con "baseline consume msg/s" "$(field "$WORK/b-con.json" 'round(d["per_s"])')"
  "$NATS_LOOP" delete --url "$URL" --stream "$base"

  pc_publish "$pcs" "pcbench.$$.$i.pc" p-pub.json --producers 2 --rps 0 --messages "$MESSAGES"
  want_stored p-pub.json "$MESSAGES" "pc-host publish"
  note pc-pub "pc-host  publish msg/s" "$(field "$WORK/p-pub.json" 'round(d["throughput_msgs_per_s"])')"
  rm -f "$db" "$db-wal" "$db-shm"
  pc p-con.json --source "$URL/$pcs?consumer=bench&until=empty" --db "$db"
  want_stored p-con.json "$MESSAGES" "pc-host consume"
  note pc-con "pc-host  consume msg/s" "$(field "$WORK/p-con.json" 'round(d["stored"] / d["elapsed_s"])')"
  "$NATS_LOOP" delete --url "$URL" --stream "$pcs"
  rm -f "$db" "$db-wal" "$db-shm"
}

# The backlog of a durable consumer: pending + unacknowledged.
backlog() {
  "$NATS_LOOP" pending --url "$URL" --stream "$1" --consumer "$2" >"$WORK/pending.json"
  field "$WORK/pending.json" 'd["pending"] + d["ack_pending"]'
}

# One round of --tier: the consumer runs while the publisher publishes at $RATE.
tier_round() {
  local i=$1 stream="PCB_$$_${1}_tier" db="$WORK/tier.db" t_start t_end left drain window
  STREAMS+=("$stream")
  rm -f "$db" "$db-wal" "$db-shm"
  # The stream first (as pc-host's sink makes it), so the consumer can start before the publisher.
  "$NATS_LOOP" publish --url "$URL" --subject "pcbench.$$.$i.tier" --stream "$stream" --messages 0 >/dev/null
  "$PC_HOST" --report-interval 0 --output json --source "$URL/$stream?consumer=bench" --db "$db" \
    >"$WORK/t-con.json" 2>"$WORK/t-con.err" &
  CONSUMER_PID=$!
  local tries=0
  until grep -q 'NATS source' "$WORK/t-con.err" 2>/dev/null; do # its consumer is created
    kill -0 "$CONSUMER_PID" 2>/dev/null || die "pc-host consumer ended early: $(tail -n1 "$WORK/t-con.err")"
    ((++tries < 1200)) || die "pc-host consumer printed no 'NATS source' header line in 60 s"
    sleep 0.05
  done
  t_start=$EPOCHREALTIME
  pc_publish "$stream" "pcbench.$$.$i.tier" t-pub.json --producers "$PRODUCERS" --rps "$RATE" --duration "$DURATION"
  t_end=$EPOCHREALTIME left=$(backlog "$stream" bench)
  while (($(backlog "$stream" bench) > 0)); do
    kill -0 "$CONSUMER_PID" 2>/dev/null || die "pc-host consumer ended early: $(tail -n1 "$WORK/t-con.err")"
    awk -v a="$t_end" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a > 120) }' && die "consumer did not drain in 120 s"
    sleep 0.05
  done
  window=$(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
  drain=$(awk -v a="$t_start" -v b="$t_end" -v w="$window" 'BEGIN { printf "%.3f", w - (b - a) }')
  kill -INT "$CONSUMER_PID"
  wait "$CONSUMER_PID" || die "pc-host consumer failed (exit $?): $(tail -n1 "$WORK/t-con.err")"
  CONSUMER_PID=""
  [[ $(field "$WORK/t-con.json" 'd["result"]') == OK ]] ||
    die "pc-host consumer: result $(field "$WORK/t-con.json" 'd["result"]'): $(tail -n1 "$WORK/t-con.err")"
  want_stored t-con.json "$(field "$WORK/t-pub.json" 'd["stored"]')" "pc-host consumer"
  note tier-pub "publisher achieved_rps stored/elapsed_s p99_ms" \
    "$(field "$WORK/t-pub.json" '"%.0f %.0f %.3f" % (d["achieved_rps"], d["throughput_msgs_per_s"], d["latency_ns"]["p99"] / 1e6)')"
  note tier-con "consumer  stored/window stored/elapsed_s p99_ms backlog drain_s" \
    "$(field "$WORK/t-con.json" '"%.0f %.0f %.3f" % (d["stored"] / '"$window"', d["stored"] / d["elapsed_s"], d["latency_ns"]["p99"] / 1e6)') $left $drain"
  "$NATS_LOOP" delete --url "$URL" --stream "$stream"
  rm -f "$db" "$db-wal" "$db-shm"
}

# The header: when, where, what.
server_version() { # from the INFO line the server sends on connect
  local hp=${URL#nats://}; hp=${hp##*@}; hp=${hp%%/*}; [[ $hp == *:* ]] || hp=$hp:4222
  timeout 2 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}"; head -n1 <&3' _ "$hp" 2>/dev/null |
    grep -o '"version":"[^"]*"' | cut -d'"' -f4 || true
}
header() {
  echo
  echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "cpu:     $(lscpu | sed -n 's/^Model name: *//p' | head -n1) ($(nproc) CPUs)"
  echo "server:  nats-server ${SERVER_VERSION:-unknown} at $URL"
  echo "command: $COMMAND"
}

SERVER_VERSION=$(server_version)
if ((TIER)); then
  echo "tier: --rps $RATE --duration $DURATION --producers $PRODUCERS, payload $PAYLOAD B; $REPEATS round(s)" >&2
  for ((i = 1; i <= REPEATS; i++)); do
    echo "round $i/$REPEATS" >&2
    tier_round "$i"
  done
  header
  printf '\n%-18s %14s %16s %10s   (--rps %s --duration %s --producers %s, median of %s)\n' \
    "" achieved_msg_s stored/elapsed_s p99_ms "$RATE" "$DURATION" "$PRODUCERS" "$REPEATS"
  printf '%-18s %14.0f %16.0f %10.3f\n' "pc-host publisher" "$(median "$WORK/tier-pub" 1)" \
    "$(median "$WORK/tier-pub" 2)" "$(median "$WORK/tier-pub" 3)"
  printf '%-18s %14.0f %16.0f %10.3f\n' "pc-host consumer" "$(median "$WORK/tier-con" 1)" \
    "$(median "$WORK/tier-con" 2)" "$(median "$WORK/tier-con" 3)"
  cat <<EOF

publisher: achieved_rps (its generators' rate) and stored / elapsed_s from its JSON; p99 of
           intended -> its batch acked by JetStream.
consumer:  achieved = stored / (publisher launched -> consumer's backlog 0, wall clock);
           stored / elapsed_s from its JSON (its run starts before the publisher and ends
           at the SIGINT); p99 of created by the publisher -> committed to SQLite.
backlog when the publisher ended: $(median "$WORK/tier-con" 4) msgs (median), drained in $(median "$WORK/tier-con" 5) s.
EOF
  exit 0
fi

echo "messages: $MESSAGES per run, payload $PAYLOAD B; $REPEATS round(s), baseline and pc-host interleaved" >&2
for ((i = 1; i <= REPEATS; i++)); do
  echo "round $i/$REPEATS" >&2
  round "$i"
done
header
# Ratios of the medians, and each round's ratio.
ratios() { paste "$WORK/$1" "$WORK/$2" | awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $2 / $1 }'; }
printf '\n%-26s %14s %14s   (%s messages, median of %s)\n' "" publish_msg_s consume_msg_s "$MESSAGES" "$REPEATS"
printf '%-26s %14.0f %14.0f\n' "baseline (nats_loop)" "$(median "$WORK/base-pub")" "$(median "$WORK/base-con")"
printf '%-26s %14.0f %14.0f\n' "pc-host (consume->SQLite)" "$(median "$WORK/pc-pub")" "$(median "$WORK/pc-con")"
awk -v bp="$(median "$WORK/base-pub")" -v bc="$(median "$WORK/base-con")" \
    -v pp="$(median "$WORK/pc-pub")" -v pcn="$(median "$WORK/pc-con")" \
    'BEGIN { printf "%-26s %13.2fx %13.2fx\n", "pc-host / baseline", pp / bp, pcn / bc }'
printf 'per-round ratios: publish %s; consume %s\n' "$(ratios base-pub pc-pub)" "$(ratios base-con pc-con)"
