//! Addresses with ports, as the sections write them.

use super::value::{Ctx, S};
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

impl Ctx<'_> {
    pub(super) fn port(&mut self, path: &str, v: &S) -> Option<u16> {
        self.uint(path, v, 1..=65535, "UDP port").map(|n| n as u16)
    }

    pub(super) fn socket_addr(&mut self, path: &str, v: &S) -> Option<SocketAddr> {
        let s = v.value.trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Some(a);
        }
        let fix = if let Some(fix) = address_hint(s) {
            fix
        } else if let Ok(ip) = s.parse::<IpAddr>() {
            match ip {
                IpAddr::V4(_) => format!("add the port, e.g. {ip}:4500"),
                IpAddr::V6(_) => format!("add the port with brackets, e.g. [{ip}]:4500 (a bare IPv6 address is ambiguous)"),
            }
        } else if s.matches(':').count() > 1 && !s.starts_with('[') {
            "write an IPv6 address in brackets before the port, e.g. [2001:db8::1]:4500".to_string()
        } else {
            "write IP:PORT, e.g. 192.0.2.1:4500 or [2001:db8::1]:4500 (host names are not resolved)"
                .to_string()
        };
        self.err(
            path,
            v.referenced,
            format!("`{s}` is not an address with a port"),
            fix,
        );
        None
    }
}

/// What is wrong with an address and port that do not parse, when it is more than the
/// form: a port past 65535, or an IPv6 zone (`%eth0`), which no address here takes.
pub(super) fn address_hint(s: &str) -> Option<String> {
    if s.contains('%') {
        return Some(
            "scoped IPv6 addresses (`%eth0`) are not supported: use a global or unique-local address"
                .to_string(),
        );
    }
    let (_, port) = s.rsplit_once(':')?;
    let n: u64 = port.parse().ok()?;
    (n > 65535).then(|| format!("port {n} is out of range: ports go from 1 to 65535"))
}

/// An address with an optional port (`192.0.2.2`, `192.0.2.2:4500`, `2001:db8::2`,
/// `[2001:db8::2]:500`).
pub(super) fn addr_port(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if let Ok(ip) = inner.parse::<Ipv6Addr>() {
            return Ok(SocketAddr::new(IpAddr::V6(ip), default_port));
        }
    }
    if let Some(hint) = address_hint(s) {
        return Err(format!("`{s}` is not an address: {hint}"));
    }
    if s.chars().any(|c| c.is_ascii_alphabetic()) && !s.contains("::") {
        return Err(format!(
            "`{s}` is a host name; names are not resolved: write the IP address"
        ));
    }
    Err(format!(
        "`{s}` is not an address: write IP or IP:PORT, e.g. 192.0.2.2, 192.0.2.2:500 or [2001:db8::2]:500"
    ))
}

pub(super) fn u128_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

pub(super) fn ip_of(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    }
}

/// Whether a socket bound to `bound` receives what is sent to `addr`: the same address,
/// or the wildcard of its family.
pub(super) fn covers(bound: IpAddr, addr: IpAddr) -> bool {
    bound == addr || (bound.is_unspecified() && bound.is_ipv4() == addr.is_ipv4())
}

/// Addresses as a message lists them: `192.0.2.1, 2001:db8::1`.
pub(super) fn joined<T: Display>(addrs: impl IntoIterator<Item = T>) -> String {
    addrs
        .into_iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
