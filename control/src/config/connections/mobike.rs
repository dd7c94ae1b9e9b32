//! The MOBIKE keys of a connection (RFC 4555), in the words of MyIKEv2's MOBIKE
//! settings: where each may appear (`mobike_gate`), the client's address block
//! (`startclntaddr` with `mobikeaddrpertunnel`), and the values of the rest.

use super::RawConn;
use crate::config::addr::{ip_of, joined, u128_of};
use crate::config::duration::DURATION_MAX_S;
use crate::config::ike::IkeListenConf;
use crate::config::prefix::prefix_len;
use crate::config::value::{Ctx, S};
use crate::ike::conn::{ChangeType, Mobike};
use std::net::IpAddr;

/// Own addresses per client tunnel (`mobikeaddrpertunnel`) and addresses a gateway
/// announces (`mobikeaddrpergw`): each is one ADDITIONAL_IP*_ADDRESS notify in every
/// IKE_AUTH and address update (RFC 4555 3.4).
pub const MOBIKE_ADDRS_MAX: u64 = 64;
/// Longest wait after an address event before acting (`mobikedebounce`), in ms.
pub const MOBIKE_DEBOUNCE_MAX_MS: u64 = 60_000;

/// The seed's client address block: `startclntaddr` (first address/prefix) and
/// `mobikeaddrpertunnel` (addresses per copy).
pub(super) struct ClientBlock {
    pub(super) start: IpAddr,
    pub(super) prefix_len: u8,
    pub(super) per_tunnel: u32,
    /// The prefix's network address, and its last address a host may use.
    net: u128,
    last_usable: u128,
}

/// Keys only a client's address rotation reads.
const ROTATION_KEYS: [&str; 5] = [
    "mobikeiplifetime",
    "mobikeipspread",
    "mobikechangeaddrtype",
    "mobikeaddrpertunnel",
    "startclntaddr",
];

/// `mobike` itself, and whether every other MOBIKE key may appear on this connection:
/// all of them need `mobike: true`; the rotation keys belong to an initiator, and
/// `mobikeaddrpergw` to a responder. `initiates` is `None` when `peeraddr` was
/// unreadable (the role is unknown; no role errors then). Returns `mobike`'s value;
/// a misplaced key clears `ok` (the values are still checked, to report every error).
pub(super) fn mobike_gate(
    cx: &mut Ctx<'_>,
    prefix: &str,
    r: &RawConn,
    initiates: Option<bool>,
    ok: &mut bool,
) -> Option<bool> {
    let at = |k: &str| format!("{prefix}{k}");
    let enabled = match &r.mobike {
        None => Some(false),
        Some(v) => cx.boolean(&at("mobike"), v),
    };
    let keys: [(&str, &Option<S>); 9] = [
        ("disallownat", &r.disallownat),
        ("mobikerrcheck", &r.mobikerrcheck),
        ("mobikeiplifetime", &r.mobikeiplifetime),
        ("mobikeipspread", &r.mobikeipspread),
        ("mobikechangeaddrtype", &r.mobikechangeaddrtype),
        ("mobikeaddrpergw", &r.mobikeaddrpergw),
        ("mobikedebounce", &r.mobikedebounce),
        ("mobikeaddrpertunnel", &r.mobikeaddrpertunnel),
        ("startclntaddr", &r.startclntaddr),
    ];
    for (key, v) in keys {
        let Some(v) = v else { continue };
        if enabled == Some(false) {
            cx.err(
                &at(key),
                v.referenced,
                "MOBIKE is off for this connection (`mobike` is false or absent)",
                format!("add `mobike: true`, or remove `{key}`"),
            );
            *ok = false;
        } else if initiates == Some(false) && ROTATION_KEYS.contains(&key) {
            cx.err(
                &at(key),
                v.referenced,
                format!("`{key}` belongs to a client's address rotation, and this connection only responds (it has no peeraddr)"),
                format!("add `peeraddr: GATEWAY-IP` to initiate, or remove `{key}`: a responder follows the moves its peer makes (RFC 4555 3.5)"),
            );
            *ok = false;
        } else if initiates == Some(true) && key == "mobikeaddrpergw" {
            cx.err(
                &at(key),
                v.referenced,
                "`mobikeaddrpergw` is a gateway's setting, and this connection initiates (it has a peeraddr)",
                "remove it: a client's own addresses come from startclntaddr with mobikeaddrpertunnel, or local_addrs",
            );
            *ok = false;
        }
    }
    enabled
}

/// `startclntaddr: ADDRESS/LENGTH`: the first address, the prefix length, the
/// network address and the last usable address (not the IPv4 broadcast address).
fn start_prefix(s: &str) -> Result<(IpAddr, u8, u128, u128), (String, String)> {
    let fix = "write the first address with its prefix length, e.g. 192.168.1.1/24".to_string();
    let Some((a, l)) = s.trim().split_once('/') else {
        return Err((format!("`{s}` has no prefix length"), fix));
    };
    let ip: IpAddr = a
        .trim()
        .parse()
        .map_err(|_| (format!("`{a}` is not an IP address"), fix.clone()))?;
    let bits: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = prefix_len(l, ip)?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err((
            format!("{ip} cannot be a host's address"),
            "give a unicast address, e.g. 192.168.1.1/24".to_string(),
        ));
    }
    let host_bits = u32::from(bits - len);
    let host: u128 = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let base = u128_of(ip);
    let net = base & !host;
    // RFC 3021: a /31 (and a /32) has no network or broadcast address; IPv6 has no
    // broadcast, and its network address is the Subnet-Router anycast (RFC 4291 2.6.1).
    if host_bits >= 2 && base == net {
        let first = ip_of(ip.is_ipv6(), net + 1);
        return Err((
            format!("{ip} is the network address of {ip}/{len}"),
            format!("start at a host address, e.g. {first}/{len}"),
        ));
    }
    let last_usable = if ip.is_ipv4() && host_bits >= 2 {
        (net | host) - 1
    } else {
        net | host
    };
    Ok((ip, len, net, last_usable))
}

/// `startclntaddr` with `mobikeaddrpertunnel`: both or neither, not with `local_addrs`,
/// of a peer's family. `Some(None)`: neither key; `None`: an error.
pub(super) fn client_block(
    cx: &mut Ctx<'_>,
    prefix: &str,
    r: &RawConn,
    (peer_v4, peer_v6): (bool, bool),
) -> Option<Option<ClientBlock>> {
    let at = |k: &str| format!("{prefix}{k}");
    match (&r.mobikeaddrpertunnel, &r.startclntaddr) {
        (None, None) => Some(None),
        (Some(v), None) => {
            cx.err(
                &at("mobikeaddrpertunnel"),
                v.referenced,
                "`mobikeaddrpertunnel` counts addresses from `startclntaddr`, and there is none",
                "add `startclntaddr: 192.168.1.1/24` (the first address and its prefix), or remove `mobikeaddrpertunnel`",
            );
            None
        }
        (None, Some(v)) => {
            cx.err(
                &at("startclntaddr"),
                v.referenced,
                "`startclntaddr` needs `mobikeaddrpertunnel`: how many addresses each tunnel gets",
                "add `mobikeaddrpertunnel: N` (1 or more), or remove `startclntaddr`",
            );
            None
        }
        (Some(n), Some(v)) => {
            let n = cx.uint(
                &at("mobikeaddrpertunnel"),
                n,
                1..=MOBIKE_ADDRS_MAX,
                "own addresses of each tunnel",
            );
            if r.local_addrs.is_some() {
                cx.err(
                    &at("startclntaddr"),
                    v.referenced,
                    "`startclntaddr` allocates this connection's own addresses, and `local_addrs` lists them as well",
                    "keep one: startclntaddr with mobikeaddrpertunnel (N addresses per instance), or local_addrs",
                );
                return None;
            }
            let (start, prefix_len, net, last_usable) = match start_prefix(&v.value) {
                Ok(x) => x,
                Err((problem, fix)) => {
                    cx.err(&at("startclntaddr"), v.referenced, problem, fix);
                    return None;
                }
            };
            let (v6, fam) = (
                start.is_ipv6(),
                if start.is_ipv6() { "IPv6" } else { "IPv4" },
            );
            if (peer_v4 || peer_v6) && !(if v6 { peer_v6 } else { peer_v4 }) {
                cx.err(
                    &at("startclntaddr"),
                    v.referenced,
                    format!("{start} is {fam}, and no peeraddr is"),
                    "give a startclntaddr of the peer's address family",
                );
                return None;
            }
            Some(Some(ClientBlock {
                start,
                prefix_len,
                per_tunnel: n? as u32,
                net,
                last_usable,
            }))
        }
    }
}

/// Every copy's block inside the prefix, and every address one IKE listens on.
pub(super) fn client_block_fits(
    cx: &mut Ctx<'_>,
    path: &str,
    r: &RawConn,
    b: &ClientBlock,
    instances: u32,
    ike: &IkeListenConf,
) -> bool {
    let Some(v) = &r.startclntaddr else {
        return false;
    };
    let v6 = b.start.is_ipv6();
    let per = u128::from(b.per_tunnel);
    let total = u128::from(instances) * per;
    let first = u128_of(b.start);
    if first + total - 1 > b.last_usable {
        let fit = (b.last_usable - first + 1) / per;
        let net = ip_of(v6, b.net);
        let len = b.prefix_len;
        cx.err(
            path,
            v.referenced,
            format!(
                "instances ({instances}) x mobikeaddrpertunnel ({per}) = {total} addresses from {} run past the end of {net}/{len} (last usable: {})",
                b.start,
                ip_of(v6, b.last_usable)
            ),
            format!(
                "{fit} instance(s) fit: lower instances or mobikeaddrpertunnel, start lower in the prefix, or give a shorter prefix in startclntaddr"
            ),
        );
        return false;
    }
    let wildcard = ike
        .listen
        .iter()
        .any(|l| l.is_unspecified() && l.is_ipv6() == v6);
    // Without a wildcard only listed addresses are covered, so an uncovered one shows
    // up within the first listen.len() + 1 of the block.
    let uncovered = (!wildcard)
        .then(|| {
            (0..total)
                .map(|k| ip_of(v6, first + k))
                .find(|a| !ike.listen.contains(a))
        })
        .flatten();
    if let Some(a) = uncovered {
        let known = joined(&ike.listen);
        let any = if v6 { "'::'" } else { "0.0.0.0" };
        cx.err(
            path,
            v.referenced,
            format!("{a}, allocated by startclntaddr, is not an address IKE listens on (ike.listen: {known})"),
            format!("listen on the wildcard, `ike: {{ listen: [{any}] }}` (with the udp backend bind the dataplane there too), or list every allocated address"),
        );
        return false;
    }
    true
}

/// The values of the MOBIKE keys (their placement was checked by [`mobike_gate`]).
/// `own_addrs`: how many own addresses one copy of the connection has.
pub(super) fn mobike_settings(
    cx: &mut Ctx<'_>,
    prefix: &str,
    r: &RawConn,
    enabled: bool,
    own_addrs: usize,
) -> Option<Mobike> {
    let at = |k: &str| format!("{prefix}{k}");
    let d = Mobike::default();
    let flag = |cx: &mut Ctx<'_>, key: &str, v: &Option<S>, d: bool| match v {
        None => Some(d),
        Some(v) => cx.boolean(&at(key), v),
    };
    let disallow_nat = flag(cx, "disallownat", &r.disallownat, d.disallow_nat);
    let rr_check = flag(cx, "mobikerrcheck", &r.mobikerrcheck, d.rr_check);
    let ip_lifetime_ms = match &r.mobikeiplifetime {
        None => Some(d.ip_lifetime_ms),
        Some(v) => cx.duration_ms(&at("mobikeiplifetime"), v, 0..=DURATION_MAX_S * 1000),
    };
    let ip_spread = flag(cx, "mobikeipspread", &r.mobikeipspread, d.ip_spread);
    let change_type = match &r.mobikechangeaddrtype {
        None => Some(d.change_type),
        Some(v) => cx
            .choice(
                &at("mobikechangeaddrtype"),
                v,
                &["own-only", "peer-only", "both"],
            )
            .map(|c| match c {
                "peer-only" => ChangeType::PeerOnly,
                "both" => ChangeType::Both,
                _ => ChangeType::OwnOnly,
            }),
    };
    let addrs_per_gw = match &r.mobikeaddrpergw {
        None => Some(d.addrs_per_gw),
        Some(v) => match cx.uint(
            &at("mobikeaddrpergw"),
            v,
            0..=MOBIKE_ADDRS_MAX,
            "own addresses the gateway announces, 0 = all",
        ) {
            Some(n) if own_addrs > 0 && n as usize > own_addrs => {
                cx.err(
                    &at("mobikeaddrpergw"),
                    v.referenced,
                    format!("{n} addresses to announce, and the connection has {own_addrs} (local_addrs, else ike.listen)"),
                    format!("give at most {own_addrs} (0 = all), or add local addresses"),
                );
                None
            }
            n => n.map(|n| n as u32),
        },
    };
    let debounce_ms = match &r.mobikedebounce {
        None => Some(d.debounce_ms),
        Some(v) => cx.duration_ms(&at("mobikedebounce"), v, 0..=MOBIKE_DEBOUNCE_MAX_MS),
    };
    if let (Some(v), Some(1..), Some(ChangeType::OwnOnly)) =
        (&r.mobikeiplifetime, ip_lifetime_ms, change_type)
    {
        if own_addrs < 2 {
            cx.err(
                &at("mobikeiplifetime"),
                v.referenced,
                format!("own-only rotation (the default mobikechangeaddrtype) moves between own addresses, and each tunnel has {own_addrs}"),
                "give each tunnel two or more (mobikeaddrpertunnel with startclntaddr, or local_addrs), or set mobikechangeaddrtype: peer-only or both",
            );
            return None;
        }
    }
    Some(Mobike {
        enabled,
        disallow_nat: disallow_nat?,
        rr_check: rr_check?,
        ip_lifetime_ms: ip_lifetime_ms?,
        ip_spread: ip_spread?,
        change_type: change_type?,
        addrs_per_gw: addrs_per_gw?,
        debounce_ms: debounce_ms?,
    })
}
