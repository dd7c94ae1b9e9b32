#!/usr/bin/env bash
# Known-answer vectors from real strongSwan exchanges: two charons (PSK) in two network
# namespaces set up one IKE SA and one child SA per proposal, with `ike=4 chd=4` logging
# (g^ir, SKEYSEED, SK_*, the child keys) while tcpdump captures the IKE datagrams on the
# veth. kat-extract.py (below, inline) joins both, re-derives every key independently
# (Python hmac + pyca/cryptography), opens both IKE_AUTH messages, checks both PSK AUTH
# payloads, and writes control/tests/data/strongswan/<name>.kat.
#
#   bash scripts/lib/kat-capture.sh [--out DIR] [--only NAME[,NAME]] [--keep]
#
# Needs root, strongSwan (scripts/test installs it), tcpdump and python3-cryptography.
# The .kat files are committed: the Rust tests read them and do not need strongSwan.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR/../..
. "$ROOT/scripts/lib/netns.sh"
# shellcheck source-path=SCRIPTDIR/../..
. "$ROOT/scripts/lib/strongswan.sh"

OUT="$ROOT/control/tests/data/strongswan"
ONLY=""
PSK_TEXT="mobiked-kat-psk"
while [ "$#" -gt 0 ]; do
    case "$1" in
        --out) OUT="${2:?--out needs a directory}"; shift ;;
        --only) ONLY=",${2:?--only needs names},"; shift ;;
        --keep) NETNS_KEEP_TMP=1 ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "kat-capture: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done

# name | IKE proposal (strongSwan syntax, "default" = its default list) | ESP proposal
# The name is checked against the suite charon selected (kat-extract.py). Two charons
# proposing their defaults pick AES-CBC-128/HMAC-SHA2-256 for ESP; the files hold AES-GCM
# child SAs only, so the default case asks for ESP aes128gcm16.
CASES=(
    "aes128gcm16-prfsha256-x25519|aes128gcm16-prfsha256-x25519|aes128gcm16"
    "default-aes128-sha256-prfsha256-x25519|default|aes128gcm16"
    "aes256gcm16-prfsha384-ecp384|aes256gcm16-prfsha384-ecp384|aes256gcm16"
    "aes256-sha512-prfsha512-ecp256|aes256-sha512-prfsha512-ecp256|aes256gcm16"
)

[ "$(id -u)" -eq 0 ] || { echo "kat-capture: needs root" >&2; exit 2; }
swan_check || exit 2
command -v tcpdump >/dev/null || { echo "kat-capture: tcpdump missing" >&2; exit 2; }
python3 -c 'import cryptography' 2>/dev/null ||
    { echo "kat-capture: python3-cryptography missing" >&2; exit 2; }

netns_init || exit 2
DIR="$NETNS_TMP"
netns_add ki || exit 2
NSI="$NETNS_NS"
netns_add kr || exit 2
NSR="$NETNS_NS"
netns_veth "$NSI" ki0 192.0.2.1/24 "$NSR" kr0 192.0.2.2/24 || exit 2
ip -n "$NSI" addr add 10.11.0.1/32 dev lo || exit 2
ip -n "$NSR" addr add 10.12.0.1/32 dev lo || exit 2
mkdir -p "$OUT" || exit 2

swan_conf() { # LOCAL REMOTE LOCAL_ID REMOTE_ID LOCAL_TS REMOTE_TS IKE ESP
    cat <<EOF
connections {
    kat {
        version = 2
        local_addrs = $1
        remote_addrs = $2
        proposals = $7
        dpd_delay = 0
        mobike = yes
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
    ike-kat {
        id-1 = $3
        id-2 = $4
        secret = "$PSK_TEXT"
    }
}
EOF
}

# ike=4 and chd=4 make charon log g^ir, SKEYSEED, SK_* and the child keys.
LEVELS="default=1 ike=4 chd=4 cfg=1 knl=1 enc=1"
FAILED=0
for entry in "${CASES[@]}"; do
    IFS='|' read -r name ike esp <<<"$entry"
    [ -z "$ONLY" ] || [[ "$ONLY" == *",$name,"* ]] || continue
    d="$DIR/$name"
    mkdir -p "$d"
    netns_bg "$NSI" "$d/tcpdump.out" tcpdump --immediate-mode -U -Z root -n -i ki0 -s 0 -w "$d/ike.pcap" udp port 500 or udp port 4500
    tcp_pid="$NETNS_LAST_PID"
    netns_wait 5 grep -q 'listening on' "$d/tcpdump.out" || { echo "$name: tcpdump did not start"; FAILED=$((FAILED + 1)); continue; }
    if ! SWAN_LOGLEVELS="$LEVELS" swan_start i "$NSI" "$d/i" ||
        ! SWAN_LOGLEVELS="$LEVELS" swan_start r "$NSR" "$d/r"; then
        echo "$name: FAIL charon did not start"
        FAILED=$((FAILED + 1))
        swan_stop i
        swan_stop r
        netns_stop "$tcp_pid" 2
        continue
    fi
    swan_conf 192.0.2.1 192.0.2.2 kat-initiator.example kat-responder.example \
        10.11.0.1/32 10.12.0.1/32 "$ike" "$esp" >"$d/i/swanctl.conf"
    swan_conf 192.0.2.2 192.0.2.1 kat-responder.example kat-initiator.example \
        10.12.0.1/32 10.11.0.1/32 "$ike" "$esp" >"$d/r/swanctl.conf"
    ok=0
    if swan_load i && swan_load r && swan_initiate i net 10 && swan_wait_established i kat 5 &&
        swan_wait_established r kat 5; then
        ok=1
        # One packet each way through the tunnel, so the capture holds ESP that proves
        # which key protects which direction.
        timeout 10 ip netns exec "$NSI" ping -n -c 1 -W 3 -I 10.11.0.1 10.12.0.1 >"$d/ping.out" 2>&1 || {
            echo "$name: ping through the tunnel failed"
            ok=0
        }
    fi
    # Both charons' logs are complete once the child is installed on both ends.
    swan_stop i
    swan_stop r
    netns_stop "$tcp_pid" 2
    if [ "$ok" -ne 1 ]; then
        echo "$name: FAIL no SA"
        swan_dump i 20
        swan_dump r 20
        FAILED=$((FAILED + 1))
        continue
    fi
    if python3 "$ROOT/scripts/lib/kat-extract.py" --name "$name" --psk "$PSK_TEXT" \
        --pcap "$d/ike.pcap" --ilog "$d/i/charon.log" --rlog "$d/r/charon.log" \
        --out "$OUT/$name.kat"; then
        :
    else
        echo "$name: FAIL extraction (logs in $d; rerun with --keep)"
        FAILED=$((FAILED + 1))
    fi
done
[ "$FAILED" -eq 0 ]
