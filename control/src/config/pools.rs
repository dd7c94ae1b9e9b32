//! `pools:`: the address pools a gateway leases virtual IPs from (RFC 7296 3.15), with
//! their DNS servers.

use super::addr::{ip_of, u128_of};
use super::name::Names;
use super::prefix::{mapped, prefix_len};
use super::value::{items, Ctx, Many, S};
use crate::ike::conn::PoolConf;
use serde_saphyr::Spanned;
use std::net::IpAddr;

/// Largest address pool (the IKE engine keeps one bit of lease state per address).
pub const POOL_SIZE_MAX: u64 = 1 << 20;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    pub(super) name: Option<S>,
    pub(super) addrs: Option<S>,
    pub(super) dns: Option<Many>,
}

/// A pool's `addrs`: a prefix (IPv4 without the network and broadcast addresses, IPv6
/// without the Subnet-Router anycast address, RFC 4291 2.6.1), a range `A-B`, or one
/// address. Returns the first address and the count; the fix on error.
fn pool_range(s: &str) -> Result<(IpAddr, u64), (String, String)> {
    let s = s.trim();
    let bad_addr = |a: &str| {
        (
            format!("`{a}` is not an IP address"),
            "write a prefix (10.3.0.0/24), a range (10.3.0.10-10.3.0.200) or one address"
                .to_string(),
        )
    };
    let too_big = |n: String| {
        (
            format!("the pool holds {n} addresses, more than {POOL_SIZE_MAX}"),
            "use a longer prefix (at most 2^20 addresses: /12 for IPv4, /108 for IPv6) or a range"
                .to_string(),
        )
    };
    let (first, last) = if let Some((a, l)) = s.split_once('/') {
        let ip: IpAddr = a.trim().parse().map_err(|_| bad_addr(a))?;
        let bits: u32 = if ip.is_ipv4() { 32 } else { 128 };
        let len = u32::from(prefix_len(l, ip)?);
        let host_bits = bits - len;
        if u64::from(host_bits) > 20 {
            return Err(too_big(format!("2^{host_bits}")));
        }
        let size = 1u128 << host_bits;
        let base = u128_of(ip);
        let net = base & !(size - 1);
        if net != base {
            let net_ip = ip_of(ip.is_ipv6(), net);
            return Err((
                format!("{ip}/{len} has host bits set"),
                format!("write the network address: {net_ip}/{len}, or a range"),
            ));
        }
        // RFC 3021: a /31 has no network or broadcast address; a /32 is one host.
        let (lo, hi) = match (ip.is_ipv4(), host_bits) {
            (true, 2..) => (net + 1, net + size - 2),
            (false, 2..) => (net + 1, net + size - 1),
            _ => (net, net + size - 1),
        };
        (ip_of(ip.is_ipv6(), lo), ip_of(ip.is_ipv6(), hi))
    } else if let Some((a, b)) = s.split_once('-') {
        let a: IpAddr = a.trim().parse().map_err(|_| bad_addr(a))?;
        let b: IpAddr = b.trim().parse().map_err(|_| bad_addr(b))?;
        if a.is_ipv4() != b.is_ipv4() {
            return Err((
                format!("{a} and {b} are of different address families"),
                "give both ends of the range in one family".to_string(),
            ));
        }
        if u128_of(a) > u128_of(b) {
            return Err((
                format!("the range {a}-{b} is reversed"),
                format!("write {b}-{a}"),
            ));
        }
        (a, b)
    } else {
        let ip: IpAddr = s.parse().map_err(|_| bad_addr(s))?;
        (ip, ip)
    };
    if let Some((a, b)) = mapped(first, last) {
        return Err((
            format!("{first}-{last} are IPv4-mapped IPv6 addresses; a client asking for IPv4 gets an IPv4 address"),
            format!("write the IPv4 range: {a}-{b}"),
        ));
    }
    let size = u128_of(last) - u128_of(first) + 1;
    if size > u128::from(POOL_SIZE_MAX) {
        return Err(too_big(size.to_string()));
    }
    if first.is_unspecified() || first.is_multicast() || last.is_multicast() {
        return Err((
            format!("{first} cannot be handed out as an address"),
            "use unicast addresses, e.g. 10.3.0.0/24".to_string(),
        ));
    }
    Ok((first, size as u64))
}

pub(super) fn validate(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<Vec<Spanned<RawPool>>>>,
) -> Vec<Option<PoolConf>> {
    let Some(list) = raw else { return Vec::new() };
    let mut names = Names::new("pool", "pools");
    // (family, first, last, key path) of every valid pool, for the overlap check.
    let mut ranges: Vec<(bool, u128, u128, String)> = Vec::new();
    let mut out = Vec::new();
    for (i, item) in list.value.iter().enumerate() {
        let r = &item.value;
        let at = |k: &str| format!("pools[{i}].{k}");
        let mut ok = true;
        let name = names.check(
            cx,
            i,
            item.referenced,
            r.name.as_ref(),
            "add `name: NAME`; connections refer to their pools by name",
        );
        let range = match &r.addrs {
            None => {
                cx.missing(
                    &at("addrs"),
                    Some(item.referenced),
                    "add `addrs: 10.3.0.0/24` (a prefix) or `addrs: 10.3.0.10-10.3.0.200` (a range)",
                );
                None
            }
            Some(v) => match pool_range(&v.value) {
                Ok((start, size)) => {
                    let (lo, hi) = (u128_of(start), u128_of(start) + u128::from(size) - 1);
                    let v6 = start.is_ipv6();
                    if let Some((.., other)) = ranges
                        .iter()
                        .find(|(f, a, b, _)| *f == v6 && lo <= *b && *a <= hi)
                    {
                        cx.err(
                            &at("addrs"),
                            v.referenced,
                            format!("overlaps {other}"),
                            "one address must not be leasable from two pools: make the ranges disjoint",
                        );
                        ok = false;
                    } else {
                        ranges.push((v6, lo, hi, at("addrs")));
                    }
                    Some((start, size as u32))
                }
                Err((problem, fix)) => {
                    cx.err(&at("addrs"), v.referenced, problem, fix);
                    None
                }
            },
        };
        let mut dns = Vec::new();
        if let Some(m) = &r.dns {
            for (p, s, loc) in items(&at("dns"), m) {
                match s.parse::<IpAddr>() {
                    Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() => dns.push(ip),
                    _ => {
                        cx.err(
                            &p,
                            loc,
                            format!("`{s}` is not a DNS server address"),
                            "write the server's unicast IP address, e.g. 10.3.0.1",
                        );
                        ok = false;
                    }
                }
            }
        }
        out.push(match (ok, name, range) {
            (true, Some(name), Some((start, size))) => Some(PoolConf {
                name,
                start,
                size,
                dns,
            }),
            _ => None,
        });
    }
    out
}
