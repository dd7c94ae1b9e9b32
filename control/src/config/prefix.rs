//! Address prefixes and families, as the traffic selectors, pools and client address
//! blocks write them.

use std::net::{IpAddr, Ipv4Addr};

/// The IPv4 form of an IPv4-mapped IPv6 prefix (`::ffff:10.1.0.0/120` is 10.1.0.0/24).
pub(super) fn mapped_v4(addr: IpAddr, len: u8) -> Option<(std::net::Ipv4Addr, u8)> {
    match addr {
        IpAddr::V6(a) if len >= 96 => a.to_ipv4_mapped().map(|v4| (v4, len - 96)),
        _ => None,
    }
}

/// Local and remote selectors with no address family in common: no packet matches both,
/// so the tunnel would carry nothing. Families as (IPv4, IPv6).
pub(super) fn disjoint_families(local: (bool, bool), remote: (bool, bool)) -> Option<String> {
    let fam = |f: (bool, bool)| if f.0 { "IPv4" } else { "IPv6" };
    let meet = (local.0 && remote.0) || (local.1 && remote.1);
    let known = local != (false, false) && remote != (false, false);
    (known && !meet).then(|| {
        format!(
            "the local selectors are {} only and the remote ones {} only: no packet matches both",
            fam(local),
            fam(remote)
        )
    })
}

pub(super) const FAMILY_FIX: &str =
    "give both sides a prefix of one family: IPv4 packets go between \
     IPv4 prefixes, IPv6 packets between IPv6 prefixes";

/// The prefix length after the `/` of an address prefix for `ip`: 0 to 32 for IPv4, 0 to
/// 128 for IPv6; else the message and the fix.
pub(super) fn prefix_len(l: &str, ip: IpAddr) -> Result<u8, (String, String)> {
    let bits: u8 = if ip.is_ipv4() { 32 } else { 128 };
    l.trim().parse().ok().filter(|n| *n <= bits).ok_or_else(|| {
        (
            format!("`{l}` is not a prefix length"),
            format!("give 0 to {bits}"),
        )
    })
}

/// The IPv4 forms of two IPv4-mapped IPv6 addresses (a range's ends).
pub(super) fn mapped(a: IpAddr, b: IpAddr) -> Option<(Ipv4Addr, Ipv4Addr)> {
    match (a, b) {
        (IpAddr::V6(a), IpAddr::V6(b)) => Some((a.to_ipv4_mapped()?, b.to_ipv4_mapped()?)),
        _ => None,
    }
}
