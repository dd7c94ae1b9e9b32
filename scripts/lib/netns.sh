# shellcheck shell=bash
# Network-namespace helpers for the lab and end-to-end scripts. Source this file, then call
# `netns_init`. Everything a run creates is named `mk<run id>...` so parallel runs never
# collide, and the cleanup (installed as an EXIT/INT/TERM/HUP trap) removes exactly what
# this run created: the PIDs it started (by PID, never by name), the links it added, its
# namespaces, and its temporary directory.
#
#   netns_init                          run id in NETNS_RUN, temp dir in NETNS_TMP, traps set
#   netns_add NAME                      creates namespace mk<run>NAME, its name in NETNS_NS;
#                                       loopback up, rp_filter=0 (all/default), ip_forward=1
#   netns_veth NS1 IF1 CIDR1 NS2 IF2 CIDR2
#                                       veth pair created directly inside both namespaces
#                                       (never visible in the caller's namespace), addressed,
#                                       up, rp_filter=0 on each end
#   netns_tun NS IF CIDR                persistent TUN device in NS, addressed and up
#   netns_mac NS IF                     prints the interface's MAC address
#   netns_counter NS IF STAT            prints /sys/class/net/IF/statistics/STAT inside NS
#   netns_bg NS LOG CMD...              starts CMD inside NS in the background, output to
#                                       LOG; its PID is in NETNS_LAST_PID and is killed by
#                                       the cleanup
#   netns_stop PID [GRACE_S]            SIGTERM, then SIGKILL after GRACE_S (default 3)
#   netns_wait TIMEOUT_S CMD...         polls CMD every 50 ms until it succeeds, for at most
#                                       TIMEOUT_S (integer) seconds; non-zero on timeout
#   netns_on_cleanup 'SHELL CODE'       extra cleanup step, run before the built-in ones
#   netns_cleanup                       idempotent; also runs from the traps
#
# Reverse-path filtering is switched off inside every namespace and on every link: after a
# path change, packets of one tunnel legitimately arrive on another interface, and strict
# rp_filter would drop them (see the MOBIKE notes on the Linux reverse path filter).

NETNS_RUN=""
NETNS_TMP=""
NETNS_LAST_PID=""
NETNS_NS=""
NETNS_KEEP_TMP="${NETNS_KEEP_TMP:-0}"
NETNS_NAMESPACES=()
NETNS_LINKS=()   # "NS IF" pairs, deleted before their namespace
NETNS_PIDS=()
NETNS_HOOKS=()
NETNS_CLEANED=0

netns_log() { printf '[netns] %s\n' "$*" >&2; }

netns_init() {
    if [ "$(id -u)" -ne 0 ]; then
        netns_log "network namespaces need root"
        return 1
    fi
    command -v ip >/dev/null || { netns_log "ip (iproute2) not found"; return 1; }
    # A short run id: interface names are limited to 15 bytes and namespace names appear in
    # every `ip -n` call. Retry until no namespace of that id exists.
    local tries=0
    while :; do
        NETNS_RUN="$(printf '%x%04x' "$(( $$ % 4096 ))" "$(( RANDOM ))")"
        if ! compgen -G "/run/netns/mk${NETNS_RUN}*" >/dev/null; then
            break
        fi
        tries=$((tries + 1))
        [ "$tries" -lt 20 ] || { netns_log "no free run id"; return 1; }
    done
    NETNS_TMP="$(mktemp -d "${TMPDIR:-/tmp}/mk${NETNS_RUN}.XXXXXX")"
    NETNS_CLEANED=0
    trap 'netns_cleanup' EXIT
    trap 'netns_cleanup; trap - INT; kill -INT $$' INT
    trap 'netns_cleanup; trap - TERM; kill -TERM $$' TERM
    trap 'netns_cleanup; trap - HUP; kill -HUP $$' HUP
}

netns_add() {
    local ns="mk${NETNS_RUN}$1"
    ip netns add "$ns" || return 1
    NETNS_NAMESPACES+=("$ns")
    # shellcheck disable=SC2034 # read by the caller
    NETNS_NS="$ns"
    ip -n "$ns" link set lo up || return 1
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.default.rp_filter=0 net.ipv4.ip_forward=1 >/dev/null || return 1
}

netns_veth() {
    local ns1="$1" if1="$2" a1="$3" ns2="$4" if2="$5" a2="$6"
    ip -n "$ns1" link add "$if1" type veth peer name "$if2" netns "$ns2" || return 1
    NETNS_LINKS+=("$ns1 $if1")
    local pair
    for pair in "$ns1 $if1 $a1" "$ns2 $if2 $a2"; do
        # shellcheck disable=SC2086
        set -- $pair
        ip -n "$1" addr add "$3" dev "$2" || return 1
        ip netns exec "$1" sysctl -qw "net.ipv4.conf.$2.rp_filter=0" >/dev/null || return 1
        ip -n "$1" link set "$2" up || return 1
    done
}

netns_tun() {
    local ns="$1" ifname="$2" cidr="$3"
    ip -n "$ns" tuntap add dev "$ifname" mode tun || return 1
    NETNS_LINKS+=("$ns $ifname")
    ip -n "$ns" addr add "$cidr" dev "$ifname" || return 1
    ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$ifname.rp_filter=0" >/dev/null || return 1
    ip -n "$ns" link set "$ifname" up || return 1
}

netns_mac() {
    ip netns exec "$1" cat "/sys/class/net/$2/address"
}

netns_counter() {
    ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"
}

netns_bg() {
    local ns="$1" log="$2"
    shift 2
    # `ip netns exec` execs the command in place, so $! is the command's own PID.
    ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
    NETNS_LAST_PID=$!
    NETNS_PIDS+=("$NETNS_LAST_PID")
}

netns_stop() {
    local pid="$1" grace="${2:-3}" i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        netns_log "PID $pid ignored SIGTERM for ${grace}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

netns_now_us() { echo "${EPOCHREALTIME/./}"; }

netns_wait() {
    # Deadline-based, so a slow CMD cannot stretch the wait beyond TIMEOUT_S.
    local deadline=$(($(netns_now_us) + $1 * 1000000))
    shift
    while [ "$(netns_now_us)" -lt "$deadline" ]; do
        "$@" && return 0
        sleep 0.05
    done
    "$@"
}

netns_on_cleanup() {
    NETNS_HOOKS+=("$1")
}

netns_cleanup() {
    [ "$NETNS_CLEANED" -eq 0 ] || return 0
    NETNS_CLEANED=1
    local hook pid entry ns
    for hook in "${NETNS_HOOKS[@]}"; do
        eval "$hook" || true
    done
    for pid in "${NETNS_PIDS[@]}"; do
        netns_stop "$pid" 3
    done
    for entry in "${NETNS_LINKS[@]}"; do
        # shellcheck disable=SC2086
        set -- $entry
        ip -n "$1" link del "$2" 2>/dev/null || true
    done
    for ns in "${NETNS_NAMESPACES[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ -n "$NETNS_TMP" ] && [ -d "$NETNS_TMP" ]; then
        if [ "$NETNS_KEEP_TMP" = 1 ]; then
            netns_log "kept $NETNS_TMP"
        else
            rm -rf -- "$NETNS_TMP"
        fi
    fi
    NETNS_PIDS=()
    NETNS_LINKS=()
    NETNS_NAMESPACES=()
    return 0
}
