#!/usr/bin/env bash
# examples/cluster.sh: pc-host across "hosts" with NATS JetStream between them, on one machine.
#
# Three network namespaces stand in for three hosts on one LAN:
#
#   pc-nats-PID   10.213.0.1   a private nats-server with JetStream (the LAN's bridge lives here)
#   pc-prod-PID   10.213.0.2   the publishers:  pc-host --sink   nats://10.213.0.1:4222/...
#   pc-cons-PID   10.213.0.3   the consumers:   pc-host --source nats://10.213.0.1:4222/...
#
# The publishers run first and end; then the consumers, all sharing one durable consumer, drain
# the stream into one SQLite database; then `pc-host verify` checks that every publisher's
# records are there exactly once. Each namespace reaches the others only over its veth, so the
# records really cross a network (a virtual one); a NATS server already running on this host
# (127.0.0.1:4222 is each namespace's own loopback) is neither used nor disturbed.
#
# Usage (as root: creating namespaces needs CAP_SYS_ADMIN and CAP_NET_ADMIN):
#   examples/cluster.sh [--pc-host PATH] [--publishers N] [--consumers N] [--messages N]
#                       [--producers N]
# or the same through the environment: CLUSTER_PC_HOST, CLUSTER_PUBLISHERS, CLUSTER_CONSUMERS,
# CLUSTER_MESSAGES, CLUSTER_PRODUCERS; also CLUSTER_NATS_SERVER (the nats-server binary) and
# CLUSTER_TIMEOUT (seconds any one step may take). Flags beat the environment. (Not PC_HOST_*:
# pc-host itself reads those.)
#
# Exit status: 0 every record published was stored exactly once (verify OK); 1 something in the
# run failed; 2 it cannot run here (not root, `ip netns add` refused, a program missing, a bad
# option). Everything it creates (namespaces, links, processes, temporary files) is removed on
# every exit, including a failure or Ctrl-C.

# shellcheck disable=SC2317 # functions run by traps and wait_for are reachable
set -euo pipefail

# --- Options --------------------------------------------------------------------------------

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

pc_host=${CLUSTER_PC_HOST:-$repo/target/release/pc-host}
publishers=${CLUSTER_PUBLISHERS:-2}   # pc-host processes publishing, side by side
consumers=${CLUSTER_CONSUMERS:-2}     # pc-host processes consuming, side by side
messages=${CLUSTER_MESSAGES:-10000}   # records each publisher publishes
producers=${CLUSTER_PRODUCERS:-2}     # generator threads in each publisher
nats_server=${CLUSTER_NATS_SERVER:-nats-server}
step_timeout=${CLUSTER_TIMEOUT:-300}

usage() {
    sed -n '/^# Usage/,/^# every exit/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

cannot() { # one line, exit 2: this machine cannot run the example
    echo "cluster.sh: cannot run here: $*" >&2
    exit 2
}

while (($#)); do
    case $1 in
        --pc-host) pc_host=${2:?--pc-host needs a path}; shift 2 ;;
        --publishers) publishers=${2:?--publishers needs a number}; shift 2 ;;
        --consumers) consumers=${2:?--consumers needs a number}; shift 2 ;;
        --messages) messages=${2:?--messages needs a number}; shift 2 ;;
        --producers) producers=${2:?--producers needs a number}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "cluster.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

for n in "$publishers" "$consumers" "$messages" "$producers" "$step_timeout"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "cluster.sh: not a positive number: $n" >&2; exit 2; }
done

# The binary is run from a temporary directory: make its path absolute first.
if [[ $pc_host == */* ]]; then
    [[ -x $pc_host ]] || cannot "no pc-host binary at $pc_host (cargo build --release -p pc-host, or give --pc-host)"
    pc_host=$(cd "$(dirname "$pc_host")" && pwd)/$(basename "$pc_host")
else
    pc_host=$(command -v "$pc_host") || cannot "no $pc_host on PATH"
fi
nats_server=$(command -v "$nats_server") || cannot "no nats-server on PATH (give CLUSTER_NATS_SERVER)"
command -v ip >/dev/null || cannot "no ip command (iproute2)"
((EUID == 0)) || cannot "needs root to create network namespaces (ip netns add)"

# --- Names and addresses ---------------------------------------------------------------------

# Suffixed with this shell's PID so that two runs side by side do not collide. The addresses
# exist only inside the namespaces (nothing is added to this host's own routing table), so
# 10.213.0.0/24 cannot clash with a network this host is on; it is only picked to be unusual.
ns_nats=pc-nats-$$
ns_prod=pc-prod-$$
ns_cons=pc-cons-$$
nats_ip=10.213.0.1
prod_ip=10.213.0.2
cons_ip=10.213.0.3
port=4222
stream=PC
subject=pc.records
durable=db-writers

work=$(mktemp -d "${TMPDIR:-/tmp}/pc-cluster.XXXXXX")
created_ns=()   # namespaces made so far, for the cleanup
nats_pid=

# --- Cleanup: always, on any exit ---------------------------------------------------------------

cleanup() {
    set +e
    local ns i left
    # Processes first: a deleted namespace lives on while a process is inside it. Only processes
    # inside our own namespaces are signalled: nats-server and the pc-host runs. A pc-host run
    # still going here is being abandoned (a failure, or Ctrl-C) with its data, so it gets no
    # graceful drain: SIGKILL. nats-server gets SIGTERM and a bounded wait.
    for ns in "${created_ns[@]}"; do
        if [[ $ns == "$ns_nats" ]]; then signal_ns TERM "$ns"; else signal_ns KILL "$ns"; fi
    done
    for ((i = 0; i < 50; i++)); do
        left=$(for ns in "${created_ns[@]}"; do ip netns pids "$ns" 2>/dev/null; done)
        [[ -z $left ]] && break
        sleep 0.1
    done
    for ns in "${created_ns[@]}"; do signal_ns KILL "$ns"; done
    wait 2>/dev/null # reap them
    # Deleting a namespace deletes its links: the veths (both ends go with either) and the bridge.
    for ns in "${created_ns[@]}"; do ip netns delete "$ns"; done
    rm -rf "$work"
}

# signal_ns SIGNAL NAMESPACE: sends SIGNAL to every process inside NAMESPACE.
signal_ns() {
    local pids
    mapfile -t pids < <(ip netns pids "$2" 2>/dev/null)
    ((${#pids[@]} == 0)) || kill "-$1" "${pids[@]}" 2>/dev/null
}

trap cleanup EXIT
trap 'echo "cluster.sh: interrupted" >&2; exit 130' INT
trap 'echo "cluster.sh: terminated" >&2; exit 143' TERM

# Runs "$@" inside namespace $1, with a time limit so that a stuck step cannot hang the script
# (--foreground: the command stays in this script's process group, where Ctrl-C reaches it).
in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" timeout --foreground "$step_timeout" "$@"
}

# Polls a condition (a command) every 0.1 s for at most $1 seconds.
wait_for() {
    local seconds=$1 i
    shift
    for ((i = 0; i < seconds * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# Whether something listens on nats-server's address, as seen from namespace $1.
nats_answers_from() {
    ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$nats_ip/$port" 2>/dev/null
}

# Whether nats-server accepts connections from namespace $1; ends the script if it exited.
nats_ready_for() {
    kill -0 "$nats_pid" 2>/dev/null || {
        echo "cluster.sh: nats-server exited; its log:" >&2
        tail -n 20 "$work/nats.log" >&2
        exit 1
    }
    nats_answers_from "$1"
}

# --- The network ------------------------------------------------------------------------------

# The first namespace doubles as the probe: refused here (a container without CAP_SYS_ADMIN,
# no /var/run/netns mount allowed...) means this machine cannot run the example.
if ! err=$(ip netns add "$ns_nats" 2>&1); then
    cannot "ip netns add refused: $err"
fi
created_ns+=("$ns_nats")
ip netns add "$ns_prod"
created_ns+=("$ns_prod")
ip netns add "$ns_cons"
created_ns+=("$ns_cons")

# The LAN: a bridge inside the NATS namespace (so this host's own namespace gets no new
# interface) with one veth pair per other namespace plugged into it. Each pair is created with
# its ends already in the namespaces they belong to.
ip -n "$ns_nats" link add br0 type bridge
ip -n "$ns_nats" addr add "$nats_ip/24" dev br0
ip -n "$ns_nats" link set br0 up
for peer in "$ns_prod:$prod_ip:to-prod" "$ns_cons:$cons_ip:to-cons"; do
    IFS=: read -r ns ip_addr port_name <<<"$peer"
    ip -n "$ns_nats" link add "$port_name" type veth peer name eth0 netns "$ns"
    ip -n "$ns_nats" link set "$port_name" master br0 up
    ip -n "$ns" addr add "$ip_addr/24" dev eth0
    ip -n "$ns" link set eth0 up
done
for ns in "${created_ns[@]}"; do ip -n "$ns" link set lo up; done

echo "network: 3 namespaces on one bridge, 10.213.0.0/24"
echo "  $ns_nats  $nats_ip  nats-server -js"
echo "  $ns_prod  $prod_ip  $publishers publishers x $messages records ($producers producer threads each)"
echo "  $ns_cons  $cons_ip  $consumers consumers -> one SQLite database"

# --- NATS -------------------------------------------------------------------------------------

# A private server, listening only on its namespace's address, its JetStream store in $work.
ip netns exec "$ns_nats" "$nats_server" -a "$nats_ip" -p "$port" -js -sd "$work/jetstream" \
    >"$work/nats.log" 2>&1 &
nats_pid=$!

# Ready when it accepts a TCP connection from both other namespaces (up to 10 s).
for ns in "$ns_prod" "$ns_cons"; do
    wait_for 10 nats_ready_for "$ns" ||
        { echo "cluster.sh: nats-server not reachable from $ns within 10 s" >&2; exit 1; }
done
echo "nats-server ($("$nats_server" --version | awk '{print $NF}')) listening on $nats_ip:$port, reachable from $ns_prod and $ns_cons"

cd "$work"

# all_ok NAME PID...: whether every one of these background runs (logs NAME-1.log, NAME-2.log...)
# ended with status 0; shows the end of the log of each that did not.
all_ok() {
    local name=$1 pid ok=0 i=0
    shift
    for pid in "$@"; do
        i=$((i + 1))
        if ! wait "$pid"; then
            echo "cluster.sh: $name $i failed; the end of its output:" >&2
            tail -n 15 "$work/$name-$i.log" >&2
            ok=1
        fi
    done
    return $ok
}

# A count from the summary a pc-host run printed: the number after the words given
# at the start of a line ("  stored        1000 (...)"); empty if there is none.
figure() { # figure LOG WORD...
    local log=$1
    shift
    awk -v words="$*" '
        { n = split(words, w, " "); ok = 1
          for (i = 1; i <= n; i++) if ($i != w[i]) ok = 0
          if (ok && $(n + 1) ~ /^[0-9]+$/) { print $(n + 1); exit } }' "$log"
}

# --- Publishers (producer namespace) ----------------------------------------------------------

sink="nats://$nats_ip:$port/$subject?stream=$stream"
echo
echo "publishing: $publishers x pc-host --sink '$sink' --producers $producers --messages $messages --rps 0"
pids=()
for ((i = 1; i <= publishers; i++)); do
    in_ns "$ns_prod" "$pc_host" --sink "$sink" --producers "$producers" --messages "$messages" \
        --rps 0 </dev/null >"publisher-$i.log" 2>&1 &
    pids+=($!)
done
all_ok publisher "${pids[@]}" || exit 1
published=0
for ((i = 1; i <= publishers; i++)); do
    n=$(figure "publisher-$i.log" NATS published) # "NATS  published N (acknowledged by ...)"
    echo "  publisher $i: published ${n:-?} (acknowledged by JetStream)"
    published=$((published + ${n:-0}))
done

# --- Consumers (consumer namespace) -----------------------------------------------------------

# All of them name the same durable consumer: JetStream hands each message to one of them, and
# until=empty ends each once nothing is pending or unacknowledged.
source="nats://$nats_ip:$port/$stream?consumer=$durable&until=empty"
echo
echo "consuming: $consumers x pc-host --source '$source' --db out.db"
pids=()
for ((i = 1; i <= consumers; i++)); do
    in_ns "$ns_cons" "$pc_host" --source "$source" --db "$work/out.db" \
        </dev/null >"consumer-$i.log" 2>&1 &
    pids+=($!)
    # The first one creates the database; the others start once it has (its header line), so
    # that two processes never create one new SQLite file at the same moment.
    tries=0
    while ((i == 1)) && ! grep -q "^pc-host run" "consumer-1.log" 2>/dev/null; do
        kill -0 "${pids[0]}" 2>/dev/null || break
        ((++tries < 600)) || break
        sleep 0.05
    done
done
all_ok consumer "${pids[@]}" || exit 1
stored=0
for ((i = 1; i <= consumers; i++)); do
    n=$(figure "consumer-$i.log" stored)
    echo "  consumer $i: stored ${n:-?}"
    stored=$((stored + ${n:-0}))
done

# --- Verify -----------------------------------------------------------------------------------

echo
echo "pc-host verify --db out.db"
verify_status=0
in_ns "$ns_cons" "$pc_host" verify --db "$work/out.db" >verify.log 2>&1 || verify_status=$?
sed 's/^/  /' verify.log

echo
if ((verify_status == 0 && published == stored && published == publishers * messages)); then
    echo "end-to-end: OK: $published records published from $ns_prod, $stored stored in $ns_cons, each exactly once (verify OK)"
    exit 0
fi
echo "end-to-end: FAILED: expected $((publishers * messages)), published $published, stored $stored, verify exit status $verify_status"
exit 1
