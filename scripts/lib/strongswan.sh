# shellcheck shell=bash
# strongSwan (charon + swanctl) instances inside network namespaces, for the interop
# harness and the known-answer captures. Source scripts/lib/netns.sh first and call
# `netns_init`: charon runs through `netns_bg`, so its PID is also stopped by netns's
# cleanup if the caller exits early.
#
# The kernel here has no ESP: every instance loads kernel-libipsec BEFORE kernel-netlink
# (the first kernel-ipsec interface registered wins), which gives a TUN device `ipsec0`,
# routes in table 220, and UDP encapsulation on 4500 for ESP. charon's pid file and stroke
# socket are compile-time paths under /run, so each instance gets a private tmpfs on /run
# (a mount namespace of its own) and a vici socket in its own directory.
#
#   swan_check                       strongSwan installed? (prints what is missing)
#   swan_start NAME NETNS DIR        writes DIR/strongswan.conf, starts charon in NETNS,
#                                    waits (bounded) for its vici socket; PID in SWAN_PID[NAME]
#   swan_swanctl NAME ARGS...        swanctl against that instance (20 s limit)
#   swan_load NAME                   swanctl --load-all --file DIR/swanctl.conf
#   swan_initiate NAME CHILD [T]     swanctl --initiate --child CHILD (T s, default 10)
#   swan_wait_established NAME CONN TIMEOUT
#                                    polls until CONN is ESTABLISHED with an INSTALLED child
#   swan_list NAME                   swanctl --list-sas
#   swan_stop NAME                   SIGTERM by recorded PID, SIGKILL after 3 s
#   swan_dump NAME [LINES]           the tail of the instance's log, indented
#
# Settings read by swan_start (set before the call):
#   SWAN_LOGLEVELS  filelog levels, default "default=1 ike=2 knl=1 cfg=1"; "ike=4 chd=4"
#                   logs g^ir, SKEYSEED, SK_* and the child keys
#   SWAN_EXTRA      extra lines inside `charon { }` (e.g. "retransmit_tries = 2")
#   SWAN_LOAD       the plugin list (default below)

SWAN_CHARON="${SWAN_CHARON:-/usr/lib/ipsec/charon}"
SWAN_PACKAGES=(strongswan-charon strongswan-swanctl libstrongswan-standard-plugins
    libstrongswan-extra-plugins libcharon-extra-plugins)
# kdf: prf+ (5.9); curve25519: x25519; openssl: ECP groups; kernel-libipsec before
# kernel-netlink (see above); vici for swanctl; nonce/random for nonces and SPIs.
SWAN_LOAD_DEFAULT="random nonce openssl aes sha1 sha2 hmac gcm curve25519 pem pkcs1 pubkey x509 kdf kernel-libipsec kernel-netlink socket-default vici updown"

declare -gA SWAN_PID=() SWAN_NS=() SWAN_DIR=()

swan_log() { printf '[swan] %s\n' "$*" >&2; }

swan_check() {
    local p missing=()
    for p in "${SWAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ -x "$SWAN_CHARON" ] || missing+=("$SWAN_CHARON")
    command -v swanctl >/dev/null || missing+=(swanctl)
    command -v unshare >/dev/null || missing+=(unshare)
    if [ "${#missing[@]}" -gt 0 ]; then
        swan_log "missing: ${missing[*]} (scripts/test installs strongSwan: apt-get install -y ${SWAN_PACKAGES[*]})"
        return 1
    fi
}

swan_start() {
    local name="$1" ns="$2" dir="$3" lv levels=""
    mkdir -p "$dir" || return 1
    for lv in ${SWAN_LOGLEVELS:-default=1 ike=2 knl=1 cfg=1}; do
        levels+="            ${lv%%=*} = ${lv#*=}"$'\n'
    done
    cat >"$dir/strongswan.conf" <<EOF
charon {
    load = ${SWAN_LOAD:-$SWAN_LOAD_DEFAULT}
    install_routes = yes
    retransmit_timeout = 1
    retransmit_tries = 3
    ${SWAN_EXTRA:-}
    filelog {
        log {
            path = $dir/charon.log
            time_format = %H:%M:%S
            time_add_ms = yes
            flush_line = yes
            append = yes
$levels        }
    }
    plugins {
        vici {
            socket = unix://$dir/charon.vici
        }
    }
}
swanctl {
    socket = unix://$dir/charon.vici
}
EOF
    : >"$dir/charon.log"
    rm -f "$dir/charon.vici"
    netns_bg "$ns" "$dir/charon.out" env STRONGSWAN_CONF="$dir/strongswan.conf" \
        unshare -m --propagation private \
        sh -c 'mount -t tmpfs tmpfs /run && exec '"$SWAN_CHARON" || return 1
    SWAN_PID[$name]="$NETNS_LAST_PID"
    SWAN_NS[$name]="$ns"
    SWAN_DIR[$name]="$dir"
    if ! netns_wait 10 test -S "$dir/charon.vici"; then
        swan_log "$name: no vici socket after 10 s"
        swan_dump "$name" 10 >&2
        return 1
    fi
}

swan_swanctl() {
    local name="$1"
    shift
    STRONGSWAN_CONF="${SWAN_DIR[$name]}/strongswan.conf" timeout 20 \
        ip netns exec "${SWAN_NS[$name]}" swanctl "$@" --uri "unix://${SWAN_DIR[$name]}/charon.vici"
}

swan_load() {
    local name="$1"
    swan_swanctl "$name" --load-all --file "${SWAN_DIR[$name]}/swanctl.conf" \
        >"${SWAN_DIR[$name]}/load.out" 2>&1 || {
        swan_log "$name: swanctl --load-all failed:"
        sed 's/^/  | /' "${SWAN_DIR[$name]}/load.out" >&2
        return 1
    }
}

swan_initiate() {
    local name="$1" child="$2" t="${3:-10}"
    swan_swanctl "$name" --initiate --child "$child" --timeout "$t" \
        >"${SWAN_DIR[$name]}/initiate.out" 2>&1
}

swan_list() { swan_swanctl "$1" --list-sas 2>/dev/null; }

# True when CONN is ESTABLISHED and at least one of its children is INSTALLED.
swan_established() {
    local out
    out="$(swan_swanctl "$1" --list-sas --ike "$2" 2>/dev/null)" || return 1
    grep -q 'ESTABLISHED' <<<"$out" && grep -q 'INSTALLED' <<<"$out"
}

swan_wait_established() {
    netns_wait "$3" swan_established "$1" "$2"
}

swan_stop() {
    local name="$1"
    [ -n "${SWAN_PID[$name]:-}" ] || return 0
    netns_stop "${SWAN_PID[$name]}" 3
    SWAN_PID[$name]=""
}

swan_dump() {
    local name="$1" n="${2:-15}"
    echo "  --- charon $name (${SWAN_DIR[$name]:-?}/charon.log), last $n lines ---"
    tail -n "$n" "${SWAN_DIR[$name]}/charon.log" 2>/dev/null | sed 's/^/  | /'
    if [ -s "${SWAN_DIR[$name]}/charon.out" ]; then
        tail -n 5 "${SWAN_DIR[$name]}/charon.out" | sed 's/^/  | out: /'
    fi
}
