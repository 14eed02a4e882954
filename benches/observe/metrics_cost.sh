#!/usr/bin/env bash
# What --metrics-addr costs: pc-host --rps 0 throughput with metrics off and on (scraped every
# second, harder than Prometheus' usual 15 s), interleaved, same machine, same run.
#   bash benches/observe/metrics_cost.sh [--repeats N] [--messages N]
# Prints each run's stored msg/s and the median ratio on/off. Run it alone on a quiet machine.
set -euo pipefail
# A failure inside `$( )` ends the script too (bash turns errexit off there otherwise).
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
die() { echo "metrics_cost.sh: $1 (try --help)" >&2; exit 2; }
repeats=5 messages=3000000
while [ $# -gt 0 ]; do
  case $1 in
    --repeats | --messages)
      [ $# -ge 2 ] || die "$1 needs a value"
      [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 takes a positive whole number, not \"$2\""
      if [ "$1" = --repeats ]; then repeats=$2; else messages=$2; fi
      shift 2 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) die "unknown argument \"$1\"" ;;
  esac
done
cargo build --release -q -p pc-host
bin=$PWD/target/release/pc-host
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
rate() { python3 -c 'import json,sys; print(round(json.load(sys.stdin)["throughput_msgs_per_s"]))'; }
run_off() { rm -f "$work"/off.db*; "$bin" --db "$work/off.db" --rps 0 --messages "$messages" --output json 2>/dev/null | rate; }
run_on() {
  rm -f "$work"/on.db*
  "$bin" --db "$work/on.db" --rps 0 --messages "$messages" --output json \
    --metrics-addr 127.0.0.1:0 2>"$work/on.err" >"$work/on.json" &
  local pid=$! addr=""
  while kill -0 "$pid" 2>/dev/null; do
    addr=${addr:-$(grep -o '127.0.0.1:[0-9]*' "$work/on.err" | head -1 || true)}
    [ -n "$addr" ] && curl -s "http://$addr/metrics" >/dev/null || true
    sleep 1
  done
  wait "$pid"; rate <"$work/on.json"
}
off=() on=()
for i in $(seq "$repeats"); do
  off+=("$(run_off)"); on+=("$(run_on)")
  echo "round $i: off ${off[-1]} msg/s, on ${on[-1]} msg/s"
done
python3 - "${off[*]}" "${on[*]}" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]; on = [float(x) for x in sys.argv[2].split()]
ratios = [b / a for a, b in zip(off, on)]
print(f"median off {statistics.median(off):.0f} msg/s, on {statistics.median(on):.0f} msg/s, "
      f"median ratio on/off {statistics.median(ratios):.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
PY
