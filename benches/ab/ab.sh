#!/usr/bin/env bash
# A/B two builds of pc-core in ONE process. `benches/ab/ab.sh --help` for usage; README.md
# beside this file for how it works.
set -euo pipefail
# A failure inside `$( )` ends the script too (bash turns errexit off there otherwise).
shopt -s inherit_errexit

here=$(cd "$(dirname "$0")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel)
work=${AB_WORK_DIR:-$root/target/ab}

usage() {
  cat <<'EOF'
usage: benches/ab/ab.sh [--a REV] [--b REV|worktree] [--pairs N] [--only WORD] [--scale X]
                        [--handles shared|split] [--both-ways]
       benches/ab/ab.sh [--a REV] [--b REV|worktree] [--handles H] --callgrind WORKLOAD [--ops N]
       benches/ab/ab.sh [--a REV] [--b REV|worktree] [--handles H] --perf KEY [--ops N]
       benches/ab/ab.sh --help

Builds two revisions of pc-core, A and B, links both into one binary (as pc_core_a and
pc_core_b) and measures them with the ring comparisons' own loops (benches/src/ring/harness.rs),
in one process, their runs alternating (A,B then B,A), so that the machine's drift hits both
alike. Prints, per scenario, both medians, B/A, and B/A pair by pair (median, min, max).

  --a REV          A's revision (default HEAD)
  --b REV          B's revision, or `worktree`: the working tree as it is, uncommitted changes
                   included (the default)
  --pairs N        runs per build and scenario (default 10)
  --only WORD      only the scenarios whose key or name contains WORD; keys: single, 1p1c,
                   batch32, batch64, pingpong, 2p2c (unpinned), 2p2c-mixed (a producer and a
                   consumer pinned to each core), 2p2c-split (producers on one core,
                   consumers on the other); `--only 2p2c` runs all three
  --scale X        multiply each scenario's operation count by X (default 1; e.g. 0.1 for a
                   few-second look, noisier)
  --handles H      shared (default): the ring itself, shared by every thread, pushing with
                   try_push (so revisions from before try_push_spinning build too); split:
                   the ring split into handles, pushing with the producer's
                   try_push_spinning, as compare's `pc::Ring split` row (revisions that have
                   both)
  --callgrind W    instead of timing: run single-threaded workload W once per build under
                   valgrind --tool=callgrind, counting only the workload's instructions
                   (--toggle-collect), and print both counts and B/A. Instruction counts repeat
                   to a few parts per million on a noisy machine, where timings do not.
                   W: single (push one, pop one), batch (push 64, pop 64), fill (push until
                   full, pop until empty)
  --perf KEY       instead: `perf stat` (task clock, context switches, and cycles,
                   instructions, cache misses where the machine exposes them; SKIP where not;
                   and the sched_yield, futex and membarrier calls where tracepoints can be read)
                   over one run per build of scenario KEY (a key above, or a workload)
  --ops N          operations for --callgrind (default 200000) or --perf (default: the
                   scenario's own count; 1000000 for a workload)
  --both-ways      run it twice, the second time with the sides swapped (A = B's revision,
                   B = A's), and print per scenario B's revision over A's with the side bias
                   removed: sqrt(r1 / r2) for the two runs' B/A medians r1, r2 (the bias, the
                   copy in side B measuring differently from the same code in side A, is
                   sqrt(r1 * r2), printed too)
  --no-align       build without aligning every function and jump target to 64 bytes (see
                   below)
  -h, --help       print this and exit

The timed scenarios' options (--pairs, --only, --scale, --both-ways) are refused with
--callgrind or --perf, and --ops without them, rather than ignored.

Start with A = B (`--a HEAD --b HEAD`): the ratios it shows are this machine's noise floor;
a change is measured only if its B/A is outside them. Code placement matters: two identical
copies of pc-core linked into one binary measured 0.90-0.95x of each other in the 1P1C
batch 32 row, in each of five runs of 20-40 pairs (their hot loops sit at different offsets
in cache lines). So the build aligns every function and every jump target to 64 bytes
(-C llvm-args=-align-all-functions=6 -C llvm-args=-align-all-nofallthru-blocks=6, added to
RUSTFLAGS), which brought three such runs to 0.99-1.01x. Absolute figures are therefore not
compare's; read the ratios.

Files: sources in target/ab/src/{a,b} (Cargo.toml and core/ only), the generated crate in
target/ab/crate, its build in target/ab/target, callgrind outputs in target/ab/ (inspect with
callgrind_annotate). AB_WORK_DIR overrides target/ab.
EOF
}

die() { # die MESSAGE: a usage error, one line, status 2
  echo "ab.sh: $1 (see ab.sh --help)" >&2
  exit 2
}

a=HEAD b=worktree pairs=10 only="" scale=1 callgrind="" perf="" ops="" align=1 both=0
handles=shared
# The first option given that only the timed scenarios use (refused with --callgrind or --perf).
timed_only=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --no-align) align=0; shift ;;
    --both-ways) both=1; timed_only=${timed_only:-$1}; shift ;;
    --a | --b | --pairs | --only | --scale | --callgrind | --perf | --ops | --handles)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in --pairs | --only | --scale) timed_only=${timed_only:-$1} ;; esac
      case "$1" in
        --a) a=$2 ;;
        --b) b=$2 ;;
        --pairs) pairs=$2 ;;
        --only) only=$2 ;;
        --scale) scale=$2 ;;
        --callgrind) callgrind=$2 ;;
        --perf) perf=$2 ;;
        --ops) ops=$2 ;;
        --handles) handles=$2 ;;
      esac
      shift 2 ;;
    *) die "unknown argument \"$1\"" ;;
  esac
done
[ -z "$callgrind" ] || [ -z "$perf" ] || die "--callgrind and --perf are separate runs"
[ -z "$callgrind$perf" ] || [ -z "$timed_only" ] ||
  die "$timed_only is for the timed scenarios, not --callgrind or --perf"
[ -n "$callgrind$perf" ] || [ -z "$ops" ] || die "--ops is for --callgrind and --perf"
# As the binary reads them (a Rust integer and float), checked here before the build.
[[ "$pairs" =~ ^[+]?[0-9]+$ ]] && ((10#${pairs#+} > 0)) || die "--pairs takes a positive number"
[[ "$scale" =~ ^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$ ]] &&
  LC_ALL=C awk -v s="$scale" 'BEGIN { exit !(s + 0 > 0) }' || die "--scale takes a positive number"
case "$perf" in
  "" | single | batch | fill | 1p1c | batch32 | batch64 | pingpong | 2p2c | 2p2c-mixed | 2p2c-split) ;;
  *) die "no scenario or workload \"$perf\"" ;;
esac
case "$callgrind" in "" | single | batch | fill) ;; *) die "no workload \"$callgrind\"" ;; esac
[ -z "$ops" ] || [[ "$ops" =~ ^[1-9][0-9]*$ ]] || die "--ops takes a positive number"
case "$handles" in shared | split) ;; *) die "--handles takes shared or split, not \"$handles\"" ;; esac

if [ "$both" = 1 ]; then
  [ "$b" != worktree ] || [ "$a" != worktree ] || die "--a and --b are both the working tree"
  again=(--pairs "$pairs" --scale "$scale" --handles "$handles")
  [ -z "$only" ] || again+=(--only "$only")
  [ "$align" = 1 ] || again+=(--no-align)
  first=$("$0" --a "$a" --b "$b" "${again[@]}")
  echo "$first"
  echo
  second=$("$0" --a "$b" --b "$a" "${again[@]}")
  echo "$second"
  # The B/A (medians) column of each scenario's row, from both tables (join needs them sorted
  # on the scenario, in one collation).
  ratios() { awk -F'|' '$6 ~ /^ *[0-9.]+ *$/ { gsub(/^ +| +$/, "", $2); gsub(/ /, "", $6); print $2 "|" $6 }'; }
  echo
  echo "Both ways: B = $b over A = $a, the side bias removed (ns and ns/op rows: < 1 is faster)"
  echo
  echo "| scenario | B/A, run 1 | B/A, run 2 (sides swapped) | $b / $a, bias removed | side bias |"
  echo "|---|---:|---:|---:|---:|"
  join -t'|' <(ratios <<<"$first" | LC_ALL=C sort -t'|' -k1,1) \
    <(ratios <<<"$second" | LC_ALL=C sort -t'|' -k1,1) \
    | awk -F'|' '{ printf "| %s | %.3f | %.3f | %.3f | %.3f |\n", $1, $2, $3, sqrt($2 / $3), sqrt($2 * $3) }'
  exit 0
fi

# snapshot SIDE SPEC: copies pc-core's sources (the workspace manifest and core/) of SPEC into
# $work/src/SIDE and prints what they are. pc-core's version is rewritten to 0.0.0-ab-SIDE:
# Cargo refuses two path packages of one name and version in one lockfile.
# Cargo rebuilds a path dependency only when a source is newer than its last build, and copied
# files keep their own times (git archive gives a commit's time), which can be older than the
# build of what the side held before: so a copy that differs from the last one has its times
# set to now, and an unchanged one keeps them (and its build).
snapshot() {
  local side=$1 spec=$2 dest=$work/src/$1.new sha label
  rm -rf "$dest"
  mkdir -p "$dest"
  label=$(snapshot_into "$dest" "$side" "$spec")
  if diff -r -q "$dest" "$work/src/$side" >/dev/null 2>&1; then
    rm -rf "$dest"
  else
    find "$dest" -exec touch {} +
    rm -rf "$work/src/$side"
    mv "$dest" "$work/src/$side"
  fi
  echo "$label"
}

# snapshot_into DEST SIDE SPEC: the copy itself (see snapshot).
snapshot_into() {
  local dest=$1 side=$2 spec=$3 sha
  if [ "$spec" = worktree ]; then
    (cd "$root" && git ls-files -z -co --exclude-standard -- Cargo.toml core \
      | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
      | tar --null -T - -cf -) | tar -xf - -C "$dest"
    sha=$(git -C "$root" rev-parse --short HEAD)
    if git -C "$root" diff --quiet HEAD -- Cargo.toml core \
      && [ -z "$(git -C "$root" ls-files -o --exclude-standard -- core)" ]; then
      echo "working tree ($sha, core/ unchanged)"
    else
      echo "working tree ($sha + uncommitted changes in core/)"
    fi
  else
    sha=$(git -C "$root" rev-parse --verify --quiet "$spec^{commit}") \
      || die "not a revision: \"$spec\""
    git -C "$root" archive "$sha" Cargo.toml core | tar -xf - -C "$dest"
    echo "$spec ($(git -C "$root" rev-parse --short "$sha"))"
  fi
  sed -i -E "0,/^version(\.workspace)? *=.*/s//version = \"0.0.0-ab-$side\"/" "$dest/core/Cargo.toml"
}

# A revision that names no commit is a usage error, found before anything is copied or built.
for spec in "$a" "$b"; do
  [ "$spec" = worktree ] || git -C "$root" rev-parse --verify --quiet "$spec^{commit}" >/dev/null \
    || die "not a revision: \"$spec\""
done

mkdir -p "$work/crate"
label_a=$(snapshot a "$a")
label_b=$(snapshot b "$b")
cat >"$work/crate/Cargo.toml" <<EOF
# Generated by benches/ab/ab.sh: edits are overwritten.
[package]
name = "pc-ab"
version = "0.0.0"
edition = "2024"
publish = false

[[bin]]
name = "ab"
path = "$root/benches/ab/src/main.rs"

[features]
# The ring split into handles instead of shared (--handles split).
split = []

[dependencies]
pc_core_a = { package = "pc-core", path = "$work/src/a/core" }
pc_core_b = { package = "pc-core", path = "$work/src/b/core" }
crossbeam-utils = "0.8"
core_affinity = "0.8"

[profile.release]
debug = 1

# A workspace of its own, not a member of the one it sits in.
[workspace]
EOF
# The repository's lockfile and toolchain: the same dependency versions and compiler.
[ -f "$work/crate/Cargo.lock" ] || cp "$root/Cargo.lock" "$work/crate/Cargo.lock"
cp "$root/rust-toolchain.toml" "$work/crate/" 2>/dev/null || true

echo "ab.sh: building A = $label_a, B = $label_b ..." >&2
flags=${RUSTFLAGS:-}
target=$work/target
if [ "$align" = 1 ]; then
  flags="$flags -C llvm-args=-align-all-functions=6 -C llvm-args=-align-all-nofallthru-blocks=6"
else
  target=$work/target-unaligned
fi
features=()
[ "$handles" = shared ] || features=(--features split)
(cd "$work/crate" && RUSTFLAGS="$flags" cargo build --release --quiet --target-dir "$target" \
  "${features[@]}") >&2
bin=$target/release/ab
if [ "$handles" = split ]; then
  label_a="$label_a, split handles" label_b="$label_b, split handles"
fi

if [ -n "$callgrind" ]; then
  if ! command -v valgrind >/dev/null; then
    echo "SKIP: valgrind is not installed"
    exit 0
  fi
  ops=${ops:-200000}
  echo "callgrind, workload $callgrind, $ops operations, instructions in ab_workload only"
  echo "A = $label_a"
  echo "B = $label_b"
  declare -A ir
  for side in a b; do
    out=$work/callgrind.$side.out
    valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='*ab_workload*' \
      --dump-instr=yes "$bin" --run-one "$side" "$callgrind" "$ops" \
      >/dev/null 2>"$work/callgrind.$side.log" \
      || { echo "ab.sh: valgrind failed, see $work/callgrind.$side.log" >&2; exit 1; }
    ir[$side]=$(awk '/^(summary|totals):/ { print $2; exit }' "$out")
    if [ -z "${ir[$side]}" ] || [ "${ir[$side]}" -eq 0 ]; then
      echo "ab.sh: no instructions counted in $out (was ab_workload inlined?)" >&2
      exit 1
    fi
  done
  awk -v a="${ir[a]}" -v b="${ir[b]}" -v n="$ops" 'BEGIN {
    printf "| build | instructions | per op |\n|---|---:|---:|\n"
    printf "| A | %d | %.2f |\n| B | %d | %.2f |\n", a, a / n, b, b / n
    printf "\nB/A instructions: %.4f\n", b / a
  }'
  echo "Where they go: callgrind_annotate $work/callgrind.a.out (and .b.out)"
  exit 0
fi

if [ -n "$perf" ]; then
  if ! command -v perf >/dev/null; then
    echo "SKIP: perf is not installed"
    exit 0
  fi
  if [ -z "$ops" ]; then
    case "$perf" in
      single | batch | fill) ops=1000000 ;;
      1p1c | batch32 | batch64) ops=5000000 ;;
      pingpong) ops=200000 ;;
      2p2c | 2p2c-mixed | 2p2c-split) ops=2000000 ;;
    esac
  fi
  events=task-clock,context-switches,cpu-migrations,cycles,instructions,cache-references,cache-misses
  # The blocking waits' system calls (yields, futex waits and wakes, the asymmetric fence's
  # membarrier), counted by tracepoints: these work on KVM guests that expose no hardware
  # counters. Left out where the kernel has no syscall tracepoints or perf may not read them.
  calls=syscalls:sys_enter_sched_yield,syscalls:sys_enter_futex,syscalls:sys_enter_membarrier
  if perf stat -e "$calls" -o /dev/null -- true 2>/dev/null; then
    events=$events,$calls
  else
    echo "SKIP: system-call tracepoints (perf stat -e $calls) are not readable here"
  fi
  echo "perf stat, $perf, $ops operations, one run per build (whole process)"
  echo "A = $label_a"
  echo "B = $label_b"
  for side in a b; do
    perf stat -x, -e "$events" -o "$work/perf.$side.csv" -- "$bin" --run-one "$side" "$perf" "$ops"
  done
  awk -F, '
    FNR == 1 { side++ }
    /^#/ || NF < 3 { next }
    { name[$3] = 1; order[$3] = order[$3] ? order[$3] : ++n; v[side, $3] = $1 }
    END {
      printf "\n| counter | A | B | B/A |\n|---|---:|---:|---:|\n"
      for (e in name) by[order[e]] = e
      for (i = 1; i <= n; i++) {
        e = by[i]; x = v[1, e]; y = v[2, e]
        if (x ~ /not (supported|counted)/ || y ~ /not (supported|counted)/)
          printf "| %s | SKIP | SKIP | not exposed on this machine |\n", e
        else
          printf "| %s | %s | %s | %s |\n", e, x, y, (x > 0 ? sprintf("%.4f", y / x) : "-")
      }
    }' "$work/perf.a.csv" "$work/perf.b.csv"
  exit 0
fi

args=(--pairs "$pairs" --scale "$scale" --label-a "$label_a" --label-b "$label_b")
[ -z "$only" ] || args+=(--only "$only")
exec "$bin" "${args[@]}"
