#!/usr/bin/env bash
# Interop harness with strongSwan's charon (kernel-libipsec: the kernel here has no ESP),
# across three network namespaces:
#
#   swi (initiator side)                 swr (responder side)              swl (LAN)
#   lo 10.1.0.1 -- IKE peer -- i0 192.0.2.1 ===== r0 192.0.2.2 -- IKE peer -- r1 10.2.0.1 ===== l0 10.2.0.2
#
# The tunnel protects 10.1.0.0/24 <-> 10.2.0.0/24. Neither peer has any other route to
# the other's inner network, so inner traffic can only pass through the tunnel (for
# strongSwan: TUN device ipsec0 and the routes charon installs in table 220).
#
# Scenarios (each starts its daemons afresh; one line each, then `N passed, M failed`):
#   swan-swan   strongSwan initiator -> strongSwan responder, PSK, IKE
#               aes128gcm16-prfsha256-x25519, ESP aes128gcm16: ping both ways between
#               10.1.0.1 and the LAN host 10.2.0.2, a bounded UDP stream each way, and the
#               child SA's packet counters on both ends cover what was sent
#   mk-gw-rekeys
#               strongSwan initiator (swi) -> mobiked gateway (swr, TUN mk0 as its clear
#               side), child PFS aes128gcm16-x25519: child SA (4 s) and IKE SA (7 s, so
#               that no child rekey falls due with an IKE rekey within the 13 s stream)
#               rekeys started by mobiked, then by strongSwan, while a 1000 pps stream
#               runs each way between 10.1.0.1 and the LAN host: rekey counts, loss and
#               longest gap per direction, and no SA left over on either end
#   rekey-collide
#               mobiked's child SA and IKE SA rekeys fall due at the same moment (both
#               6 s, child life_time 10 s, DPD at its 30 s default): the child must still
#               be rekeyed before its hard lifetime, and traffic pass both ways at 11 s
#   peer-restart
#               charon is killed (SIGKILL) and restarted, and sets up a new IKE SA with
#               N(INITIAL_CONTACT) long before mobiked's DPD (30 s / 60 s) could notice:
#               mobiked must drop the stale SA (RFC 7296 2.4) and traffic must pass both
#               ways over the new one at once
#
#   scripts/interop-strongswan.sh [--only NAME[,NAME]] [--bin BIN] [--keep]
#
# The mobiked scenarios use --bin (alias --mobiked), else $CARGO_TARGET_DIR/release/mobiked
# or target/release/mobiked, built with `cargo build --release --bin mobiked` if absent.
#
# Needs root and strongSwan (scripts/test installs it). Kills only what it started, by PID.
# Exit status 1 if any scenario failed, 2 if the harness could not run.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR/..
. "$ROOT/scripts/lib/netns.sh"
# shellcheck source-path=SCRIPTDIR/..
. "$ROOT/scripts/lib/strongswan.sh"

PYTHON="${PYTHON:-python3}"
STREAM="$ROOT/scripts/lib/udpstream.py"
MOBIKED=""
ONLY=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --only)
            ONLY=",${2:?--only needs names},"
            shift
            ;;
        --mobiked | --bin)
            MOBIKED="${2:?$1 needs a path}"
            shift
            ;;
        --keep) NETNS_KEEP_TMP=1 ;;
        -h | --help)
            sed -n '2,40p' "$0"
            exit 0
            ;;
        *)
            echo "interop-strongswan: unknown argument '$1' (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done

if [ "$(id -u)" -ne 0 ]; then
    echo "interop-strongswan: needs root (network namespaces, TUN)" >&2
    exit 2
fi
swan_check || exit 2
for tool in ip ping "$PYTHON"; do
    command -v "$tool" >/dev/null || { echo "interop-strongswan: '$tool' not found" >&2; exit 2; }
done
if [ -n "$MOBIKED" ]; then
    [ -x "$MOBIKED" ] || { echo "interop-strongswan: mobiked binary '$MOBIKED' not found" >&2; exit 2; }
else
    MOBIKED="${CARGO_TARGET_DIR:-$ROOT/target}/release/mobiked"
    if [ ! -x "$MOBIKED" ] && { [ -z "$ONLY" ] || [[ "$ONLY" == *,mk-* ]] || [[ "$ONLY" == *,peer-* ]] || [[ "$ONLY" == *,rekey-* ]]; }; then
        echo "interop-strongswan: building $MOBIKED" >&2
        (cd "$ROOT" && cargo build --release --bin mobiked) >&2 ||
            { echo "interop-strongswan: cargo build failed" >&2; exit 2; }
    fi
fi
[ ! -x "$MOBIKED" ] || MOBIKED="$(cd "$(dirname "$MOBIKED")" && pwd)/$(basename "$MOBIKED")"

netns_init || exit 2
DIR="$NETNS_TMP"
echo "run $NETNS_RUN, files in $DIR"
PSK=0x$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')

# ---- topology ----------------------------------------------------------------------------
netns_add swi || exit 2
NSI="$NETNS_NS"
netns_add swr || exit 2
NSR="$NETNS_NS"
netns_add swl || exit 2
NSL="$NETNS_NS"
# IPv4 only: otherwise IPv6 duplicate address detection ends about 1 s after the links come
# up, charon sees the address flags change and runs a MOBIKE address update in the middle
# of the traffic checks.
for ns in "$NSI" "$NSR" "$NSL"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 >/dev/null || exit 2
done
netns_veth "$NSI" i0 192.0.2.1/24 "$NSR" r0 192.0.2.2/24 || exit 2
netns_veth "$NSR" r1 10.2.0.1/24 "$NSL" l0 10.2.0.2/24 || exit 2
ip -n "$NSI" addr add 10.1.0.1/32 dev lo || exit 2
# The LAN host answers the initiator's network through the responder; the responder
# itself reaches 10.1.0.0/24 only through the tunnel.
ip -n "$NSL" route add 10.1.0.0/24 via 10.2.0.1 || exit 2

PASSED=0
FAILED=0
SCEN=""
report() { # PASS|FAIL detail...: exactly one line per scenario
    local verdict="$1"
    shift
    echo "$SCEN: $verdict $*"
    if [ "$verdict" = PASS ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
}
wanted() { [ -z "$ONLY" ] || [[ "$ONLY" == *",$1,"* ]]; }

ping_ok() { # NS SRC DST: 3 pings, none lost
    timeout 15 ip netns exec "$1" ping -n -c 3 -i 0.2 -W 2 -I "$2" "$3" >"$DIR/ping-$SCEN.out" 2>&1 &&
        grep -q ' 0% packet loss' "$DIR/ping-$SCEN.out"
}

# A stream runs inside a command substitution or a background subshell, whose netns_bg
# PIDs the main shell's cleanup never sees (and background jobs ignore SIGINT): each
# stream process also leaves its PID in $DIR/pids/ while it runs, for this cleanup step,
# which stops only PIDs that are still a udpstream process.
mkdir -p "$DIR/pids"
stream_cleanup() {
    local f p
    for f in "$DIR"/pids/*; do
        [ -f "$f" ] || continue
        p="$(cat "$f")"
        if [[ "$p" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q udpstream; then
            kill -KILL "$p" 2>/dev/null
        fi
        rm -f "$f"
    done
}
netns_on_cleanup stream_cleanup

# stream SRC_NS SRC DST_NS DST COUNT RATE: prints the receiver's JSON line (bounded: the
# receiver stops after its timeout or 3 s without packets, the sender after COUNT)
stream() {
    local sns="$1" src="$2" dns="$3" dst="$4" count="$5" rate="$6" run status rx tx i
    run=$((RANDOM + 1))
    status="$DIR/stream-$SCEN-$run.status"
    netns_bg "$dns" "$DIR/stream-$SCEN-$run.rx" "$PYTHON" "$STREAM" recv --bind "$dst:5001" \
        --count "$count" --run "$run" --status "$status" --timeout $((count / rate + 10)) --idle 3
    rx="$NETNS_LAST_PID"
    echo "$rx" >"$DIR/pids/$run.rx"
    if ! netns_wait 5 test -s "$status"; then
        echo '{"error": "receiver did not start"}'
        netns_stop "$rx" 1
        rm -f "$DIR/pids/$run.rx"
        return
    fi
    netns_bg "$sns" "$DIR/stream-$SCEN-$run.tx" "$PYTHON" "$STREAM" send --dst "$dst:5001" \
        --src "$src" --count "$count" --rate "$rate" --size 200 --run "$run"
    tx="$NETNS_LAST_PID"
    echo "$tx" >"$DIR/pids/$run.tx"
    for ((i = 0; i < (count / rate + 15) * 20; i++)); do
        kill -0 "$rx" 2>/dev/null || break
        sleep 0.05
    done
    netns_stop "$tx" 1
    netns_stop "$rx" 1
    rm -f "$DIR/pids/$run.tx" "$DIR/pids/$run.rx"
    tail -n 1 "$DIR/stream-$SCEN-$run.rx" 2>/dev/null
}
jfield() { "$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], "?"))' "$1" "$2" 2>/dev/null || echo "?"; }

# "IN OUT": packets through the child SA CHILD of instance NAME, from swanctl --list-sas
# (lines "in  <spi>_i, <n> bytes, <p> packets" and "out <spi>_o, ...").
swan_child_packets() {
    swan_list "$1" | awk -v c="$2" '
        $1 == c ":" { inchild = 1; next }
        inchild && $1 == "in"  { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^packets/) pin = $i }
        inchild && $1 == "out" { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^packets/) pout = $i }
        END { printf "%d %d\n", pin, pout }'
}

# swanctl.conf of one end: LOCAL REMOTE LOCAL_ID REMOTE_ID LOCAL_TS REMOTE_TS IKE ESP
swan_conf() {
    cat <<EOF
connections {
    t {
        version = 2
        local_addrs = $1
        remote_addrs = $2
        proposals = $7
        dpd_delay = 0
        local {
            auth = psk
            id = $3
        }
        remote {
            auth = psk
            id = $4
        }
        children {
            net {
                local_ts = $5
                remote_ts = $6
                esp_proposals = $8
            }
        }
    }
}
secrets {
    ike-t {
        id-1 = $3
        id-2 = $4
        secret = $PSK
    }
}
EOF
}

dump_swan() {
    local n
    for n in "$@"; do swan_dump "$n" 15; done
}

# ---- scenario: strongSwan <-> strongSwan ------------------------------------------------
# Proves the harness itself: topology, charon instances, routes through ipsec0, streams.
scenario_swan_swan() {
    SCEN=swan-swan
    local d="$DIR/$SCEN" p1=FAIL p2=FAIL res1 res2 lost1 lost2 ci cr count=1000 rate=500
    if ! swan_start i "$NSI" "$d/i" || ! swan_start r "$NSR" "$d/r"; then
        report FAIL "charon did not start"
        dump_swan i r
        swan_stop i
        swan_stop r
        return
    fi
    swan_conf 192.0.2.1 192.0.2.2 swi.interop.test swr.interop.test 10.1.0.0/24 10.2.0.0/24 \
        aes128gcm16-prfsha256-x25519 aes128gcm16 >"$d/i/swanctl.conf"
    swan_conf 192.0.2.2 192.0.2.1 swr.interop.test swi.interop.test 10.2.0.0/24 10.1.0.0/24 \
        aes128gcm16-prfsha256-x25519 aes128gcm16 >"$d/r/swanctl.conf"
    if ! swan_load i || ! swan_load r || ! swan_initiate i net 10 ||
        ! swan_wait_established i t 5 || ! swan_wait_established r t 5; then
        report FAIL "no SA: $(tail -n 1 "$d/i/initiate.out" 2>/dev/null)"
        dump_swan i r
        swan_stop i
        swan_stop r
        return
    fi
    local suite
    suite="$(grep -o 'selected proposal: IKE:[^ ]*' "$d/i/charon.log" | head -n 1 | cut -d: -f3)"
    ping_ok "$NSI" 10.1.0.1 10.2.0.2 && p1=ok
    [ "$p1" = ok ] || p1="FAIL ($(grep -E 'loss|rror|nreach' "$DIR/ping-$SCEN.out" | head -n 1))"
    ping_ok "$NSL" 10.2.0.2 10.1.0.1 && p2=ok
    [ "$p2" = ok ] || p2="FAIL ($(grep -E 'loss|rror|nreach' "$DIR/ping-$SCEN.out" | head -n 1))"
    res1="$(stream "$NSI" 10.1.0.1 "$NSL" 10.2.0.2 "$count" "$rate")"
    res2="$(stream "$NSL" 10.2.0.2 "$NSI" 10.1.0.1 "$count" "$rate")"
    lost1="$(jfield "$res1" lost)"
    lost2="$(jfield "$res2" lost)"
    ci="$(swan_child_packets i net)"
    cr="$(swan_child_packets r net)"
    # Everything sent through the tunnel is counted by both ends' child SA (6 pings, two
    # streams; the counters include what was lost on the way, if anything).
    local min=$((count + 6)) ok=1
    [ "$p1$p2" = okok ] || ok=0
    [[ "$lost1" =~ ^[0-9]+$ && "$lost2" =~ ^[0-9]+$ ]] || ok=0
    [ "$ok" -eq 1 ] && { [ "$lost1" -le $((count / 100)) ] && [ "$lost2" -le $((count / 100)) ]; } || ok=0
    # shellcheck disable=SC2086
    set -- $ci $cr
    [ "${1:-0}" -ge "$min" ] && [ "${2:-0}" -ge "$min" ] && [ "${3:-0}" -ge "$min" ] &&
        [ "${4:-0}" -ge "$min" ] || ok=0
    local detail="IKE $suite; ping i->lan $p1, lan->i $p2; stream $count at $rate pps i->lan lost $lost1, lan->i lost $lost2; child packets in/out initiator $ci, responder $cr"
    if [ "$ok" -eq 1 ]; then
        report PASS "$detail"
    else
        report FAIL "$detail; streams: ${res1:-none} / ${res2:-none}"
        dump_swan i r
    fi
    swan_stop i
    swan_stop r
}

# ---- mobiked scenarios -------------------------------------------------------------------
# mobiked replaces the responder's charon: `mobiked gateway` in swr, its clear side a TUN
# device mk0 there. The responder namespace forwards between r1 (LAN) and mk0, so the LAN
# host reaches 10.1.0.0/24 only through mobiked's tunnel. mobiked runs through netns_bg, so
# the cleanup stops it by PID on every exit path.
MK_PID=""
mk_ready() { # creates mk0 in swr once; the route exists only while a mobiked scenario runs
    ip -n "$NSR" link show mk0 >/dev/null 2>&1 || netns_tun "$NSR" mk0 169.254.99.1/32 || return 1
    ip -n "$NSR" route replace 10.1.0.0/24 dev mk0 src 10.2.0.1
}
mk_unready() { ip -n "$NSR" route del 10.1.0.0/24 dev mk0 2>/dev/null || true; }
mk_start() { # DIR: runs `mobiked gateway -c DIR/mk.yaml` in swr
    rm -f "$1/mk.sock"
    netns_bg "$NSR" "$1/mk.log" env RUST_LOG="${RUST_LOG:-info}" "$MOBIKED" gateway -c "$1/mk.yaml"
    MK_PID="$NETNS_LAST_PID"
    netns_wait 10 test -S "$1/mk.sock"
}
mk_stop() {
    [ -n "$MK_PID" ] && netns_stop "$MK_PID" 4
    MK_PID=""
}
# "IKE CHILD" as `mobiked ctl sas` lists them ("? ?" if it does not answer)
mk_counts() {
    timeout 5 "$MOBIKED" ctl -s "$1/mk.sock" sas 2>/dev/null | "$PYTHON" -c '
import json, sys
try:
    s = json.load(sys.stdin)["sas"]
except Exception:
    print("? ?"); sys.exit(0)
print(len(s), sum(len(x["children"]) for x in s))'
}
swan_counts() { # "IKE CHILD" as swanctl --list-sas lists them
    local out
    out="$(swan_list "$1")"
    echo "$(grep -c ESTABLISHED <<<"$out") $(grep -c INSTALLED <<<"$out")"
}
# mobiked gateway configuration: DIR, extra lines for the connection
mk_gateway_conf() {
    cat >"$1/mk.yaml" <<EOF
dataplane: { workers: 1, mode: esp }
cipher: { backend: udp, bind: ["192.0.2.2:4500"] }
clear: { backend: tun, name: mk0 }
control: { socket: $1/mk.sock }
connections:
  - name: swi
    local_id: swr.interop.test
    remote_id: swi.interop.test
    psk: $PSK
    local_ts: [10.2.0.0/24]
    remote_ts: [10.1.0.0/24]
$2
EOF
}
# strongSwan initiator in swi against mobiked: DIR IKE ESP CHILD_EXTRA IKE_EXTRA
mk_swan_initiator_conf() {
    swan_conf 192.0.2.1 192.0.2.2 swi.interop.test swr.interop.test 10.1.0.0/24 10.2.0.0/24 \
        "$2" "$3" | awk -v child="$4" -v ike="$5" '
        { print }
        /esp_proposals = / && child != "" { print "                " child }
        /dpd_delay = / && ike != "" { print "        " ike }' >"$1/swanctl.conf"
}
mk_dump() { # DIR
    echo "  --- mobiked ($1/mk.log), last 15 lines ---"
    sed 's/\x1b\[[0-9;]*m//g' "$1/mk.log" 2>/dev/null | tail -n 15 | cut -c1-300 | sed 's/^/  | /'
    swan_dump i 15
}
mk_finish() {
    mk_stop
    swan_stop i
    mk_unready
}

scenario_mk_gw_rekeys() {
    SCEN=mk-gw-rekeys
    local d="$DIR/$SCEN" who detail="" ok=1 ra rb la lb ga gb crk irk mkc swc sp
    [ -x "$MOBIKED" ] || { report FAIL "no mobiked binary ($MOBIKED)"; return; }
    for who in mobiked strongswan; do
        mkdir -p "$d/$who"
        if ! mk_ready; then
            report FAIL "could not set up mk0 in $NSR"
            return
        fi
        if [ "$who" = mobiked ]; then
            mk_gateway_conf "$d/$who" "    esp_proposals: [aes128gcm16-x25519]
    rekey_time: 7s
    over_time: 4s
    rand_time: 0s
    children: { rekey_time: 4s, life_time: 8s, rand_time: 0s }"
            mk_swan_initiator_conf "$d/$who" default aes128gcm16-x25519 "rekey_time = 1h" "rekey_time = 1h"
        else
            mk_gateway_conf "$d/$who" "    esp_proposals: [aes128gcm16-x25519]
    rekey_time: 0
    children: { rekey_time: 0, life_time: 0 }"
            mk_swan_initiator_conf "$d/$who" default aes128gcm16-x25519 \
                "rekey_time = 4s
                life_time = 8s
                rand_time = 0s" "rekey_time = 7s
        over_time = 4s
        rand_time = 0s"
        fi
        if ! mk_start "$d/$who" || ! swan_start i "$NSI" "$d/$who" || ! swan_load i ||
            ! swan_initiate i net 10 || ! netns_wait 5 test "$(mk_counts "$d/$who")" = "1 1"; then
            ok=0
            detail+="$who: no SA (mobiked $(mk_counts "$d/$who"); $(tail -n 1 "$d/$who/initiate.out" 2>/dev/null)); "
            mk_dump "$d/$who"
            mk_finish
            continue
        fi
        # 13 s at 1000 pps each way: two or three child rekeys and two IKE rekeys.
        # (The extra $RANDOM keeps the two streams' run ids apart even where a subshell
        # inherits the parent's random sequence.)
        (: "$RANDOM" && stream "$NSI" 10.1.0.1 "$NSL" 10.2.0.2 13000 1000 >"$d/$who/stream-a.json") &
        sp=$!
        rb="$(stream "$NSL" 10.2.0.2 "$NSI" 10.1.0.1 13000 1000)"
        wait "$sp"
        ra="$(cat "$d/$who/stream-a.json")"
        la="$(jfield "$ra" lost)" lb="$(jfield "$rb" lost)"
        ga="$(jfield "$ra" max_gap_ms)" gb="$(jfield "$rb" max_gap_ms)"
        crk="$(grep -c 'rekey_of=Some' "$d/$who/mk.log")"
        irk="$(grep -c 'IKE SA rekeyed' "$d/$who/mk.log")"
        # The replaced SAs go within a second of their rekey (over_time aside): look
        # after the streams, with time for the last delete to complete.
        sleep 1
        mkc="$(mk_counts "$d/$who")"
        swc="$(swan_counts i)"
        detail+="$who rekeys: $crk child + $irk IKE; i->lan lost $la, gap $ga ms; lan->i lost $lb, gap $gb ms; SAs after: mobiked $mkc, strongSwan $swc; "
        if ! [[ "$la" =~ ^[0-9]+$ && "$lb" =~ ^[0-9]+$ ]] || [ "$la" -gt 2 ] || [ "$lb" -gt 2 ] ||
            [ "$crk" -lt 1 ] || [ "$irk" -lt 1 ] || [ "$mkc" != "1 1" ] || [ "$swc" != "1 1" ] ||
            ! [[ "${ga%.*}" =~ ^[0-9]+$ && "${gb%.*}" =~ ^[0-9]+$ ]] || [ "${ga%.*}" -ge 1000 ] ||
            [ "${gb%.*}" -ge 1000 ]; then
            ok=0
            mk_dump "$d/$who"
        fi
        mk_finish
    done
    if [ "$ok" -eq 1 ]; then report PASS "$detail"; else report FAIL "$detail"; fi
}

scenario_rekey_collide() {
    SCEN=rekey-collide
    local d="$DIR/$SCEN" p1=FAIL p2=FAIL mkc swc crk irk
    [ -x "$MOBIKED" ] || { report FAIL "no mobiked binary ($MOBIKED)"; return; }
    mkdir -p "$d"
    mk_ready || { report FAIL "could not set up mk0 in $NSR"; return; }
    mk_gateway_conf "$d" "    rekey_time: 6s
    over_time: 4s
    rand_time: 0s
    children: { rekey_time: 6s, life_time: 10s, rand_time: 0s }"
    mk_swan_initiator_conf "$d" default default "rekey_time = 1h" "rekey_time = 1h"
    if ! mk_start "$d" || ! swan_start i "$NSI" "$d" || ! swan_load i || ! swan_initiate i net 10 ||
        ! netns_wait 5 test "$(mk_counts "$d")" = "1 1"; then
        report FAIL "no SA: mobiked $(mk_counts "$d"), $(tail -n 1 "$d/initiate.out" 2>/dev/null)"
        mk_dump "$d"
        mk_finish
        return
    fi
    # Past the IKE rekey (6 s) and the child's hard lifetime (10 s).
    sleep 11
    crk="$(grep -c 'rekey_of=Some' "$d/mk.log")"
    irk="$(grep -c 'IKE SA rekeyed' "$d/mk.log")"
    mkc="$(mk_counts "$d")"
    swc="$(swan_counts i)"
    ping_ok "$NSI" 10.1.0.1 10.2.0.2 && p1=ok
    ping_ok "$NSL" 10.2.0.2 10.1.0.1 && p2=ok
    local detail="after 11 s: $crk child + $irk IKE rekeys; SAs: mobiked $mkc, strongSwan $swc; ping i->lan $p1, lan->i $p2"
    if [ "$crk" -ge 1 ] && [ "$irk" -ge 1 ] && [ "$mkc" = "1 1" ] && [ "$swc" = "1 1" ] &&
        [ "$p1$p2" = okok ]; then
        report PASS "$detail"
    else
        report FAIL "$detail (the child rekey queued behind the IKE rekey went to the new IKE SA and was not sent before the child's hard lifetime)"
        mk_dump "$d"
    fi
    mk_finish
}

scenario_peer_restart() {
    SCEN=peer-restart
    local d="$DIR/$SCEN" p1=FAIL p2=FAIL before after
    [ -x "$MOBIKED" ] || { report FAIL "no mobiked binary ($MOBIKED)"; return; }
    mkdir -p "$d"
    mk_ready || { report FAIL "could not set up mk0 in $NSR"; return; }
    mk_gateway_conf "$d" "    dpd_delay: 30s
    dpd_timeout: 60s"
    mk_swan_initiator_conf "$d" default default "" ""
    if ! mk_start "$d" || ! swan_start i "$NSI" "$d" || ! swan_load i || ! swan_initiate i net 10 ||
        ! netns_wait 5 test "$(mk_counts "$d")" = "1 1" || ! ping_ok "$NSI" 10.1.0.1 10.2.0.2; then
        report FAIL "first SA: mobiked $(mk_counts "$d"), $(tail -n 1 "$d/initiate.out" 2>/dev/null)"
        mk_dump "$d"
        mk_finish
        return
    fi
    before="$(mk_counts "$d")"
    kill -KILL "${SWAN_PID[i]}" 2>/dev/null
    wait "${SWAN_PID[i]}" 2>/dev/null
    SWAN_PID[i]=""
    cp "$d/charon.log" "$d/charon-1.log"
    if ! swan_start i "$NSI" "$d" || ! swan_load i || ! swan_initiate i net 10; then
        report FAIL "restarted charon did not set up a new SA: $(tail -n 1 "$d/initiate.out" 2>/dev/null)"
        mk_dump "$d"
        mk_finish
        return
    fi
    # Give mobiked a moment to act on the INITIAL_CONTACT of the new IKE_AUTH.
    netns_wait 2 test "$(mk_counts "$d")" = "1 1"
    after="$(mk_counts "$d")"
    ping_ok "$NSI" 10.1.0.1 10.2.0.2 && p1=ok
    ping_ok "$NSL" 10.2.0.2 10.1.0.1 && p2=ok
    local ic=no
    grep -q 'N(INIT_CONTACT)' "$d/charon.log" && ic=yes
    local detail="IKE/child SAs in mobiked: $before before the restart, $after after the new IKE SA (INITIAL_CONTACT sent: $ic); ping i->lan $p1, lan->i $p2"
    if [ "$after" = "1 1" ] && [ "$p1$p2" = okok ]; then
        report PASS "$detail"
    else
        report FAIL "$detail (mobiked kept the stale SA; DPD would remove it only after up to 90 s)"
        mk_dump "$d"
    fi
    mk_finish
}

SCENARIOS=(swan-swan mk-gw-rekeys rekey-collide peer-restart)
scenario_fn() {
    case "$1" in
        swan-swan) echo scenario_swan_swan ;;
        mk-gw-rekeys) echo scenario_mk_gw_rekeys ;;
        rekey-collide) echo scenario_rekey_collide ;;
        peer-restart) echo scenario_peer_restart ;;
        *) return 1 ;;
    esac
}

t0=$SECONDS
for s in "${SCENARIOS[@]}"; do
    wanted "$s" || continue
    "$(scenario_fn "$s")"
done
echo "$PASSED passed, $FAILED failed ($((SECONDS - t0)) s)"
[ "$FAILED" -eq 0 ]
