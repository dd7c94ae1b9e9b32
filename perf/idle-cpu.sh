#!/usr/bin/env bash
# Idle CPU of `mobiked gateway` and `mobiked client`: the share of a core each process
# uses (utime + stime from /proc/PID/stat) over a window in which nothing happens but
# their own timers.
#
#   gw namespace  veth g0 10.99.0.1/24  ======  c0 10.99.0.2/24  cl namespace
#                 + --addrs extra /32 addresses on g0 (10.100.0.0/16 and up)
#
# The gateway listens on 10.99.0.1 (udp backend, --no-clear); with --tunnels N a client
# with N instances brings N tunnels up first (and is measured too). --addrs N gives the
# gateway's host N more addresses, as a traffic generator's host has (2-3 per emulated
# client): the netlink address watch must not make them cost anything while nothing
# changes.
#
#   perf/idle-cpu.sh [--bin PATH] [--seconds S] [--tunnels N] [--addrs N] [--poll MODE]
#
# --bin (default target/release/mobiked), --seconds (window, default 10), --tunnels
# (default 1; 0 = the gateway alone), --addrs (default 0), --poll adaptive|busy (default
# adaptive). Prints one line per process: "<name> cpu_pct=<x> window_s=<s>". Needs root
# (namespaces); kills only what it started.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR/..
. "$ROOT/scripts/lib/netns.sh"

BIN="$ROOT/target/release/mobiked"
SECONDS_WINDOW=10
TUNNELS=1
ADDRS=0
POLL=adaptive
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN="${2:?}"; shift 2 ;;
        --seconds) SECONDS_WINDOW="${2:?}"; shift 2 ;;
        --tunnels) TUNNELS="${2:?}"; shift 2 ;;
        --addrs) ADDRS="${2:?}"; shift 2 ;;
        --poll) POLL="${2:?}"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release)" >&2; exit 2; }

netns_init || exit 2
netns_add gw || exit 2
GW="$NETNS_NS"
netns_add cl || exit 2
CL="$NETNS_NS"
netns_veth "$GW" g0 10.99.0.1/24 "$CL" c0 10.99.0.2/24 || exit 2
if [ "$ADDRS" -gt 0 ]; then
    batch="$NETNS_TMP/addrs.batch"
    for ((i = 0; i < ADDRS; i++)); do
        echo "addr add 10.$((100 + i / 65536)).$(((i / 256) % 256)).$((i % 256))/32 dev g0"
    done >"$batch"
    ip -n "$GW" -batch "$batch" || exit 2
fi

PSK=0x6d6f62696b65642d6c61622d70736b2d2d6e6f742d666f722d616e792d757365
conf() { # name ip rest
    cat <<EOF
dataplane: { workers: 1, max_sas: $((TUNNELS * 4 + 64)), poll: $POLL }
cipher: { backend: udp, bind: ["$2:4500"] }
clear: { backend: tun, name: unused0 }
control: { socket: $NETNS_TMP/$1.sock }
ike: { listen: [$2] }
$3
EOF
}
conf gw 10.99.0.1 "pools: [{ name: vpn4, addrs: 10.3.0.0/16 }]
connections:
  - { name: rw, local_id: gw.idle.test, remote_id: '%any', psk: $PSK, local_ts: [10.1.0.0/24], remote_ts: [10.3.0.0/16], pools: [vpn4] }" >"$NETNS_TMP/gw.yaml"
conf cl 10.99.0.2 "connections:
  - { name: home, peeraddr: '10.99.0.1', local_id: 'client-%n@idle.test', remote_id: gw.idle.test, psk: $PSK, vips: [0.0.0.0], remote_ts: [10.1.0.0/24], instances: $TUNNELS }" >"$NETNS_TMP/cl.yaml"

sas() { # name -> number of IKE SAs with a child
    ip netns exec "$1" "$BIN" ctl -s "$NETNS_TMP/$2.sock" sas 2>/dev/null \
        | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin)["sas"] if s["children"]))' 2>/dev/null
}
up() { [ "$(sas "$1" "$2")" = "$3" ]; }

netns_bg "$GW" "$NETNS_TMP/gw.log" "$BIN" gateway -c "$NETNS_TMP/gw.yaml" --no-clear
GW_PID="$NETNS_LAST_PID"
netns_wait 20 up "$GW" gw 0 || { echo "gateway did not start" >&2; cat "$NETNS_TMP/gw.log" >&2; exit 1; }
PIDS=("gateway:$GW_PID")
if [ "$TUNNELS" -gt 0 ]; then
    netns_bg "$CL" "$NETNS_TMP/cl.log" "$BIN" client -c "$NETNS_TMP/cl.yaml" --no-clear
    PIDS+=("client:$NETNS_LAST_PID")
    netns_wait 60 up "$CL" cl "$TUNNELS" || { echo "tunnels not up" >&2; tail "$NETNS_TMP/cl.log" >&2; exit 1; }
fi
sleep 1 # let start-up work settle

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
declare -A before
t0=$(netns_now_us)
for e in "${PIDS[@]}"; do before[$e]=$(ticks "${e#*:}"); done
sleep "$SECONDS_WINDOW"
t1=$(netns_now_us)
hz=$(getconf CLK_TCK)
for e in "${PIDS[@]}"; do
    d=$(($(ticks "${e#*:}") - before[$e]))
    awk -v n="${e%%:*}" -v d="$d" -v hz="$hz" -v us=$((t1 - t0)) -v a="$ADDRS" -v t="$TUNNELS" -v p="$POLL" \
        'BEGIN { printf "%s cpu_pct=%.2f window_s=%.1f tunnels=%d addrs=%d poll=%s\n", n, d / hz / (us / 1e6) * 100, us / 1e6, t, a, p }'
done
