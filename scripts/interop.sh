#!/usr/bin/env bash
# Interop of mobiked with strongSwan's charon (kernel-libipsec: the kernel here has no
# ESP) across two network namespaces joined by a veth pair.
#
#   namespace mk                                               namespace sw
#   mk0 10.1.0.1/24 (TUN) -- mobiked -- m1 192.0.2.1 ===== s1 192.0.2.2 -- charon -- ipsec0, lo 10.2.0.1
#
# Scenarios (each starts both daemons afresh; one line each, then `N passed, M failed`):
#   mk-initiator   mobiked client -> strongSwan responder, IKE aes128gcm16-prfsha256-x25519,
#                  ESP aes128gcm16: ping both ways and a 2000-packet stream (loss reported)
#   suites         mobiked initiates with AES-CBC/HMAC-SHA2 and AES-GCM IKE suites over
#                  groups 19, 20 and 31 against strongSwan's default proposals; then each
#                  ESP suite (AES-CBC-128/256 with HMAC-SHA-256/384/512, ChaCha20-Poly1305)
#                  alone on both ends, both ways (mobiked initiating, and strongSwan
#                  initiating a CBC-only or chacha-only child against mobiked's default
#                  esp_proposals): the suite both ends report, ping both ways
#   sw-default     strongSwan initiator with its default proposals -> mobiked gateway:
#                  the negotiated suite, ping both ways
#   sw-vip         strongSwan asks mobiked's pool for a virtual IP and pings from it
#   rekeys         child SA and IKE SA rekeys started by mobiked, then by strongSwan
#                  (short lifetimes), while a 1000 pps stream runs: longest gap, loss,
#                  and the SA counts on both ends afterwards (no leak)
#   sw-terminate   `swanctl --terminate --ike`: mobiked removes the SA
#   sw-killed      charon gets SIGKILL: mobiked's DPD (2 s / 6 s) removes the SA in time
#   flood          3000 spoofed-source IKE_SA_INITs (scripts/lib/ike-flood.py) against the
#                  gateway with cookie_threshold 20: cookies are demanded, the half-open
#                  SAs stay at the threshold, and strongSwan still connects during it
#
#   scripts/interop.sh [--bin PATH] [--only NAME,NAME] [--keep]
#
# Needs root and strongSwan (scripts/test installs it). Kills only what it started.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR/..
. "$ROOT/scripts/lib/netns.sh"

BIN="${MOBIKED:-${CARGO_TARGET_DIR:-$ROOT/target}/release/mobiked}"
PYTHON="${PYTHON:-python3}"
STREAM="$ROOT/scripts/lib/udpstream.py"
CHARON=/usr/lib/ipsec/charon
ONLY=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --bin)
            BIN="${2:?--bin needs a path}"
            shift
            ;;
        --only)
            ONLY=",${2:?--only needs names},"
            shift
            ;;
        --keep) NETNS_KEEP_TMP=1 ;;
        -h | --help)
            sed -n '2,25p' "$0"
            exit 0
            ;;
        *)
            echo "interop: unknown argument '$1' (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done

if [ "$(id -u)" -ne 0 ]; then
    echo "interop: needs root (network namespaces, TUN)" >&2
    exit 2
fi
for tool in ip ping swanctl unshare "$PYTHON" "$CHARON"; do
    command -v "$tool" >/dev/null || [ -x "$tool" ] || {
        echo "interop: '$tool' not found (scripts/test installs strongSwan and the tools)" >&2
        exit 2
    }
done
[ -x "$BIN" ] || {
    echo "interop: mobiked binary '$BIN' not found (cargo build --release, or --bin PATH)" >&2
    exit 2
}
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

netns_init || exit 2
echo "run $NETNS_RUN, files in $NETNS_TMP"
DIR="$NETNS_TMP"
PSK=0x$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')

netns_add mk || exit 2
NSM="$NETNS_NS"
netns_add sw || exit 2
NSS="$NETNS_NS"
netns_veth "$NSM" m1 192.0.2.1/24 "$NSS" s1 192.0.2.2/24 || exit 2
netns_tun "$NSM" mk0 10.1.0.1/24 || exit 2
ip -n "$NSM" route add 10.2.0.0/24 dev mk0 src 10.1.0.1 || exit 2
ip -n "$NSM" route add 10.3.0.0/24 dev mk0 src 10.1.0.1 || exit 2
ip -n "$NSS" addr add 10.2.0.1/32 dev lo || exit 2

PASSED=0
FAILED=0
report() { # PASS|FAIL name details...
    local verdict="$1" name="$2"
    shift 2
    echo "$name: $verdict $*"
    if [ "$verdict" = PASS ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
}
wanted() { [ -z "$ONLY" ] || [[ "$ONLY" == *",$1,"* ]]; }

# ---- strongSwan ------------------------------------------------------------------------
SW_PID=""
sw_start() { # writes strongswan.conf, starts charon in its namespace with a private /run
    local d="$DIR/sw"
    mkdir -p "$d"
    cat >"$d/strongswan.conf" <<EOF
charon {
    # kernel-libipsec first: the first kernel-ipsec interface registered wins, and the
    # kernel here has no ESP.
    # chapoly: ChaCha20-Poly1305 for ESP (RFC 7634) in libipsec.
    load = random nonce openssl aes sha1 sha2 hmac gcm chapoly curve25519 x509 pubkey pem pkcs1 kdf kernel-libipsec kernel-netlink socket-default vici updown attr
    install_routes = yes
    retransmit_timeout = 1
    retransmit_tries = 3
    filelog {
        log {
            path = $d/charon.log
            time_format = %H:%M:%S
            time_add_ms = yes
            flush_line = yes
            append = yes
            default = 1
            ike = 2
            knl = 1
        }
    }
    plugins {
        vici {
            socket = unix://$d/charon.vici
        }
    }
}
EOF
    : >"$d/charon.log"
    # A socket left by the previous scenario's charon would make the wait below
    # return before this one listens.
    rm -f "$d/charon.vici"
    netns_bg "$NSS" "$d/charon.out" env STRONGSWAN_CONF="$d/strongswan.conf" \
        unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /run && exec '"$CHARON"
    SW_PID="$NETNS_LAST_PID"
    netns_wait 10 test -S "$d/charon.vici"
}
swanctl_() { STRONGSWAN_CONF="$DIR/sw/strongswan.conf" timeout 20 ip netns exec "$NSS" swanctl "$@" --uri "unix://$DIR/sw/charon.vici"; }
sw_load() { # swanctl.conf text on stdin
    cat >"$DIR/sw/swanctl.conf"
    swanctl_ --load-all --file "$DIR/sw/swanctl.conf" >"$DIR/sw/load.out" 2>&1
}
sw_ike_count() { swanctl_ --list-sas 2>/dev/null | grep -c 'ESTABLISHED'; }
sw_child_count() { swanctl_ --list-sas 2>/dev/null | grep -c 'INSTALLED'; }
sw_stop() {
    [ -n "$SW_PID" ] && netns_stop "$SW_PID" 3
    SW_PID=""
}

# ---- mobiked ---------------------------------------------------------------------------
MK_PID=""
mk_start() { # ROLE: runs mobiked with $DIR/mk.yaml (not in a pipeline: it sets MK_PID)
    rm -f "$DIR/mk.sock"
    netns_bg "$NSM" "$DIR/mk-$SCEN.log" env RUST_LOG="${RUST_LOG:-info}" "$BIN" "$1" -c "$DIR/mk.yaml"
    MK_PID="$NETNS_LAST_PID"
    netns_wait 10 test -S "$DIR/mk.sock"
}
mk_stop() {
    [ -n "$MK_PID" ] && netns_stop "$MK_PID" 4
    MK_PID=""
}
mk_sas() { timeout 5 "$BIN" ctl -s "$DIR/mk.sock" sas 2>/dev/null; }
# "ike_count child_count" as mobiked lists them
mk_counts() {
    mk_sas | "$PYTHON" -c '
import json, sys
try:
    s = json.load(sys.stdin)["sas"]
except Exception:
    print("? ?"); sys.exit(0)
print(len(s), sum(len(x["children"]) for x in s))
'
}
mk_up() { [ "$(mk_counts)" = "1 1" ]; }
mk_none() { [ "$(mk_counts)" = "0 0" ]; }

mk_common() { # the dataplane part of mobiked's configuration
    cat <<EOF
dataplane: { workers: 1, mode: esp }
cipher: { backend: udp, bind: ["192.0.2.1:4500"] }
clear: { backend: tun, name: mk0 }
control: { socket: $DIR/mk.sock }
EOF
}

dump_logs() {
    echo "  --- mobiked ($DIR/mk-$SCEN.log), last 15 lines ---"
    tail -n 15 "$DIR/mk-$SCEN.log" 2>/dev/null | sed 's/^/  | /'
    echo "  --- swanctl --load-all ---"; sed "s/^/  | /" "$DIR/sw/load.out" 2>/dev/null | tail -n 5
    echo "  --- charon ($DIR/sw/charon.log), last 15 lines ---"
    tail -n 15 "$DIR/sw/charon.log" 2>/dev/null | sed 's/^/  | /'
}

ping_ok() { # NS SRC DST
    timeout 15 ip netns exec "$1" ping -n -c 3 -i 0.2 -W 2 -I "$2" "$3" >"$DIR/ping.out" 2>&1 &&
        grep -q ' 0% packet loss' "$DIR/ping.out"
}

# stream SRC_NS SRC DST_NS DST COUNT RATE: prints the receiver's JSON line
stream() {
    local sns="$1" src="$2" dns="$3" dst="$4" count="$5" rate="$6" run status rx tx i
    run=$((RANDOM + 1))
    status="$DIR/stream-$SCEN.status"
    rm -f "$status"
    netns_bg "$dns" "$DIR/stream-$SCEN.rx" "$PYTHON" "$STREAM" recv --bind "$dst:5001" \
        --count "$count" --run "$run" --status "$status" --timeout $((count / rate + 15)) --idle 3
    rx="$NETNS_LAST_PID"
    netns_wait 5 test -s "$status" || { echo '{"error": "receiver did not start"}'; return; }
    netns_bg "$sns" "$DIR/stream-$SCEN.tx" "$PYTHON" "$STREAM" send --dst "$dst:5001" \
        --src "$src" --count "$count" --rate "$rate" --size 200 --run "$run"
    tx="$NETNS_LAST_PID"
    for ((i = 0; i < (count / rate + 20) * 20; i++)); do
        kill -0 "$rx" 2>/dev/null || break
        sleep 0.05
    done
    netns_stop "$tx" 1
    netns_stop "$rx" 1
    tail -n 1 "$DIR/stream-$SCEN.rx" 2>/dev/null
}
jfield() { "$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], "?"))' "$1" "$2" 2>/dev/null || echo "?"; }

finish() { mk_stop; sw_stop; }

SW_RESPONDER='
connections {
    mk {
        version = 2
        local_addrs = 192.0.2.2
        proposals = aes128gcm16-prfsha256-x25519
        dpd_delay = 0
        local {
            auth = psk
            id = sw.interop.test
        }
        remote {
            auth = psk
            id = mk.interop.test
        }
        children {
            net {
                local_ts = 10.2.0.0/24
                remote_ts = 10.1.0.0/24
                esp_proposals = aes128gcm16
                %CHILD%
            }
        }
        %IKE%
    }
}
secrets {
    ike-mk {
        id-1 = sw.interop.test
        id-2 = mk.interop.test
        secret = %PSK%
    }
}
'

mk_client_conf() { # extra lines for the connection
    mk_common
    cat <<EOF
connections:
  - name: sw
    peeraddr: 192.0.2.2
    local_id: mk.interop.test
    remote_id: sw.interop.test
    psk: $PSK
    proposals: [aes128gcm16-prfsha256-x25519]
    esp_proposals: [aes128gcm16]
    local_ts: [10.1.0.0/24]
    remote_ts: [10.2.0.0/24]
$1
EOF
}

mk_gateway_conf() { # remote_ts, extra lines
    mk_common
    cat <<EOF
pools:
  - { name: vpn4, addrs: 10.3.0.0/24 }
connections:
  - name: sw
    local_id: mk.interop.test
    remote_id: sw.interop.test
    psk: $PSK
    local_ts: [10.1.0.0/24]
    remote_ts: [$1]
    pools: [vpn4]
    dpd_delay: 2s
    dpd_timeout: 6s
$2
EOF
}

sw_initiator_conf() { # extra child lines, extra connection lines
    cat <<EOF
connections {
    mk {
        version = 2
        local_addrs = 192.0.2.2
        remote_addrs = 192.0.2.1
        proposals = default
        local {
            auth = psk
            id = sw.interop.test
        }
        remote {
            auth = psk
            id = mk.interop.test
        }
        children {
            net {
                local_ts = 10.2.0.0/24
                remote_ts = 10.1.0.0/24
                esp_proposals = default
                $1
            }
        }
        $2
    }
}
secrets {
    ike-mk {
        id-1 = sw.interop.test
        id-2 = mk.interop.test
        secret = $PSK
    }
}
EOF
}

swan_conf() { # CHILD_EXTRA IKE_EXTRA: the responder configuration
    local s="${SW_RESPONDER//%PSK%/$PSK}"
    s="${s//%CHILD%/$1}"
    printf '%s\n' "${s//%IKE%/$2}"
}

# ---- 1. mobiked initiator -> strongSwan responder --------------------------------------
if wanted mk-initiator; then
    SCEN=mk-initiator
    sw_start && swan_conf "" "" | sw_load
    mk_client_conf "" >"$DIR/mk.yaml"
    mk_start client
    if netns_wait 15 mk_up && netns_wait 5 test "$(sw_child_count)" -ge 1; then
        setup="$(grep -o 'setup_ms=[0-9.]*' "$DIR/mk-$SCEN.log" | head -n 1)"
        suite="$(grep -o 'suite=[^ ]*' "$DIR/mk-$SCEN.log" | head -n 1)"
        p1=FAIL p2=FAIL
        ping_ok "$NSM" 10.1.0.1 10.2.0.1 && p1=ok
        ping_ok "$NSS" 10.2.0.1 10.1.0.1 && p2=ok
        res="$(stream "$NSM" 10.1.0.1 "$NSS" 10.2.0.1 2000 500)"
        lost="$(jfield "$res" lost)"
        if [ "$p1$p2" = okok ] && [ "$lost" != "?" ] && [ "$lost" -le 2 ]; then
            report PASS "$SCEN" "$suite, $setup; ping mk->sw ok, sw->mk ok; stream 2000 at 500 pps, lost $lost"
        else
            report FAIL "$SCEN" "ping mk->sw $p1, sw->mk $p2; stream: ${res:-none}"
            dump_logs
        fi
    else
        report FAIL "$SCEN" "no SA: mobiked $(mk_counts), strongSwan $(sw_ike_count) IKE / $(sw_child_count) child"
        dump_logs
    fi
    finish
fi

# ---- 1b. every IKE suite family against strongSwan's defaults -------------------------
# mobiked initiates with one proposal; strongSwan answers with `proposals = default`.
if wanted suites; then
    SCEN=suites
    detail=""
    ok=1
    for suite in aes128-sha256-prfsha256-x25519 aes256-sha384-prfsha384-ecp384 \
        aes256gcm16-prfsha512-ecp256 aes128-sha512-prfsha512-ecp256; do
        sw_start && swan_conf "esp_proposals = default" "" |
            sed -e 's|proposals = aes128gcm16-prfsha256-x25519|proposals = default|' \
                -e '/esp_proposals = aes128gcm16$/d' | sw_load
        mk_client_conf "" | sed "s|proposals: \[aes128gcm16-prfsha256-x25519\]|proposals: [$suite]|" >"$DIR/mk.yaml"
        mk_start client
        if netns_wait 15 mk_up && ping_ok "$NSM" 10.1.0.1 10.2.0.1; then
            detail+="$suite ok; "
        else
            ok=0
            detail+="$suite FAILED; "
            dump_logs
        fi
        finish
    done
    # Each ESP suite alone on both ends, mobiked initiating: the child both ends report
    # and ping both ways through strongSwan's userspace ESP (libipsec).
    for esp in aes128-sha256 aes128-sha512 aes256-sha384 aes256-sha512 chacha20poly1305; do
        sw_start && swan_conf "esp_proposals = $esp" "" |
            sed -e 's|proposals = aes128gcm16-prfsha256-x25519|proposals = default|' \
                -e '/esp_proposals = aes128gcm16$/d' | sw_load
        mk_client_conf "" | sed "s|esp_proposals: \[aes128gcm16\]|esp_proposals: [$esp]|" >"$DIR/mk.yaml"
        mk_start client
        if netns_wait 15 mk_up && netns_wait 5 test "$(sw_child_count)" -ge 1 &&
            netns_wait 5 ping_ok "$NSM" 10.1.0.1 10.2.0.1 && netns_wait 5 ping_ok "$NSS" 10.2.0.1 10.1.0.1 &&
            grep -q "\"encr\": *\"$esp\"" <<<"$(mk_sas)"; then
            sw_esp="$(swanctl_ --list-sas 2>/dev/null | grep -o 'ESP:[^ ]*' | head -n 1)"
            detail+="ESP $esp ok ($sw_esp); "
        else
            ok=0
            detail+="ESP $esp FAILED; "
            dump_logs
        fi
        finish
    done
    # strongSwan initiating with only CBC+HMAC (as OpenIKED and Windows propose) or only
    # ChaCha20-Poly1305, against a mobiked gateway with no esp_proposals configured.
    for esp in aes256-sha256 aes128-sha384 chacha20poly1305; do
        mk_gateway_conf "10.2.0.0/24" "" >"$DIR/mk.yaml"
        mk_start gateway
        sw_start && sw_initiator_conf "" "" | sed "s|esp_proposals = default|esp_proposals = $esp|" | sw_load
        swanctl_ --initiate --child net >"$DIR/initiate-$SCEN.out" 2>&1 &
        if netns_wait 15 mk_up && netns_wait 5 test "$(sw_child_count)" -ge 1 &&
            netns_wait 5 ping_ok "$NSS" 10.2.0.1 10.1.0.1 && netns_wait 5 ping_ok "$NSM" 10.1.0.1 10.2.0.1 &&
            grep -q "\"encr\": *\"$esp\"" <<<"$(mk_sas)"; then
            detail+="gateway accepts $esp; "
        else
            ok=0
            detail+="gateway with $esp FAILED; "
            dump_logs
        fi
        finish
    done
    if [ "$ok" -eq 1 ]; then report PASS "$SCEN" "$detail"; else report FAIL "$SCEN" "$detail"; fi
fi

# ---- 2. strongSwan initiator, default proposals -> mobiked gateway --------------------
if wanted sw-default; then
    SCEN=sw-default
    mk_gateway_conf "10.2.0.0/24" "" >"$DIR/mk.yaml"
    mk_start gateway
    sw_start && sw_initiator_conf "" "" | sw_load
    swanctl_ --initiate --child net >"$DIR/initiate-$SCEN.out" 2>&1 &
    if netns_wait 15 mk_up; then
        suite="$(grep -o 'suite=[^ ]*' "$DIR/mk-$SCEN.log" | head -n 1)"
        esp="$(grep -o 'encr="[^"]*"' "$DIR/mk-$SCEN.log" | head -n 1)"
        p1=FAIL p2=FAIL
        netns_wait 5 test "$(sw_child_count)" -ge 1
        ping_ok "$NSS" 10.2.0.1 10.1.0.1 && p1=ok
        ping_ok "$NSM" 10.1.0.1 10.2.0.1 && p2=ok
        if [ "$p1$p2" = okok ]; then
            report PASS "$SCEN" "$suite, ESP $esp; ping sw->mk ok, mk->sw ok"
        else
            report FAIL "$SCEN" "ping sw->mk $p1, mk->sw $p2"
            dump_logs
        fi
    else
        report FAIL "$SCEN" "no SA: mobiked $(mk_counts), strongSwan $(sw_ike_count) IKE"
        dump_logs
    fi
    finish
fi

# ---- 3. strongSwan takes a virtual IP from mobiked's pool ------------------------------
if wanted sw-vip; then
    SCEN=sw-vip
    mk_gateway_conf "10.3.0.0/24" "" >"$DIR/mk.yaml"
    mk_start gateway
    sw_start
    sw_initiator_conf "" "vips = 0.0.0.0" | sed 's|local_ts = 10.2.0.0/24|local_ts = dynamic|' | sw_load
    swanctl_ --initiate --child net >"$DIR/initiate-$SCEN.out" 2>&1 &
    if netns_wait 15 mk_up; then
        vip="$(mk_sas | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["sas"][0]["vip"] or "")' 2>/dev/null)"
        netns_wait 5 test "$(sw_child_count)" -ge 1
        if [ -n "$vip" ] && ip -n "$NSS" -4 addr | grep -q "inet $vip/" &&
            netns_wait 5 ping_ok "$NSS" "$vip" 10.1.0.1; then
            report PASS "$SCEN" "strongSwan got $vip from mobiked's pool and pings 10.1.0.1 from it"
        else
            report FAIL "$SCEN" "vip '${vip:-none}'; addresses in sw: $(ip -n "$NSS" -4 -br addr | tr '\n' ' ')"
            dump_logs
        fi
    else
        report FAIL "$SCEN" "no SA: mobiked $(mk_counts), strongSwan $(sw_ike_count) IKE"
        dump_logs
    fi
    finish
fi

# ---- 4. rekeys by each side under a stream --------------------------------------------
# The longest gap between consecutive packets at the receiver, from udpstream's report.
if wanted rekeys; then
    SCEN=rekeys
    detail=""
    ok=1
    for who in mobiked strongswan; do
        if [ "$who" = mobiked ]; then
            sw_start && swan_conf "rekey_time = 1h" "rekey_time = 1h" | sw_load
            mk_client_conf "    rekey_time: 6s
    over_time: 4s
    rand_time: 0s
    children: { rekey_time: 4s, life_time: 8s, rand_time: 0s }" >"$DIR/mk.yaml"
    mk_start client
        else
            sw_start && swan_conf "rekey_time = 4s
                life_time = 8s
                rand_time = 0s" "rekey_time = 6s
        over_time = 4s
        rand_time = 0s" | sw_load
            mk_client_conf "    rekey_time: 0
    children: { rekey_time: 0, life_time: 0 }" >"$DIR/mk.yaml"
    mk_start client
        fi
        if ! netns_wait 15 mk_up; then
            ok=0
            detail+="$who: no SA; "
            dump_logs
            finish
            continue
        fi
        res="$(stream "$NSM" 10.1.0.1 "$NSS" 10.2.0.1 13000 1000)"
        gap="$(jfield "$res" max_gap_ms)"
        lost="$(jfield "$res" lost)"
        crekeys="$(grep -c 'rekey_of=Some' "$DIR/mk-$SCEN.log")"
        irekeys="$(grep -c 'IKE SA rekeyed' "$DIR/mk-$SCEN.log")"
        sleep 1
        counts="$(mk_counts)"
        swc="$(sw_ike_count)/$(sw_child_count)"
        detail+="$who: $crekeys child + $irekeys IKE rekeys, lost $lost, longest gap ${gap} ms, SAs after: mobiked $counts, strongSwan $swc; "
        if [ "$lost" = "?" ] || [ "$crekeys" -lt 1 ] || [ "$irekeys" -lt 1 ] || [ "$counts" != "1 1" ] ||
            [ "$swc" != "1/1" ] || [ "${gap%.*}" = "?" ] || [ "${gap%.*}" -ge 1000 ]; then
            ok=0
            dump_logs
        fi
        finish
    done
    if [ "$ok" -eq 1 ]; then report PASS "$SCEN" "$detail"; else report FAIL "$SCEN" "$detail"; fi
fi

# ---- 5. strongSwan terminates, then strongSwan dies -----------------------------------
if wanted sw-terminate; then
    SCEN=sw-terminate
    mk_gateway_conf "10.2.0.0/24" "" >"$DIR/mk.yaml"
    mk_start gateway
    sw_start && sw_initiator_conf "" "" | sw_load
    swanctl_ --initiate --child net >"$DIR/initiate-$SCEN.out" 2>&1 &
    if netns_wait 15 mk_up; then
        t0=$(netns_now_us)
        swanctl_ --terminate --ike mk >"$DIR/terminate.out" 2>&1
        if netns_wait 10 mk_none; then
            report PASS "$SCEN" "mobiked removed the SA $((($(netns_now_us) - t0) / 1000)) ms after swanctl --terminate"
        else
            report FAIL "$SCEN" "mobiked still lists $(mk_counts) after the terminate"
            dump_logs
        fi
    else
        report FAIL "$SCEN" "no SA: mobiked $(mk_counts)"
        dump_logs
    fi
    finish
fi

if wanted sw-killed; then
    SCEN=sw-killed
    mk_gateway_conf "10.2.0.0/24" "" >"$DIR/mk.yaml"
    mk_start gateway
    sw_start && sw_initiator_conf "" "" | sw_load
    swanctl_ --initiate --child net >"$DIR/initiate-$SCEN.out" 2>&1 &
    if netns_wait 15 mk_up; then
        t0=$(netns_now_us)
        kill -KILL "$SW_PID" 2>/dev/null
        wait "$SW_PID" 2>/dev/null
        SW_PID=""
        # dpd_delay 2 s + dpd_timeout 6 s, with 2 s of slack.
        if netns_wait 10 mk_none; then
            report PASS "$SCEN" "DPD removed the SA $((($(netns_now_us) - t0) / 1000)) ms after charon was killed (delay 2 s, timeout 6 s)"
        else
            report FAIL "$SCEN" "mobiked still lists $(mk_counts) 10 s after charon was killed"
            dump_logs
        fi
    else
        report FAIL "$SCEN" "no SA: mobiked $(mk_counts)"
        dump_logs
    fi
    finish
fi

# ---- 6. an IKE_SA_INIT flood from spoofed sources, then strongSwan connects -----------
mk_stat() { # counter name -> value from `mobiked ctl stats`
    timeout 5 "$BIN" ctl -s "$DIR/mk.sock" stats 2>/dev/null |
        "$PYTHON" -c '
import json, sys
c = json.load(sys.stdin)["counters"]
c = dict(c) if isinstance(c, list) else c
print(c.get(sys.argv[1], 0))' "$1" 2>/dev/null || echo "?"
}
if wanted flood; then
    SCEN=flood
    mk_gateway_conf "10.2.0.0/24" "" | sed 's|^control:.*|&\nike: { cookie_threshold: 20 }|' >"$DIR/mk.yaml"
    mk_start gateway
    sw_start && sw_initiator_conf "" "" | sw_load
    netns_bg "$NSS" "$DIR/flood.out" "$PYTHON" "$ROOT/scripts/lib/ike-flood.py" --dst 192.0.2.1 \
        --prefix 192.0.2.128/25 --count 3000 --rate 3000
    FLOOD_PID="$NETNS_LAST_PID"
    sleep 0.3
    t0=$(netns_now_us)
    swanctl_ --initiate --child net >"$DIR/initiate-$SCEN.out" 2>&1 &
    if netns_wait 20 mk_up; then
        up_ms=$((($(netns_now_us) - t0) / 1000))
        netns_wait 10 test ! -d "/proc/$FLOOD_PID"
        netns_stop "$FLOOD_PID" 1
        cookies="$(mk_stat ike_cookies_sent)"
        half="$(mk_stat ike_half_open)"
        rx="$(mk_stat ike_rx)"
        if [ "$cookies" != "?" ] && [ "$cookies" -gt 1000 ] && [ "$half" -le 20 ] &&
            ping_ok "$NSS" 10.2.0.1 10.1.0.1; then
            report PASS "$SCEN" "3000 spoofed IKE_SA_INITs: $cookies cookies sent, $half half-open (threshold 20), $rx IKE messages in; strongSwan up ${up_ms} ms after its initiate, ping ok; $(cat "$DIR/flood.out")"
        else
            report FAIL "$SCEN" "cookies $cookies, half-open $half, rx $rx; $(cat "$DIR/flood.out")"
            dump_logs
        fi
    else
        netns_stop "$FLOOD_PID" 1
        report FAIL "$SCEN" "strongSwan did not connect during the flood: mobiked $(mk_counts), cookies $(mk_stat ike_cookies_sent)"
        dump_logs
    fi
    finish
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
