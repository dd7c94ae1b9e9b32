//! `ike:`: where IKE listens: addresses, the IKE and NAT-T ports (RFC 7296 2, RFC 3948),
//! and when a responder demands cookies (RFC 7296 2.6). The other IKE sections are
//! `pools.rs` and `connections.rs`, in the words a swanctl.conf or MyIKEv2 user knows.

use super::addr::{addr_port, covers};
use super::cipher::{CipherBackend, CipherConf};
use super::value::{items, Ctx, Many, S};
use serde_saphyr::{Location, Spanned};
use std::net::{IpAddr, SocketAddr};

/// Half-open IKE SAs before cookies: the largest threshold accepted.
pub const COOKIE_THRESHOLD_MAX: u64 = 1 << 20;

/// Where the IKE daemon listens (`ike:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeListenConf {
    /// Addresses to receive IKE on (the IKE port and the NAT-T port on each).
    pub listen: Vec<IpAddr>,
    /// The IKE port (500, RFC 7296 2).
    pub port: u16,
    /// The NAT-T port (4500, RFC 3948). With the udp cipher backend the dataplane owns
    /// this port on its bound addresses and hands IKE (non-ESP marker) to the control
    /// plane.
    pub port_nat_t: u16,
    /// Half-open IKE SAs above which the responder demands cookies (RFC 7296 2.6).
    pub cookie_threshold: usize,
    /// A client's new IKE SAs per second at most (0 = as fast as the window allows).
    pub setup_rate: u64,
    /// A client's IKE SAs being set up at once at most.
    pub setup_window: usize,
}

/// `ike.setup_window` default and largest value.
pub const SETUP_WINDOW_DEFAULT: usize = 256;
pub const SETUP_WINDOW_MAX: u64 = 65_536;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIke {
    listen: Option<Many>,
    port: Option<S>,
    port_nat_t: Option<S>,
    cookie_threshold: Option<S>,
    setup_rate: Option<S>,
    setup_window: Option<S>,
}

pub(super) fn validate(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<RawIke>>,
    cipher: Option<&CipherConf>,
    have_conns: bool,
) -> (IkeListenConf, bool) {
    let r = raw.map(|r| &r.value);
    let bind: &[SocketAddr] = match cipher.map(|c| &c.backend) {
        Some(CipherBackend::Udp { bind, .. }) => bind,
        _ => &[],
    };
    let udp = matches!(cipher.map(|c| &c.backend), Some(CipherBackend::Udp { .. }));
    let mut ok = true;
    let port = match r.and_then(|r| r.port.as_ref()) {
        None => 500,
        Some(v) => cx.port("ike.port", v).unwrap_or_else(|| {
            ok = false;
            500
        }),
    };
    // The dataplane's port is the NAT-T port unless the file says otherwise.
    let mut bind_ports: Vec<u16> = bind.iter().map(|b| b.port()).collect();
    bind_ports.dedup();
    let nat_t_default = match bind_ports.as_slice() {
        [p] => *p,
        _ => 4500,
    };
    let port_nat_t = match r.and_then(|r| r.port_nat_t.as_ref()) {
        None => nat_t_default,
        Some(v) => cx.port("ike.port_nat_t", v).unwrap_or_else(|| {
            ok = false;
            nat_t_default
        }),
    };
    if ok && port == port_nat_t {
        let (key, loc) = match r.and_then(|r| r.port.as_ref()) {
            Some(v) => ("ike.port", Some(v.referenced)),
            None => (
                "ike.port_nat_t",
                r.and_then(|r| r.port_nat_t.as_ref()).map(|v| v.referenced),
            ),
        };
        cx.errs.push(
            key,
            loc,
            format!("the IKE port and the NAT-T port are both {port}"),
            "use two ports: 500 for IKE and 4500 for NAT-T (RFC 7296 2.23)",
        );
        ok = false;
    }
    let cookie_threshold = match r.and_then(|r| r.cookie_threshold.as_ref()) {
        None => 1000,
        Some(v) => match cx.uint(
            "ike.cookie_threshold",
            v,
            0..=COOKIE_THRESHOLD_MAX,
            "half-open IKE SAs before cookies are demanded (0 = always)",
        ) {
            Some(n) => n as usize,
            None => {
                ok = false;
                1000
            }
        },
    };
    let setup_rate = match r.and_then(|r| r.setup_rate.as_ref()) {
        None => 0,
        Some(v) => cx
            .uint(
                "ike.setup_rate",
                v,
                0..=1_000_000,
                "new IKE SAs per second a client starts at most (0 = no limit)",
            )
            .unwrap_or_else(|| {
                ok = false;
                0
            }),
    };
    let setup_window = match r.and_then(|r| r.setup_window.as_ref()) {
        None => SETUP_WINDOW_DEFAULT,
        Some(v) => match cx.uint(
            "ike.setup_window",
            v,
            1..=SETUP_WINDOW_MAX,
            "IKE SAs a client sets up at once at most",
        ) {
            Some(n) => n as usize,
            None => {
                ok = false;
                SETUP_WINDOW_DEFAULT
            }
        },
    };
    let mut listen: Vec<IpAddr> = Vec::new();
    let mut listen_items: Vec<(String, Location)> = Vec::new();
    match r.and_then(|r| r.listen.as_ref()) {
        Some(m) => {
            let list = items("ike.listen", m);
            if list.is_empty() {
                cx.err(
                    "ike.listen",
                    m.referenced,
                    "no address to listen on",
                    "list at least one address, or remove the key to use the cipher.bind addresses",
                );
                ok = false;
            }
            for (p, s, loc) in list {
                match s.parse::<IpAddr>() {
                    Ok(ip) if listen.contains(&ip) => {
                        cx.err(
                            &p,
                            loc,
                            format!("{ip} is listed twice"),
                            "remove the duplicate",
                        );
                        ok = false;
                    }
                    Ok(ip) if ip.is_multicast() => {
                        cx.err(
                            &p,
                            loc,
                            format!("{ip} is a multicast address"),
                            "give a local unicast address, or 0.0.0.0 / :: for any",
                        );
                        ok = false;
                    }
                    Ok(ip) => {
                        listen.push(ip);
                        listen_items.push((p, loc));
                    }
                    Err(_) => {
                        let fix = if addr_port(&s, 0).is_ok_and(|a| a.port() != 0) {
                            "give the address alone: the ports are ike.port and ike.port_nat_t"
                        } else {
                            "write an IP address, e.g. 192.0.2.1 or 2001:db8::1"
                        };
                        cx.err(&p, loc, format!("`{s}` is not an IP address"), fix);
                        ok = false;
                    }
                }
            }
        }
        None => {
            for b in bind {
                if !listen.contains(&b.ip()) {
                    listen.push(b.ip());
                }
            }
            if have_conns && cipher.is_some() && listen.is_empty() {
                cx.errs.push(
                    "ike.listen",
                    raw.map(|r| r.referenced),
                    "no address for IKE: the afpacket cipher backend binds none to take it from",
                    "add `ike: { listen: [IP] }` with the local addresses IKE answers on",
                );
                ok = false;
            }
        }
    }
    // With the udp backend the dataplane owns the NAT-T port on its bound addresses: IKE
    // arriving there carries the non-ESP marker and is handed to the control plane
    // (RFC 3948 2.2), and ESP-in-UDP for SAs negotiated there must reach the dataplane.
    if udp && ok && have_conns {
        for (i, ip) in listen.iter().enumerate() {
            let covering: Vec<&SocketAddr> = bind
                .iter()
                .filter(|b| covers(b.ip(), *ip) || covers(*ip, b.ip()))
                .collect();
            let (p, loc) = listen_items
                .get(i)
                .map_or(("ike.listen".to_string(), None), |(p, l)| {
                    (p.clone(), Some(*l))
                });
            if covering.is_empty() {
                cx.errs.push(
                    p,
                    loc,
                    format!("the udp dataplane does not listen on {ip}: ESP-in-UDP for SAs negotiated there would not reach it"),
                    format!(
                        "add {} to cipher.bind, or remove {ip} from ike.listen",
                        SocketAddr::new(*ip, port_nat_t)
                    ),
                );
                ok = false;
            } else if let Some(b) = covering.iter().find(|b| b.port() != port_nat_t) {
                let loc = r
                    .and_then(|r| r.port_nat_t.as_ref())
                    .map(|v| v.referenced)
                    .or(loc);
                cx.errs.push(
                    "ike.port_nat_t",
                    loc,
                    format!(
                        "the udp dataplane owns {b} and hands IKE arriving there to the control plane, but ike.port_nat_t is {port_nat_t}"
                    ),
                    format!(
                        "set `port_nat_t: {}`, or bind the dataplane to port {port_nat_t}",
                        b.port()
                    ),
                );
                ok = false;
                break;
            }
        }
    }
    let conf = IkeListenConf {
        listen,
        port,
        port_nat_t,
        cookie_threshold,
        setup_rate,
        setup_window,
    };
    (conf, ok)
}
