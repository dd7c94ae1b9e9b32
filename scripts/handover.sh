#!/usr/bin/env bash
# MOBIKE (RFC 4555) handover measurements across network namespaces: how long after an
# address change the gateway receives the first tunnel packet on the new path, and how many
# packets of a 1000 pps stream through the tunnel are lost, over --reps repetitions each.
#
#   cl (client)                                  gw (gateway)                    lan
#   lo 10.9.0.1 (inner)  cA 192.168.1.1 ======= gA 192.168.1.254            gL 10.1.0.1 == l0 10.1.0.10
#   TUN mcl0             cB 192.168.2.1 ======= gB 192.168.2.254            TUN mgw0      (stream receiver)
#                        c6 fd00:a::1   ======= g6 fd00:a::fe
#                        cN 192.168.3.1 == nat (masquerade) == gN 192.168.4.254
#
# Path N crosses the `nat` namespace: 192.168.3.254 (nC) -> 192.168.4.1 (nG, nft masquerade).
# The tunnel protects 10.9.0.1/32 <-> 10.1.0.0/24; a sequenced UDP stream (udpstream.py,
# 1000 pps) runs from 10.9.0.1 to the LAN host 10.1.0.10 during every repetition. Each
# scenario brings up only the client addresses it uses; the others are removed.
#
# Latency: CLOCK_MONOTONIC just before the trigger (handover-probe.py trigger, which execs
# the command) to the first tunnel packet (ESP, or UDP 4500 with a non-zero first word) that
# the gateway receives on another (interface, source, destination) than before, timestamped
# by an AF_PACKET sniffer in the gateway's namespace (handover-probe.py sniff). Loss: the
# sequence numbers missing below the highest one received, once traffic has resumed (the
# receiver's status file); a repetition fails when the gateway sees no new path within the
# scenario's time limit or when no 100 packets arrive within 200 ms after the handover.
#
# Scenarios (one line each: median / p99 / max latency, lost in total and per rep, verdict):
#   swan-bbm            strongSwan <-> strongSwan (charon, kernel-libipsec, mobike = yes):
#                       the client's active address is removed (ip addr del) while the other
#                       path's address exists; the reference the mobiked figures stand beside
#   break-before-make   (a, bbm) mobiked <-> mobiked, the client's active address removed
#   make-before-break   (b, mbb) `mobiked ctl move` to the other pair while both stay up
#   rotate              (b) rotation by policy (mobikeiplifetime: 1s, own-only) for about
#                       --reps seconds: the samples are the rotations, each one's latency
#                       the gap between the last tunnel packet on the old pair and the first
#                       on the new; lost is over the whole stream (goal 0)
#   blackhole           (c) the gateway silently drops the current path (nft, both ways):
#                       the client's DPD (dpd_delay 1 s, dpd_timeout 3 s) must find the other
#   nat                 (d) between path A and the NAT path N, alternately (address removed)
#   disallownat         (e) like nat with `disallownat: true` and a third path B: the client
#                       may never be on the NAT pair; it must end on B (N is listed first)
#   v6                  (f) between IPv4 path A and IPv6 path 6, alternately
#   sw-client-bbm       strongSwan client loses its active address, mobiked gateway follows
#   mk-client-move      mobiked client loses its active address, strongSwan gateway follows
#                       (charon rekeys its child SA after the move: traffic must continue)
#
#   scripts/handover.sh [--only NAME[,NAME]] [--reps N] [--bin PATH] [--json FILE]
#                       [--timeout-s S] [--blackhole-timeout-s S] [--trigger del|move]
#                       [--keep]
#                       [--goal-SCENARIO-KEY VALUE]...
#
# --only takes names, the letters a-f or bbm/mbb. --reps (default 20). --bin: mobiked,
# else $CARGO_TARGET_DIR/release/mobiked or target/release/mobiked, built if absent.
# --json FILE: every sample and every summary. --timeout-s: the handover time limit
# (default 3; blackhole 8). --trigger move: nat, v6 and mk-client-move move by
# `mobiked ctl move` instead of removing the address (default del). Goals, checked per
# scenario (SCENARIO a name or bbm/mbb; KEY median-ms, p99-ms, max-ms, lost (per rep) or
# lost-total), e.g. --goal-bbm-median-ms 5; the defaults are printed with each line.
#
# Needs root; strongSwan for the swan-bbm, sw-client-bbm and mk-client-move scenarios and
# nftables (scripts/test installs both). Kills only what it started, by PID.
# Exit status 1 if any scenario failed, 2 if the harness could not run.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR/..
. "$ROOT/scripts/lib/netns.sh"
# shellcheck source-path=SCRIPTDIR/..
. "$ROOT/scripts/lib/strongswan.sh"

PYTHON="${PYTHON:-python3}"
STREAM="$ROOT/scripts/lib/udpstream.py"
PROBE="$ROOT/scripts/lib/handover-probe.py"
BIN=""
ONLY=""
REPS=20
JSON=""
TIMEOUT_S=3
BH_TIMEOUT_S=8
RATE=1000
TRIGGER=del
declare -A GOAL=()

SCENARIOS=(swan-bbm break-before-make make-before-break rotate blackhole nat disallownat v6
    sw-client-bbm mk-client-move)
scen_name() { # alias -> name
    case "$1" in
        a | bbm) echo break-before-make ;;
        b | mbb) echo make-before-break ;;
        c) echo blackhole ;;
        d) echo nat ;;
        e) echo disallownat ;;
        f) echo v6 ;;
        *) echo "$1" ;;
    esac
}
usage() { sed -n '2,56p' "$0"; }

while [ "$#" -gt 0 ]; do
    case "$1" in
        --only)
            IFS=, read -ra _names <<<"${2:?--only needs names}"
            ONLY=","
            for n in "${_names[@]}"; do ONLY+="$(scen_name "$n"),"; done
            shift
            ;;
        --bin | --mobiked)
            BIN="${2:?$1 needs a path}"
            shift
            ;;
        --reps)
            REPS="${2:?--reps needs a number}"
            shift
            ;;
        --json)
            JSON="${2:?--json needs a file}"
            shift
            ;;
        --timeout-s)
            TIMEOUT_S="${2:?--timeout-s needs seconds}"
            shift
            ;;
        --blackhole-timeout-s)
            BH_TIMEOUT_S="${2:?--blackhole-timeout-s needs seconds}"
            shift
            ;;
        --goal-*)
            g="${1#--goal-}"
            key=""
            for k in lost-total median-ms p99-ms max-ms lost; do
                if [[ "$g" == *"-$k" ]]; then
                    key="$k"
                    break
                fi
            done
            [ -n "$key" ] || { echo "handover: unknown goal '$1' (KEY: median-ms p99-ms max-ms lost lost-total)" >&2; exit 2; }
            s="$(scen_name "${g%-"$key"}")"
            [[ " ${SCENARIOS[*]} " == *" $s "* ]] || { echo "handover: unknown scenario in '$1'" >&2; exit 2; }
            GOAL["$s:$key"]="${2:?$1 needs a value}"
            shift
            ;;
        --trigger)
            TRIGGER="${2:?--trigger needs del or move}"
            [[ "$TRIGGER" =~ ^(del|move)$ ]] || { echo "handover: --trigger is del or move" >&2; exit 2; }
            shift
            ;;
        --keep) NETNS_KEEP_TMP=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "handover: unknown argument '$1' (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || { echo "handover: --reps must be a positive integer" >&2; exit 2; }
if [ -n "$ONLY" ]; then
    for n in ${ONLY//,/ }; do
        [[ " ${SCENARIOS[*]} " == *" $n "* ]] || { echo "handover: unknown scenario '$n'" >&2; exit 2; }
    done
fi
wanted() { [ -z "$ONLY" ] || [[ "$ONLY" == *",$1,"* ]]; }

# Default goals (explicit thresholds; --goal-* overrides). mobiked's are what a handover
# of our own should reach; strongSwan's are loose bounds for the reference itself (a
# hard-coded 100 ms roam delay plus a child SA rekey).
default_goal() { # SCENARIO KEY VALUE
    [ -n "${GOAL[$1:$2]:-}" ] || GOAL["$1:$2"]="$3"
}
default_goal swan-bbm median-ms 500
# Issue goals for mobiked <-> mobiked on veth: break-before-make median < 5 ms, p99 < 20 ms,
# at most 5 packets lost at 1000 pps; make-before-break loses nothing.
default_goal break-before-make median-ms 5
default_goal break-before-make p99-ms 20
default_goal break-before-make lost 5
default_goal make-before-break median-ms 100
default_goal make-before-break lost-total 0
default_goal rotate median-ms 50
default_goal rotate lost-total 0
default_goal blackhole median-ms 6000
default_goal nat median-ms 50
default_goal nat p99-ms 200
default_goal disallownat median-ms 100
default_goal v6 median-ms 50
default_goal v6 p99-ms 200
default_goal sw-client-bbm median-ms 500
default_goal mk-client-move median-ms 100

if [ "$(id -u)" -ne 0 ]; then
    echo "handover: needs root (network namespaces, TUN, AF_PACKET)" >&2
    exit 2
fi
for tool in ip nft "$PYTHON"; do
    command -v "$tool" >/dev/null || { echo "handover: '$tool' not found (scripts/test installs it)" >&2; exit 2; }
done
NEED_SWAN=0 NEED_MK=0
for s in "${SCENARIOS[@]}"; do
    wanted "$s" || continue
    case "$s" in
        swan-bbm) NEED_SWAN=1 ;;
        sw-client-bbm | mk-client-move) NEED_SWAN=1 NEED_MK=1 ;;
        *) NEED_MK=1 ;;
    esac
done
SWAN_OK=1
if [ "$NEED_SWAN" -eq 1 ] && ! swan_check; then
    SWAN_OK=0
fi
if [ "$NEED_MK" -eq 1 ]; then
    if [ -n "$BIN" ]; then
        [ -x "$BIN" ] || { echo "handover: mobiked binary '$BIN' not found" >&2; exit 2; }
    else
        BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/mobiked"
        if [ ! -x "$BIN" ]; then
            echo "handover: building $BIN" >&2
            (cd "$ROOT" && cargo build --release --bin mobiked) >&2 ||
                { echo "handover: cargo build failed" >&2; exit 2; }
        fi
    fi
    BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
fi

netns_init || exit 2
DIR="$NETNS_TMP"
echo "run $NETNS_RUN, files in $DIR, $REPS reps per scenario, $RATE pps stream"
PSK=0x$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
SAMPLES="$DIR/samples.jsonl"
SUMMARIES="$DIR/summaries.jsonl"
: >"$SAMPLES"
: >"$SUMMARIES"

# ---- topology ----------------------------------------------------------------------------
# path -> "client-if client-cidr gateway-if gateway-address" (the client's side is added
# and removed by the scenarios; the gateway keeps all of its addresses).
declare -A PATH_CL_IF=([A]=cA [B]=cB [N]=cN [6]=c6)
declare -A PATH_CL_CIDR=([A]=192.168.1.1/24 [B]=192.168.2.1/24 [N]=192.168.3.1/24 [6]=fd00:a::1/64)
declare -A PATH_GW_IF=([A]=gA [B]=gB [N]=gN [6]=g6)
declare -A PATH_GW_ADDR=([A]=192.168.1.254 [B]=192.168.2.254 [N]=192.168.4.254 [6]=fd00:a::fe)
declare -A GWIF_PATH=([gA]=A [gB]=B [gN]=N [g6]=6)
ALL_PATHS=(A B N 6)
cl_addr() { local c="${PATH_CL_CIDR[$1]}"; echo "${c%/*}"; }

topo_build() {
    netns_add cl || return 1
    NSC="$NETNS_NS"
    netns_add gw || return 1
    NSG="$NETNS_NS"
    netns_add lan || return 1
    NSL="$NETNS_NS"
    netns_add nat || return 1
    NSN="$NETNS_NS"
    local ns
    # No duplicate address detection: an address that turns from tentative to valid a
    # second later is an address event of its own (and a MOBIKE update in the middle of
    # a measurement). Set before the links exist, so that every link inherits it.
    for ns in "$NSC" "$NSG" "$NSL" "$NSN"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
            net.ipv6.conf.default.accept_dad=0 >/dev/null || return 1
    done
    netns_veth "$NSC" cA 192.168.1.1/24 "$NSG" gA 192.168.1.254/24 || return 1
    netns_veth "$NSC" cB 192.168.2.1/24 "$NSG" gB 192.168.2.254/24 || return 1
    netns_veth "$NSC" c6 fd00:a::1/64 "$NSG" g6 fd00:a::fe/64 || return 1
    netns_veth "$NSC" cN 192.168.3.1/24 "$NSN" nC 192.168.3.254/24 || return 1
    netns_veth "$NSN" nG 192.168.4.1/24 "$NSG" gN 192.168.4.254/24 || return 1
    netns_veth "$NSG" gL 10.1.0.1/24 "$NSL" l0 10.1.0.10/24 || return 1
    ip -n "$NSN" addr show dev nG >/dev/null || return 1
    ip netns exec "$NSN" nft -f - <<'EOF' || return 1
table ip hovnat {
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "nG" masquerade
    }
}
EOF
    ip -n "$NSC" route add 192.168.4.0/24 via 192.168.3.254 dev cN || return 1
    ip -n "$NSC" addr add 10.9.0.1/32 dev lo || return 1
    ip -n "$NSL" route add 10.9.0.0/24 via 10.1.0.1 || return 1
    # mobiked's clear sides; their routes exist only while a mobiked end runs.
    netns_tun "$NSC" mcl0 169.254.77.1/32 || return 1
    netns_tun "$NSG" mgw0 169.254.99.1/32 || return 1
}

# cl_paths "A B": the client has exactly these paths' addresses (and routes).
path_up() {
    local p="$1" ifn="${PATH_CL_IF[$1]}" cidr="${PATH_CL_CIDR[$1]}"
    if [ "$p" = 6 ]; then
        ip -n "$NSC" addr replace "$cidr" dev "$ifn" nodad || return 1
    else
        ip -n "$NSC" addr replace "$cidr" dev "$ifn" || return 1
    fi
    if [ "$p" = N ]; then
        ip -n "$NSC" route replace 192.168.4.0/24 via 192.168.3.254 dev cN || return 1
    fi
}
path_down() {
    ip -n "$NSC" addr del "${PATH_CL_CIDR[$1]}" dev "${PATH_CL_IF[$1]}" 2>/dev/null || true
}
cl_paths() {
    local p
    for p in "${ALL_PATHS[@]}"; do
        if [[ " $1 " == *" $p "* ]]; then path_up "$p" || return 1; else path_down "$p"; fi
    done
}

if ! topo_build; then
    echo "handover: could not build the topology" >&2
    exit 2
fi

PASSED=0
FAILED=0
SCEN=""
D=""
EV=""

# ---- stream ------------------------------------------------------------------------------
# One stream per repetition, from 10.9.0.1 (client) to 10.1.0.10:5001 (LAN), long enough
# for any repetition (60 s) and stopped as soon as the repetition is done.
ST_RX="" ST_TX="" ST_STATUS=""
stream_start() {
    local run=$((RANDOM + 1))
    ST_STATUS="$D/stream-$1.status"
    rm -f "$ST_STATUS"
    netns_bg "$NSL" "$D/stream-$1.rx" "$PYTHON" "$STREAM" recv --bind 10.1.0.10:5001 \
        --count 60000 --run "$run" --status "$ST_STATUS" --timeout 70 --idle 30
    ST_RX="$NETNS_LAST_PID"
    netns_wait 5 test -s "$ST_STATUS" || return 1
    netns_bg "$NSC" "$D/stream-$1.tx" "$PYTHON" "$STREAM" send --dst 10.1.0.10:5001 \
        --src 10.9.0.1 --count 60000 --rate "$RATE" --size 200 --run "$run"
    ST_TX="$NETNS_LAST_PID"
}
stream_stop() {
    [ -n "$ST_TX" ] && netns_stop "$ST_TX" 1
    [ -n "$ST_RX" ] && netns_stop "$ST_RX" 1
    ST_TX="" ST_RX=""
}
stream_snap() { "$PYTHON" "$PROBE" stream --status "$ST_STATUS"; } # "RECEIVED HIGHEST"
stream_at_least() { local r; read -r r _ < <(stream_snap); [ "$r" -ge "$1" ]; }

# ---- sniffer -----------------------------------------------------------------------------
SNIFF_PID=""
sniff_start() {
    EV="$D/events"
    : >"$EV"
    netns_bg "$NSG" "$D/sniff.out" "$PYTHON" "$PROBE" sniff --out "$EV" --ifaces gA,gB,gN,g6 --timeout 3600
    SNIFF_PID="$NETNS_LAST_PID"
    netns_wait 5 grep -q '^# ready' "$EV"
}
sniff_stop() {
    [ -n "$SNIFF_PID" ] && netns_stop "$SNIFF_PID" 1
    SNIFF_PID=""
}
# The path the tunnel is on now, as the gateway's interface's path letter.
current_path() {
    local line
    line="$("$PYTHON" "$PROBE" current --events "$EV")" || return 1
    read -r _ line _ <<<"$line"
    echo "${GWIF_PATH[$line]:-?}"
}

# ---- daemons -----------------------------------------------------------------------------
swan_conn_conf() { # ROLE(client|gateway) [EXTRA_IKE_LINES]
    local extra="${2:-}" addrs ts_l ts_r id_l id_r
    if [ "$1" = client ]; then
        addrs="remote_addrs = 192.168.1.254"
        ts_l=10.9.0.1/32 ts_r=10.1.0.0/24 id_l=cl.handover.test id_r=gw.handover.test
    else
        addrs=""
        ts_l=10.1.0.0/24 ts_r=10.9.0.1/32 id_l=gw.handover.test id_r=cl.handover.test
    fi
    cat <<EOF
connections {
    t {
        version = 2
        $addrs
        mobike = yes
        proposals = aes128gcm16-prfsha256-x25519
        dpd_delay = 0
        $extra
        local {
            auth = psk
            id = $id_l
        }
        remote {
            auth = psk
            id = $id_r
        }
        children {
            net {
                local_ts = $ts_l
                remote_ts = $ts_r
                esp_proposals = aes128gcm16
            }
        }
    }
}
secrets {
    ike-t {
        id-1 = $id_l
        id-2 = $id_r
        secret = $PSK
    }
}
EOF
}

MK_GW_PID="" MK_CL_PID=""
# Where mobiked binds. The gateway binds each of its addresses: a responder picks its
# connection by the address an IKE_SA_INIT came to, which a wildcard socket on 500 does not
# tell. The client binds 0.0.0.0, and its IPv6 address in the v6 scenario ([::] beside
# 0.0.0.0 collides: no IPV6_V6ONLY on mobiked's sockets).
MK_CL_BIND='"0.0.0.0:4500"'
# Done waiting: the control socket exists, or the process has exited (a refused
# configuration), which is not worth waiting 10 s for.
sock_or_dead() { [ -S "$2" ] || ! kill -0 "$1" 2>/dev/null; }
mk_gw_start() { # EXTRA_CONN_LINES
    cat >"$D/gw.yaml" <<EOF
# generated by scripts/handover.sh
dataplane: { workers: 1, mode: esp }
cipher: { backend: udp, bind: ["192.168.1.254:4500", "192.168.2.254:4500", "192.168.4.254:4500", "[fd00:a::fe]:4500"] }
clear: { backend: tun, name: mgw0 }
control: { socket: $D/gw.sock }
connections:
  - name: rw
    local_id: gw.handover.test
    remote_id: cl.handover.test
    psk: $PSK
    local_addrs: [192.168.1.254, 192.168.2.254, 192.168.4.254, "fd00:a::fe"]
    local_ts: [10.1.0.0/24]
    remote_ts: [10.9.0.1/32]
    encap: yes
    mobike: true
    mobikeaddrpergw: 4
$1
EOF
    ip -n "$NSG" route replace 10.9.0.0/24 dev mgw0 src 10.1.0.1 || return 1
    netns_bg "$NSG" "$D/gw.log" env RUST_LOG="${RUST_LOG:-info}" "$BIN" gateway -c "$D/gw.yaml"
    MK_GW_PID="$NETNS_LAST_PID"
    netns_wait 10 sock_or_dead "$MK_GW_PID" "$D/gw.sock" && [ -S "$D/gw.sock" ]
}
mk_cl_start() { # LOCAL_ADDRS PEERADDRS EXTRA_CONN_LINES
    cat >"$D/cl.yaml" <<EOF
# generated by scripts/handover.sh
dataplane: { workers: 1, mode: esp }
cipher: { backend: udp, bind: [$MK_CL_BIND] }
clear: { backend: tun, name: mcl0 }
control: { socket: $D/cl.sock }
connections:
  - name: home
    peeraddr: [$2]
    local_addrs: [$1]
    local_id: cl.handover.test
    remote_id: gw.handover.test
    psk: $PSK
    local_ts: [10.9.0.1/32]
    remote_ts: [10.1.0.0/24]
    encap: yes
    mobike: true
$3
EOF
    ip -n "$NSC" route replace 10.1.0.0/24 dev mcl0 src 10.9.0.1 || return 1
    netns_bg "$NSC" "$D/cl.log" env RUST_LOG="${RUST_LOG:-info}" "$BIN" client -c "$D/cl.yaml"
    MK_CL_PID="$NETNS_LAST_PID"
    netns_wait 10 sock_or_dead "$MK_CL_PID" "$D/cl.sock" && [ -S "$D/cl.sock" ]
}
mk_sas() { timeout 5 "$BIN" ctl -s "$D/$1.sock" sas 2>/dev/null; }
# "LOCAL REMOTE" of the first IKE SA of SIDE, from `mobiked ctl sas`.
mk_sa_pair() {
    mk_sas "$1" | "$PYTHON" -c '
import json, sys
try:
    s = json.load(sys.stdin)["sas"]
    print(s[0]["local"], s[0]["remote"])
except Exception:
    sys.exit(1)'
}

daemons_stop() {
    [ -n "$MK_CL_PID" ] && netns_stop "$MK_CL_PID" 4
    [ -n "$MK_GW_PID" ] && netns_stop "$MK_GW_PID" 4
    MK_CL_PID="" MK_GW_PID=""
    swan_stop c
    swan_stop g
    ip -n "$NSC" route del 10.1.0.0/24 dev mcl0 2>/dev/null || true
    ip -n "$NSG" route del 10.9.0.0/24 dev mgw0 2>/dev/null || true
    ip netns exec "$NSG" nft delete table inet hovbh 2>/dev/null || true
}

# Why a daemon did not come up: its log's last lines, one line.
why_log() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" 2>/dev/null | grep -v '^\s*$' | tail -n 3 | cut -c1-240 | tr '\n' ' '
}
dump_logs() {
    local f
    for f in "$D"/gw.log "$D"/cl.log "$D"/c/charon.log "$D"/g/charon.log; do
        [ -s "$f" ] || continue
        echo "  --- $f, last 12 lines ---"
        sed 's/\x1b\[[0-9;]*m//g' "$f" | tail -n 12 | cut -c1-300 | sed 's/^/  | /'
    done
}

# ---- triggers (each runs one command through the probe, which records the time) -----------
TRIG_FROM="" TRIG_TO=""
trigger_run() { # CMD...: T_NS in TRIG_T
    "$PYTHON" "$PROBE" trigger --out "$D/trigger" -- "$@" >"$D/trigger.out" 2>&1
    local rc=$?
    TRIG_T="$(cat "$D/trigger" 2>/dev/null)"
    return "$rc"
}
# Break before make: the client's address on the current path goes.
trig_del() {
    TRIG_FROM="$(current_path)" || return 1
    [ -n "${PATH_CL_IF[$TRIG_FROM]:-}" ] || return 1
    ip netns exec "$NSC" "$PYTHON" "$PROBE" deladdr --out "$D/trigger" \
        --dev "${PATH_CL_IF[$TRIG_FROM]}" --cidr "${PATH_CL_CIDR[$TRIG_FROM]}" >"$D/trigger.out" 2>&1
    local rc=$?
    TRIG_T="$(cat "$D/trigger" 2>/dev/null)"
    return "$rc"
}
rest_del() { path_up "$TRIG_FROM"; }
# Make before break: the operator moves the SA to the other of MOVE_PATHS.
MOVE_PATHS=(A B)
trig_move() {
    TRIG_FROM="$(current_path)" || return 1
    if [ "$TRIG_FROM" = "${MOVE_PATHS[0]}" ]; then TRIG_TO="${MOVE_PATHS[1]}"; else TRIG_TO="${MOVE_PATHS[0]}"; fi
    trigger_run "$BIN" ctl -s "$D/cl.sock" move --conn home --local "$(cl_addr "$TRIG_TO")" \
        --remote "${PATH_GW_ADDR[$TRIG_TO]}"
}
rest_none() { :; }
# Blackhole: the gateway drops the current path both ways, silently for the client.
trig_blackhole() {
    TRIG_FROM="$(current_path)" || return 1
    local g="${PATH_GW_IF[$TRIG_FROM]}"
    cat >"$D/blackhole.nft" <<EOF
table inet hovbh {
    chain in { type filter hook input priority filter; policy accept; iifname "$g" drop; }
    chain out { type filter hook output priority filter; policy accept; oifname "$g" drop; }
}
EOF
    trigger_run ip netns exec "$NSG" nft -f "$D/blackhole.nft"
}
rest_blackhole() { ip netns exec "$NSG" nft delete table inet hovbh 2>/dev/null || true; }

# ---- one scenario ------------------------------------------------------------------------
sample() { # JSON fields (python dict literal body) appended to the samples
    "$PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(scenario=sys.argv[2], rep=int(sys.argv[3])); print(json.dumps(d))' \
        "$1" "$SCEN" "$2" >>"$SAMPLES"
}
jget() { "$PYTHON" -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2" 2>/dev/null; }

# measure TRIGGER RESTORE TIMEOUT_S [AVOID_IFS]: REPS repetitions, samples appended.
# Stops early after 3 failed repetitions in a row (the tunnel is gone by then).
measure() {
    local trig="$1" rest="$2" to="$3" avoid="${4:-}" rep res fails=0 err r1 r2 h2 lost i
    for ((rep = 1; rep <= REPS; rep++)); do
        err=""
        lost=null
        res='{}'
        if ! stream_start "$rep"; then
            err="the stream receiver did not start"
        elif ! netns_wait $((rep == 1 ? 10 : 5)) stream_at_least 200; then
            err="no traffic through the tunnel before the trigger ($(stream_snap | cut -d' ' -f1) packets in $((rep == 1 ? 10 : 5)) s)"
        elif ! "$trig"; then
            err="trigger failed (path '${TRIG_FROM:-?}'): $(head -c 200 "$D/trigger.out" 2>/dev/null | tr '\n' ' ')"
        else
            res="$("$PYTHON" "$PROBE" wait --events "$EV" --after "$TRIG_T" --timeout "$to" ${avoid:+--avoid "$avoid"})"
            err="$(jget "$res" error)"
            if [ -z "$err" ]; then
                # Traffic resumed: 100 packets within some 200 ms window, within the limit.
                local ok=0
                for ((i = 0; i < to * 5; i++)); do
                    read -r r1 _ < <(stream_snap)
                    sleep 0.2
                    read -r r2 h2 < <(stream_snap)
                    if [ $((r2 - r1)) -ge 100 ]; then ok=1; break; fi
                done
                if [ "$ok" -eq 1 ]; then
                    lost=$((h2 + 1 - r2))
                else
                    err="handover after $(jget "$res" latency_ms) ms, but traffic did not resume within ${to} s ($r2 received, highest $h2)"
                fi
            fi
        fi
        [ -n "$err" ] && res="$("$PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); d["error"]=sys.argv[2]; print(json.dumps(d))' "$res" "$err")"
        res="$("$PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); d["lost"]=json.loads(sys.argv[2]); d["from"]=sys.argv[3]; print(json.dumps(d))' "$res" "$lost" "${TRIG_FROM:-}")"
        sample "$res" "$rep"
        "$rest"
        # Let the tunnel settle (a move back to a restored path) while the stream runs.
        "$PYTHON" "$PROBE" settle --events "$EV" --quiet-ms 700 --timeout 4 || true
        stream_stop
        if [ -n "$err" ]; then
            fails=$((fails + 1))
            [ "$fails" -lt 3 ] || { echo "  $SCEN: 3 failed repetitions in a row, stopping at rep $rep: $err" >&2; break; }
        else
            fails=0
        fi
        TRIG_FROM="" TRIG_TO=""
    done
}

goal_args() {
    local k out=()
    for k in median-ms p99-ms max-ms lost lost-total; do
        [ -n "${GOAL[$SCEN:$k]:-}" ] || continue
        case "$k" in
            median-ms) out+=(--goal "median_ms=${GOAL[$SCEN:$k]}") ;;
            p99-ms) out+=(--goal "p99_ms=${GOAL[$SCEN:$k]}") ;;
            max-ms) out+=(--goal "max_ms=${GOAL[$SCEN:$k]}") ;;
            lost) out+=(--goal "lost_per_rep=${GOAL[$SCEN:$k]}") ;;
            lost-total) out+=(--goal "lost_total=${GOAL[$SCEN:$k]}") ;;
        esac
    done
    printf '%s\n' "${out[@]}"
}

# report [NOTE] [EXTRA_FAILURE]: the scenario's line from its samples.
report() {
    local note="${1:-}" extra="${2:-}" line rc goals=()
    mapfile -t goals < <(goal_args)
    line="$("$PYTHON" "$PROBE" summary --samples "$SAMPLES" --scenario "$SCEN" --reps "${REPORT_REPS:-$REPS}" \
        "${goals[@]}" ${note:+--note "$note"} --json-out "$SUMMARIES")"
    rc=$?
    if [ -n "$extra" ]; then
        line="${line/ PASS/ FAIL}: $extra"
        rc=1
    fi
    echo "$line"
    if [ "$rc" -eq 0 ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); dump_logs; fi
}
# fail_setup WHY: the scenario could not start (one line, counted as failed).
fail_setup() {
    echo "$SCEN: FAIL $1"
    "$PYTHON" -c 'import json,sys; print(json.dumps({"scenario": sys.argv[1], "verdict": "FAIL", "reasons": [sys.argv[2]]}))' \
        "$SCEN" "$1" >>"$SUMMARIES"
    FAILED=$((FAILED + 1))
    dump_logs
}

scen_begin() { # NAME PATHS
    SCEN="$1"
    D="$DIR/$SCEN"
    mkdir -p "$D"
    rest_blackhole
    cl_paths "$2" || { fail_setup "could not set the client's addresses ($2)"; return 1; }
    sniff_start || { fail_setup "the sniffer did not start: $(tail -n 2 "$D/sniff.out")"; return 1; }
}
scen_end() {
    daemons_stop
    sniff_stop
}

# Tunnel up between the client and the gateway: some stream packets arrive.
tunnel_up() { # TIMEOUT_S
    stream_start up || return 1
    netns_wait "$1" stream_at_least 50
    local rc=$?
    stream_stop
    return "$rc"
}

# ---- scenarios -----------------------------------------------------------------------------
swan_pair_start() { # starts charon client (cl) and/or gateway (gw): "c g", "c" or "g"
    local who
    for who in $1; do
        if [ "$who" = c ]; then
            swan_start c "$NSC" "$D/c" || return 1
            swan_conn_conf client >"$D/c/swanctl.conf"
        else
            swan_start g "$NSG" "$D/g" || return 1
            swan_conn_conf gateway >"$D/g/swanctl.conf"
        fi
        swan_load "$who" || return 1
    done
}

scenario_swan_bbm() {
    scen_begin swan-bbm "A B" || return
    [ "$SWAN_OK" -eq 1 ] || { fail_setup "strongSwan is not installed"; scen_end; return; }
    if ! swan_pair_start "g c" || ! swan_initiate c net 10 || ! swan_wait_established c t 5; then
        fail_setup "no strongSwan SA: $(tail -n 1 "$D/c/initiate.out" 2>/dev/null)"
        scen_end
        return
    fi
    if ! tunnel_up 10; then
        fail_setup "no traffic through the strongSwan tunnel"
        scen_end
        return
    fi
    measure trig_del rest_del "$TIMEOUT_S"
    report "charon $(dpkg-query -W -f='${Version}' strongswan-charon 2>/dev/null), kernel-libipsec"
    scen_end
}

# mobiked <-> mobiked: CL_ADDRS PEERADDRS CL_EXTRA GW_EXTRA
mk_pair_start() {
    if ! mk_gw_start "$4"; then
        fail_setup "mobiked gateway did not start: $(why_log "$D/gw.log")"
        return 1
    fi
    if ! mk_cl_start "$1" "$2" "$3"; then
        fail_setup "mobiked client did not start: $(why_log "$D/cl.log")"
        return 1
    fi
    if ! tunnel_up 10; then
        fail_setup "no traffic through the tunnel 10 s after the start (client SAs: $(mk_sa_pair cl || echo none))"
        return 1
    fi
}
gw_addrs_for() { # PATHS -> peeraddr list
    local p out=()
    for p in $1; do out+=("\"${PATH_GW_ADDR[$p]}\""); done
    local IFS=,
    echo "${out[*]}"
}
cl_addrs_for() {
    local p out=()
    for p in $1; do out+=("\"$(cl_addr "$p")\""); done
    local IFS=,
    echo "${out[*]}"
}

scenario_bbm() {
    scen_begin break-before-make "A B" || return
    if mk_pair_start "$(cl_addrs_for "A B")" "$(gw_addrs_for "A B")" "" ""; then
        measure trig_del rest_del "$TIMEOUT_S"
        report
    fi
    scen_end
}

scenario_mbb() {
    scen_begin make-before-break "A B" || return
    if mk_pair_start "$(cl_addrs_for "A B")" "$(gw_addrs_for "A B")" "" ""; then
        MOVE_PATHS=(A B)
        measure trig_move rest_none "$TIMEOUT_S"
        report "mobiked ctl move"
    fi
    scen_end
}

scenario_rotate() {
    scen_begin rotate "A B" || return
    local secs=$((REPS + 1)) t0 t1 r1 r2 h2 lost n=0 line extra=""
    if mk_pair_start "$(cl_addrs_for "A B")" "$(gw_addrs_for "A B")" "    mobikeiplifetime: 1s
    mobikechangeaddrtype: own-only" ""; then
        if ! stream_start rot || ! netns_wait 10 stream_at_least 200; then
            fail_setup "no traffic through the tunnel"
            stream_stop
            scen_end
            return
        fi
        trigger_run true
        t0="$TRIG_T"
        sleep "$secs"
        trigger_run true
        t1="$TRIG_T"
        read -r r1 _ < <(stream_snap)
        sleep 0.2
        read -r r2 h2 < <(stream_snap)
        lost=$((h2 + 1 - r2))
        stream_stop
        while IFS= read -r line; do
            n=$((n + 1))
            sample "$("$PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); d["lost"]=int(sys.argv[2]); print(json.dumps(d))' \
                "$line" "$([ "$n" -eq 1 ] && echo "$lost" || echo 0)")" "$n"
        done < <("$PYTHON" "$PROBE" gaps --events "$EV" --after "$t0" --before "$t1")
        [ "$n" -ge $((secs / 2)) ] || extra="only $n rotations in $secs s (mobikeiplifetime 1s)"
        [ $((r2 - r1)) -ge 100 ] || extra+="${extra:+; }traffic stopped ($((r2 - r1)) packets in the last 200 ms)"
        if [ "$n" -eq 0 ]; then
            sample "{\"lost\": $lost}" 1
        fi
        REPORT_REPS=0 report "mobikeiplifetime 1s, own-only: $n rotations in $secs s, lost $lost over the stream" "$extra"
    fi
    scen_end
}

scenario_blackhole() {
    scen_begin blackhole "A B" || return
    local dpd="    dpd_delay: 1s
    dpd_timeout: 3s"
    if mk_pair_start "$(cl_addrs_for "A B")" "$(gw_addrs_for "A B")" "$dpd" "$dpd"; then
        measure trig_blackhole rest_blackhole "$BH_TIMEOUT_S"
        report "dpd_delay 1 s, dpd_timeout 3 s"
    fi
    scen_end
}

# The directions of the samples of SCEN: "A->N 10, N->A 10".
directions() {
    "$PYTHON" - "$SAMPLES" "$SCEN" <<'EOF'
import json, sys, collections
c = collections.Counter()
for line in open(sys.argv[1]):
    s = json.loads(line)
    if s.get("scenario") == sys.argv[2] and not s.get("error") and s.get("new"):
        c[(s.get("from") or "?") + "->" + s["new"].split()[0]] += 1
print(", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "no handover")
EOF
}

# --trigger: the address goes (del, default) or the operator moves the SA (move) between
# the two paths of MOVE_PATHS, for the nat, v6 and mk-client-move scenarios.
measure_two() { # PATH PATH
    MOVE_PATHS=("$1" "$2")
    if [ "$TRIGGER" = move ]; then
        measure trig_move rest_none "$TIMEOUT_S"
    else
        measure trig_del rest_del "$TIMEOUT_S"
    fi
}

scenario_nat() {
    scen_begin nat "A N" || return
    if mk_pair_start "$(cl_addrs_for "A N")" "$(gw_addrs_for "A N")" "" ""; then
        measure_two A N
        report "trigger $TRIGGER; moves (from path -> gateway interface): $(directions)"
    fi
    scen_end
}

scenario_disallownat() {
    scen_begin disallownat "A N B" || return
    local extra="" seen
    if mk_pair_start "$(cl_addrs_for "A N B")" "$(gw_addrs_for "A N B")" "    disallownat: true" ""; then
        measure trig_del rest_del "$TIMEOUT_S" gN
        # Never on the NAT pair: no tunnel packet ever reached the gateway through it.
        seen="$(grep -c ' gN ' "$EV")"
        [ "$seen" -eq 0 ] || extra="the client's tunnel packets reached the gateway over the NAT pair $seen time(s)"
        report "moves: $(directions); ESP on the NAT pair: $seen" "$extra"
    fi
    scen_end
}

scenario_v6() {
    scen_begin v6 "A 6" || return
    MK_CL_BIND='"0.0.0.0:4500", "[fd00:a::1]:4500"'
    if mk_pair_start "$(cl_addrs_for "A 6")" "$(gw_addrs_for "A 6")" "" ""; then
        measure_two A 6
        report "trigger $TRIGGER; moves: $(directions)"
    fi
    MK_CL_BIND='"0.0.0.0:4500"'
    scen_end
}

scenario_sw_client_bbm() {
    scen_begin sw-client-bbm "A B" || return
    [ "$SWAN_OK" -eq 1 ] || { fail_setup "strongSwan is not installed"; scen_end; return; }
    if ! mk_gw_start ""; then
        fail_setup "mobiked gateway did not start: $(why_log "$D/gw.log")"
    elif ! swan_pair_start c || ! swan_initiate c net 10 || ! swan_wait_established c t 5; then
        fail_setup "no SA between strongSwan and mobiked: $(tail -n 1 "$D/c/initiate.out" 2>/dev/null)"
    elif ! tunnel_up 10; then
        fail_setup "no traffic through the tunnel"
    else
        measure trig_del rest_del "$TIMEOUT_S"
        report "strongSwan client, mobiked gateway"
    fi
    scen_end
}

scenario_mk_client_move() {
    scen_begin mk-client-move "A B" || return
    [ "$SWAN_OK" -eq 1 ] || { fail_setup "strongSwan is not installed"; scen_end; return; }
    if ! swan_pair_start g; then
        fail_setup "charon (gateway) did not start"
    elif ! mk_cl_start "$(cl_addrs_for "A B")" "$(gw_addrs_for "A B")" ""; then
        fail_setup "mobiked client did not start: $(why_log "$D/cl.log")"
    elif ! tunnel_up 10; then
        fail_setup "no traffic through the tunnel 10 s after the start (client SAs: $(mk_sa_pair cl || echo none))"
    else
        measure_two A B
        # The client forces UDP encapsulation (the udp backend cannot send plain ESP)
        # with a fake NAT_DETECTION_SOURCE_IP: every NAT-D it sends later (DPD,
        # UPDATE_SA_ADDRESSES) must say the same, or charon decides the NAT went away
        # and would switch a kernel-ESP SA to plain ESP (RFC 7296 2.23, RFC 4555 3.9).
        local flips
        flips="$(grep -c 'not behind NAT anymore' "$D/g/charon.log" 2>/dev/null)"
        report "mobiked client, strongSwan gateway, trigger $TRIGGER" \
            "$([ "${flips:-0}" -gt 0 ] && echo "charon saw the client's NAT disappear $flips times (inconsistent NAT-D)")"
    fi
    scen_end
}

scenario_fn() {
    case "$1" in
        swan-bbm) echo scenario_swan_bbm ;;
        break-before-make) echo scenario_bbm ;;
        make-before-break) echo scenario_mbb ;;
        rotate) echo scenario_rotate ;;
        blackhole) echo scenario_blackhole ;;
        nat) echo scenario_nat ;;
        disallownat) echo scenario_disallownat ;;
        v6) echo scenario_v6 ;;
        sw-client-bbm) echo scenario_sw_client_bbm ;;
        mk-client-move) echo scenario_mk_client_move ;;
    esac
}

t0=$SECONDS
for s in "${SCENARIOS[@]}"; do
    wanted "$s" || continue
    "$(scenario_fn "$s")"
done
if [ -n "$JSON" ]; then
    "$PYTHON" - "$SAMPLES" "$SUMMARIES" "$JSON" "$REPS" "$RATE" <<'EOF'
import json, sys
samples = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
summaries = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
with open(sys.argv[3], "w") as f:
    json.dump({"reps": int(sys.argv[4]), "rate_pps": int(sys.argv[5]),
               "summaries": summaries, "samples": samples}, f, indent=1)
EOF
fi
echo "$PASSED passed, $FAILED failed ($((SECONDS - t0)) s)"
[ "$FAILED" -eq 0 ]
