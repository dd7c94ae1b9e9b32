//! `paths:`: the outer headers of static SAs: local and remote address, UDP (RFC 3948)
//! or plain ESP, NAT keepalives, and the next hop on an afpacket cipher side.

use super::addr::{covers, joined};
use super::cipher::{CipherBackend, CipherConf};
use super::name::Names;
use super::value::{parse_mac, Ctx, S};
use serde_saphyr::Spanned;
use shared::path::Encap;
use std::net::SocketAddr;

/// Longest NAT keepalive interval accepted, in seconds.
pub const KEEPALIVE_MAX: u64 = 3600;

/// How an Ethernet-layer backend finds the next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// From the kernel's neighbour table.
    Auto,
    Mac([u8; 6]),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathConf {
    pub name: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub encap: Encap,
    /// Seconds without traffic before a NAT keepalive (RFC 3948 4); 0 = off.
    pub keepalive_s: u32,
    /// Only with the afpacket cipher backend.
    pub next_hop_mac: Option<NextHop>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPath {
    pub(super) name: Option<S>,
    pub(super) local: Option<S>,
    pub(super) remote: Option<S>,
    pub(super) encap: Option<S>,
    pub(super) keepalive: Option<S>,
    pub(super) next_hop_mac: Option<S>,
}

pub(super) fn validate(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<Vec<Spanned<RawPath>>>>,
    cipher: Option<&CipherConf>,
) -> Vec<Option<PathConf>> {
    let Some(list) = raw else { return Vec::new() };
    let afpacket = matches!(
        cipher.map(|c| &c.backend),
        Some(CipherBackend::AfPacket { .. })
    );
    let backend_name = if afpacket { "afpacket" } else { "udp" };
    let mut names = Names::new("path", "paths");
    let mut out = Vec::new();
    for (i, item) in list.value.iter().enumerate() {
        let r = &item.value;
        let at = |k: &str| format!("paths[{i}].{k}");
        let mut ok = true;
        let name = names.check(
            cx,
            i,
            item.referenced,
            r.name.as_ref(),
            "add `name: NAME`; tunnels refer to their path by name",
        );
        let addr = |cx: &mut Ctx<'_>, key: &str, v: &Option<S>| match v {
            None => {
                cx.missing(
                    &at(key),
                    Some(item.referenced),
                    format!("add `{key}: IP:PORT`"),
                );
                None
            }
            Some(v) => cx.socket_addr(&at(key), v),
        };
        let local = addr(cx, "local", &r.local);
        let remote = addr(cx, "remote", &r.remote);
        let encap = match &r.encap {
            None => Some(Encap::Udp),
            Some(v) => match cx.choice(&at("encap"), v, &["udp", "esp"]) {
                Some("esp") => {
                    if !afpacket && cipher.is_some() {
                        cx.err(
                            &at("encap"),
                            v.referenced,
                            "plain ESP (IP protocol 50) needs the afpacket cipher backend; the udp backend sends only UDP",
                            "use `encap: udp` (RFC 3948), or set cipher.backend: afpacket",
                        );
                        None
                    } else {
                        Some(Encap::Esp)
                    }
                }
                Some(_) => Some(Encap::Udp),
                None => None,
            },
        };
        let keepalive = match &r.keepalive {
            None => Some(if encap == Some(Encap::Esp) { 0 } else { 20 }),
            Some(v) => match cx.uint(
                &at("keepalive"),
                v,
                0..=KEEPALIVE_MAX,
                "seconds without traffic before a NAT keepalive (0 = off)",
            ) {
                Some(n) if n > 0 && encap == Some(Encap::Esp) => {
                    cx.err(
                        &at("keepalive"),
                        v.referenced,
                        "NAT keepalives exist only with UDP encapsulation (RFC 3948 4)",
                        "remove `keepalive` or set it to 0 for `encap: esp`",
                    );
                    None
                }
                Some(n) => Some(n as u32),
                None => None,
            },
        };
        let next_hop_mac = match &r.next_hop_mac {
            None => afpacket.then_some(NextHop::Auto),
            Some(v) if !afpacket => {
                cx.err(
                    &at("next_hop_mac"),
                    v.referenced,
                    format!("this key applies to the afpacket backend, but cipher.backend is {backend_name}"),
                    "remove it: with the udp backend the kernel chooses the next hop",
                );
                ok = false;
                None
            }
            Some(v) if v.value.eq_ignore_ascii_case("auto") => Some(NextHop::Auto),
            Some(v) => match parse_mac(&v.value) {
                Some(m) => Some(NextHop::Mac(m)),
                None => {
                    cx.err(
                        &at("next_hop_mac"),
                        v.referenced,
                        format!("`{}` is not a MAC address", v.value),
                        "write `auto` (kernel neighbour table) or six hex pairs, e.g. 02:00:00:00:00:01",
                    );
                    ok = false;
                    None
                }
            },
        };
        if let (Some(l), Some(rm)) = (local, remote) {
            if l.is_ipv4() != rm.is_ipv4() {
                cx.err(
                    &at("remote"),
                    r.remote.as_ref().map_or(item.referenced, |v| v.referenced),
                    format!("local {l} and remote {rm} are of different address families"),
                    "use IPv4 at both ends or IPv6 at both ends of a path",
                );
                ok = false;
            }
            if rm.ip().is_unspecified() || rm.ip().is_multicast() {
                cx.err(
                    &at("remote"),
                    r.remote.as_ref().map_or(item.referenced, |v| v.referenced),
                    format!("{} cannot be a peer address", rm.ip()),
                    "give the peer's unicast address",
                );
                ok = false;
            }
            if encap == Some(Encap::Udp) && (l.port() == 0 || rm.port() == 0) {
                let key = if l.port() == 0 { "local" } else { "remote" };
                cx.err(
                    &at(key),
                    item.referenced,
                    "UDP encapsulation needs a port",
                    "use 4500 (RFC 3948)",
                );
                ok = false;
            }
            if let Some(CipherConf {
                backend: CipherBackend::Udp { bind, .. },
                ..
            }) = cipher
            {
                let covered = bind
                    .iter()
                    .any(|b| b.port() == l.port() && covers(b.ip(), l.ip()));
                if !covered {
                    let list = joined(bind);
                    cx.err(
                        &at("local"),
                        r.local.as_ref().map_or(item.referenced, |v| v.referenced),
                        format!("{l} is not an address the udp backend listens on (cipher.bind: {list})"),
                        format!("add {l} to cipher.bind, or use one of the bound addresses"),
                    );
                    ok = false;
                }
            }
        }
        let conf = match (ok, name, local, remote, encap, keepalive) {
            (true, Some(name), Some(local), Some(remote), Some(encap), Some(keepalive_s)) => {
                Some(PathConf {
                    name,
                    local,
                    remote,
                    encap,
                    keepalive_s,
                    next_hop_mac,
                })
            }
            _ => None,
        };
        out.push(conf);
    }
    out
}
