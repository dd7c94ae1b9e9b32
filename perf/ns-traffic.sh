#!/usr/bin/env bash
# The traffic generator against a mobiked gateway in two network namespaces: N emulated
# clients (`mobiked client --traffic`, one process) set up their tunnels, each carries
# a stream of RATE packets per second both ways, optionally every client rotates its
# address pair (mobikeiplifetime, spread), and both processes write their run reports;
# `mobiked report` puts them side by side (table, JSON, HTML).
#
#   sudo perf/ns-traffic.sh [--tunnels N] [--rate PPS] [--seconds S] [--rotate S]
#                           [--setup-rate R] [--out DIR] [--bin PATH]
#
# Topology (created here, always removed): namespace mkt-gw (veth g0: 10.99.0.1 and
# 10.99.0.3, the gateway's two addresses) and mkt-cl (veth c0: 10.99.0.2; with
# --rotate, two addresses per client from 10.98.0.1 on c0, routed from the gateway via
# 10.99.0.2). Root needed. Traffic stays inside these namespaces.
set -euo pipefail

N=10000 RATE=10 SECS=30 ROTATE=0 SETUP_RATE=0 OUT=/tmp/mobiked-ns-traffic
BIN="$(cd "$(dirname "$0")/.." && pwd)/target/release/mobiked"
while [ $# -gt 0 ]; do
    case "$1" in
        --tunnels) N="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --seconds) SECS="$2"; shift 2 ;;
        --rotate) ROTATE="$2"; shift 2 ;;
        --setup-rate) SETUP_RATE="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (network namespaces)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "$0: no $BIN: cargo build --release first" >&2; exit 2; }
case "$N" in ''|*[!0-9]*) echo "--tunnels: a number" >&2; exit 2 ;; esac
[ "$N" -ge 1 ] && [ "$N" -le 30000 ] || { echo "--tunnels: 1 to 30000 (two addresses each in 10.98/16)" >&2; exit 2; }

GW=mkt-gw CL=mkt-cl
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$GW" 2>/dev/null || true
    ip netns del "$CL" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
mkdir -p "$OUT"

ip netns add "$GW"
ip netns add "$CL"
ip link add g0 netns "$GW" type veth peer name c0 netns "$CL"
ip -n "$GW" addr add 10.99.0.1/24 dev g0
ip -n "$GW" addr add 10.99.0.3/24 dev g0
ip -n "$CL" addr add 10.99.0.2/24 dev c0
for ns in "$GW" "$CL"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.core.rmem_max=8388608 net.core.wmem_max=8388608
done
ip -n "$GW" link set g0 up
ip -n "$CL" link set c0 up

PSK=0x6e732d747261666669632d6f6e6c792d70736b2d6e6f742d666f722d757365
ROT=""
if [ "$ROTATE" != 0 ]; then
    # Two addresses per client, 10.98.0.1 onwards, on the client's link.
    python3 - "$N" > "$OUT/addrs.batch" <<'EOF'
import sys
n = int(sys.argv[1])
for i in range(1, 2 * n + 1):
    print(f"addr add 10.98.{i // 256}.{i % 256}/32 dev c0")
EOF
    ip -n "$CL" -batch "$OUT/addrs.batch"
    ip -n "$GW" route add 10.98.0.0/16 via 10.99.0.2
    ROT="    mobike: true
    startclntaddr: 10.98.0.1/16
    mobikeaddrpertunnel: 2
    mobikeiplifetime: ${ROTATE}s
    mobikeipspread: true
    mobikechangeaddrtype: both"
    CL_BIND='"0.0.0.0:4500"' CL_LISTEN=0.0.0.0
else
    CL_BIND='"10.99.0.2:4500"' CL_LISTEN=10.99.0.2
fi

MAX=$((N + N / 4 + 64))
cat > "$OUT/gw.yaml" <<EOF
dataplane: { workers: 1, max_sas: $MAX }
cipher: { backend: udp, bind: ["10.99.0.1:4500", "10.99.0.3:4500"] }
clear: { backend: tun, name: unused0 }
ike: { listen: [10.99.0.1, 10.99.0.3], cookie_threshold: $((N * 2 + 16)) }
pools:
  - { name: vpn4, addrs: 10.64.0.0/15 }
connections:
  - name: rw
    local_id: gw.ns-traffic
    remote_id: "%any"
    psk: $PSK
    proposals: [aes128gcm16-prfsha256-x25519]
    local_ts: [10.1.0.0/24]
    pools: [vpn4]
    dpd_delay: 30s
    mobike: true
    mobikeaddrpergw: 2
EOF
cat > "$OUT/cl.yaml" <<EOF
dataplane: { workers: 1, max_sas: $MAX }
cipher: { backend: udp, bind: [$CL_BIND] }
clear: { backend: tun, name: unused0 }
ike: { listen: [$CL_LISTEN], setup_rate: $SETUP_RATE }
connections:
  - name: lab
    peeraddr: 10.99.0.1
    local_id: client-%n@ns-traffic
    remote_id: gw.ns-traffic
    psk: $PSK
    proposals: [aes128gcm16-prfsha256-x25519]
    vips: [0.0.0.0]
    remote_ts: [10.1.0.0/24]
    dpd_delay: 30s
    instances: $N
$ROT
EOF

echo "ns-traffic: $N clients, $RATE pps per tunnel both ways, ${SECS} s, rotation ${ROTATE} s, setup rate ${SETUP_RATE:-0}/s (0: the window's)"
ip netns exec "$GW" "$BIN" gateway -c "$OUT/gw.yaml" --traffic "$RATE" --report "$OUT/gw.json" \
    --html "$OUT/gw.html" --log warn > "$OUT/gw.out" 2>&1 &
PIDS+=($!)
sleep 0.5
ip netns exec "$CL" "$BIN" client -c "$OUT/cl.yaml" --traffic "$RATE" --report "$OUT/cl.json" \
    --html "$OUT/cl.html" --log warn > "$OUT/cl.out" 2>&1 &
PIDS+=($!)
CL_PID=$!
GW_PID=${PIDS[0]}
for ((t = 0; t < SECS; t += 5)); do
    sleep 5
    kill -0 "$CL_PID" 2>/dev/null || { echo "the client ended early:"; tail "$OUT/cl.out"; exit 1; }
    kill -0 "$GW_PID" 2>/dev/null || { echo "the gateway ended early:"; tail "$OUT/gw.out"; exit 1; }
    echo "[$((t + 5)) s] $(grep -c . "$OUT/cl.out" || true) client log lines"
done
kill -TERM "$CL_PID"
wait "$CL_PID" || { echo "client exit status $?"; tail "$OUT/cl.out"; }
kill -TERM "$GW_PID"
wait "$GW_PID" || { echo "gateway exit status $?"; tail "$OUT/gw.out"; }
PIDS=()
"$BIN" report --label client --label gateway "$OUT/cl.json" "$OUT/gw.json" --html "$OUT/report.html"
echo "reports: $OUT/cl.json $OUT/gw.json $OUT/report.html"
