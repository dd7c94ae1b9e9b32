//! A connection's addresses: its peers (`peeraddr`, or swanctl.conf's `remote_addrs`)
//! and its own (`local_addrs`, else those IKE listens on), each of a family IKE has a
//! socket for.

use super::RawConn;
use crate::config::addr::{addr_port, covers, joined};
use crate::config::ike::IkeListenConf;
use crate::config::value::{items, Ctx};
use serde_saphyr::Location;
use std::net::SocketAddr;

/// A peer address as written: the address, its key path and where it stands.
pub(super) type Peer = (SocketAddr, String, Location);

/// The peers to initiate to (`%any` accepts any and is skipped), on `ike.port` unless a
/// port is given; and whether any was unreadable (the role is unknown then).
pub(super) fn peer_addrs(
    cx: &mut Ctx<'_>,
    prefix: &str,
    r: &RawConn,
    ike: &IkeListenConf,
    ok: &mut bool,
) -> (Vec<Peer>, bool) {
    let at = |k: &str| format!("{prefix}{k}");
    let peer_raw = match (&r.peeraddr, &r.remote_addrs) {
        (Some(_), Some(alias)) => {
            cx.err(
                &at("remote_addrs"),
                alias.referenced,
                "`remote_addrs` is another name for `peeraddr`, and both are given",
                "keep one of the two",
            );
            *ok = false;
            None
        }
        (Some(p), None) => Some(("peeraddr", p)),
        (None, Some(p)) => Some(("remote_addrs", p)),
        (None, None) => None,
    };
    let mut peer_addrs: Vec<(SocketAddr, String, Location)> = Vec::new();
    let mut peer_bad = false;
    if let Some((key, m)) = peer_raw {
        for (p, s, loc) in items(&at(key), m) {
            if s == "%any" {
                continue;
            }
            match addr_port(&s, ike.port) {
                Ok(a) if a.ip().is_unspecified() || a.ip().is_multicast() => {
                    cx.err(
                        &p,
                        loc,
                        format!("{} cannot be a peer address", a.ip()),
                        "give the peer's unicast address, or %any (or no key) to accept any peer",
                    );
                    *ok = false;
                    peer_bad = true;
                }
                Ok(a) if a.port() == 0 => {
                    cx.err(&p, loc, "port 0 is not a port", "use 500 (RFC 7296 2)");
                    *ok = false;
                    peer_bad = true;
                }
                Ok(a) if peer_addrs.iter().any(|(b, ..)| *b == a) => {
                    cx.err(
                        &p,
                        loc,
                        format!("{a} is listed twice"),
                        "remove the duplicate",
                    );
                    *ok = false;
                    peer_bad = true;
                }
                Ok(a) => peer_addrs.push((a, p, loc)),
                Err(e) => {
                    cx.err(&p, loc, e, "");
                    *ok = false;
                    peer_bad = true;
                }
            }
        }
    }
    (peer_addrs, peer_bad)
}

/// The own addresses: each of `local_addrs` must be one IKE listens on; without the
/// key, the listen addresses of a peer's family (a wildcard is left to the runtime,
/// which picks the source per route).
pub(super) fn local_addrs(
    cx: &mut Ctx<'_>,
    prefix: &str,
    r: &RawConn,
    ike: &IkeListenConf,
    peer_addrs: &[Peer],
    ok: &mut bool,
) -> Vec<SocketAddr> {
    let at = |k: &str| format!("{prefix}{k}");
    let mut local_addrs: Vec<SocketAddr> = Vec::new();
    if let Some(m) = &r.local_addrs {
        for (p, s, loc) in items(&at("local_addrs"), m) {
            match addr_port(&s, ike.port) {
                Ok(a) if a.port() != ike.port && a.port() != ike.port_nat_t => {
                    cx.err(
                        &p,
                        loc,
                        format!(
                            "IKE listens on ports {} and {}, not {}",
                            ike.port,
                            ike.port_nat_t,
                            a.port()
                        ),
                        "give the address alone, or change ike.port / ike.port_nat_t",
                    );
                    *ok = false;
                }
                Ok(a) if a.ip().is_multicast() => {
                    cx.err(
                        &p,
                        loc,
                        format!("{} is a multicast address", a.ip()),
                        "give a local unicast address",
                    );
                    *ok = false;
                }
                Ok(a) => {
                    let covered = ike.listen.iter().any(|l| covers(*l, a.ip()));
                    if !covered {
                        let known = joined(&ike.listen);
                        cx.err(
                            &p,
                            loc,
                            format!(
                                "{} is not an address IKE listens on (ike.listen: {known})",
                                a.ip()
                            ),
                            format!(
                                "add {} to ike.listen (and cipher.bind), or use one of those",
                                a.ip()
                            ),
                        );
                        *ok = false;
                    } else if local_addrs.contains(&a) {
                        cx.err(
                            &p,
                            loc,
                            format!("{a} is listed twice"),
                            "remove the duplicate",
                        );
                        *ok = false;
                    } else {
                        local_addrs.push(a);
                    }
                }
                Err(e) => {
                    cx.err(&p, loc, e, "");
                    *ok = false;
                }
            }
        }
    }
    if r.local_addrs.is_some() && *ok {
        for (a, p, loc) in peer_addrs {
            if !local_addrs.iter().any(|l| l.is_ipv4() == a.is_ipv4()) {
                let fam = if a.is_ipv4() { "IPv4" } else { "IPv6" };
                cx.err(
                    p,
                    *loc,
                    format!("{a} is {fam}, and no local address is"),
                    format!("add an {fam} address to local_addrs, or give an address of the local family"),
                );
                *ok = false;
            }
        }
    }
    if r.local_addrs.is_none() && !ike.listen.is_empty() {
        // IKE has one socket per listen address: no socket of a peer's family, no way
        // to reach the peer.
        for (a, p, loc) in peer_addrs {
            if !ike.listen.iter().any(|l| l.is_ipv4() == a.is_ipv4()) {
                let (fam, other) = if a.is_ipv4() {
                    ("IPv4", "IPv6")
                } else {
                    ("IPv6", "IPv4")
                };
                let known = joined(&ike.listen);
                cx.err(
                    p,
                    *loc,
                    format!("{} is {fam}, and IKE listens on no {fam} address (ike.listen: {known})", a.ip()),
                    format!("listen on an {fam} address as well (cipher.bind, and ike.listen if given), or give the peer's {other} address"),
                );
                *ok = false;
            }
        }
    }
    if r.local_addrs.is_none() {
        // The addresses IKE listens on, in the family of a peer when one is known; a
        // wildcard is left to the runtime, which picks the source per route.
        local_addrs = ike
            .listen
            .iter()
            .filter(|l| !l.is_unspecified())
            .filter(|l| {
                peer_addrs.is_empty() || peer_addrs.iter().any(|(a, ..)| a.is_ipv4() == l.is_ipv4())
            })
            .map(|l| SocketAddr::new(*l, ike.port))
            .collect();
    }
    local_addrs
}
