//! Tunnels and their traffic selectors: which inner packets go into which outbound SA,
//! and which inner packets an inbound SA may deliver (RFC 4301 5.1/5.2).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Index of a tunnel (a pair of selector lists plus its outbound SA).
pub type TunnelId = u32;

/// An address prefix (`10.1.0.0/24`, `2001:db8::/64`, `0.0.0.0/0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// Why a prefix was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixError {
    BadAddress(String),
    BadLength(String),
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::BadAddress(s) => write!(f, "`{s}` is not an IP address"),
            PrefixError::BadLength(s) => {
                write!(
                    f,
                    "`{s}` is not a prefix length (0-32 for IPv4, 0-128 for IPv6)"
                )
            }
        }
    }
}

impl std::error::Error for PrefixError {}

impl Prefix {
    /// A prefix; host bits of `addr` are cleared. `None` if `len` is too long.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let v = u128::from(a);
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                IpAddr::V6((v & mask).into())
            }
        };
        Some(Prefix { addr, len })
    }

    /// The single-address prefix.
    pub fn host(addr: IpAddr) -> Prefix {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Prefix { addr, len }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn is_host(&self) -> bool {
        self.len == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    /// Whether `ip` lies inside this prefix (never across address families).
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = if self.len == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.len)
                };
                u32::from(a) & mask == u32::from(p)
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = if self.len == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.len)
                };
                u128::from(a) & mask == u128::from(p)
            }
            _ => false,
        }
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| PrefixError::BadAddress(a.to_string()))?;
        let len = match l {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .map_err(|_| PrefixError::BadLength(l.to_string()))?,
            None => {
                if addr.is_ipv4() {
                    32
                } else {
                    128
                }
            }
        };
        Prefix::new(addr, len).ok_or_else(|| PrefixError::BadLength(len.to_string()))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A tunnel: local and remote traffic selectors (address prefixes; protocol and ports are
/// not yet narrowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub id: TunnelId,
    pub local_ts: Vec<Prefix>,
    pub remote_ts: Vec<Prefix>,
}

impl Tunnel {
    /// Outbound check: an inner packet from `src` to `dst` belongs to this tunnel.
    #[inline]
    pub fn matches_outbound(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.remote_ts.iter().any(|p| p.contains(dst))
            && self.local_ts.iter().any(|p| p.contains(src))
    }

    /// Inbound check (RFC 4301 5.2): a decrypted packet from `src` to `dst` may be delivered.
    #[inline]
    pub fn matches_inbound(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.remote_ts.iter().any(|p| p.contains(src))
            && self.local_ts.iter().any(|p| p.contains(dst))
    }
}

/// Outbound policy lookup, rebuilt by the writer on every tunnel change.
///
/// Host routes (a remote selector that is one address, the common case for a gateway with
/// virtual IPs) are found through an open-addressing hash; other prefixes are scanned
/// longest first. The first tunnel whose local selectors also contain the source wins.
#[derive(Debug, Default)]
pub struct PolicyTable {
    hosts: crate::spimap::AddrMap,
    /// (prefix, tunnel), longest prefix first.
    prefixes: Vec<(Prefix, TunnelId)>,
}

impl PolicyTable {
    /// Builds the lookup structure for `tunnels`.
    pub fn build<'a>(tunnels: impl Iterator<Item = &'a Tunnel>) -> PolicyTable {
        let mut hosts = Vec::new();
        let mut prefixes = Vec::new();
        for t in tunnels {
            for p in &t.remote_ts {
                if p.is_host() {
                    hosts.push((p.addr(), t.id));
                } else {
                    prefixes.push((*p, t.id));
                }
            }
        }
        // Longest prefix first; stable so configuration order breaks ties.
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.prefix_len()));
        PolicyTable {
            hosts: crate::spimap::AddrMap::build(&hosts),
            prefixes,
        }
    }

    /// Candidate tunnels for an inner destination, most specific first; the caller checks
    /// the source against the tunnel's local selectors.
    #[inline]
    pub fn candidates(&self, dst: IpAddr) -> impl Iterator<Item = TunnelId> + '_ {
        self.hosts.get(dst).into_iter().chain(
            self.prefixes
                .iter()
                .filter(move |(p, _)| p.contains(dst))
                .map(|(_, t)| *t),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_parse_and_contains() {
        let p: Prefix = "10.1.2.3/24".parse().unwrap();
        assert_eq!(p.to_string(), "10.1.2.0/24");
        assert!(p.contains("10.1.2.200".parse().unwrap()));
        assert!(!p.contains("10.1.3.1".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let v6: Prefix = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("nonsense/8".parse::<Prefix>().is_err());
        assert_eq!("10.0.0.1".parse::<Prefix>().unwrap().prefix_len(), 32);
    }

    #[test]
    fn policy_prefers_hosts_then_longest_prefix() {
        let t = |id, l: &str, r: &str| Tunnel {
            id,
            local_ts: vec![l.parse().unwrap()],
            remote_ts: vec![r.parse().unwrap()],
        };
        let tunnels = [
            t(1, "0.0.0.0/0", "10.0.0.0/8"),
            t(2, "0.0.0.0/0", "10.1.0.0/16"),
            t(3, "0.0.0.0/0", "10.1.2.3/32"),
        ];
        let pt = PolicyTable::build(tunnels.iter());
        let first = |d: &str| pt.candidates(d.parse().unwrap()).next();
        assert_eq!(first("10.1.2.3"), Some(3));
        assert_eq!(first("10.1.9.9"), Some(2));
        assert_eq!(first("10.9.9.9"), Some(1));
        assert_eq!(first("192.0.2.1"), None);
    }
}
