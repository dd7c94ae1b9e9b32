//! Tunnels and their traffic selectors: which inner packets go into which outbound SA,
//! and which inner packets an inbound SA may deliver (RFC 4301 5.1/5.2).

use crate::pages::{mix64, HashEntry, HashPages};
use crate::sa::OutboundSa;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

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

/// The key of one remote selector: the prefix's address left-aligned in 128 bits (an IPv4
/// address in the top 32), its length and its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyKey {
    hi: u64,
    lo: u64,
    len: u8,
    v6: bool,
}

impl PolicyKey {
    /// The key of the prefix of length `len` that contains `a`.
    #[inline]
    fn of(a: IpAddr, len: u8) -> PolicyKey {
        let (bits, v6) = match a {
            IpAddr::V4(v4) => ((u32::from(v4) as u128) << 96, false),
            IpAddr::V6(v6) => (u128::from(v6), true),
        };
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len as u32)
        };
        let bits = bits & mask;
        PolicyKey {
            hi: (bits >> 64) as u64,
            lo: bits as u64,
            len,
            v6,
        }
    }

    fn of_prefix(p: &Prefix) -> PolicyKey {
        PolicyKey::of(p.addr(), p.prefix_len())
    }
}

/// What the packet path needs of the first tunnel of an entry, copied into the entry by
/// the writer (`PolicyTable::set_hint`) so the common lookup reads no other page.
#[derive(Clone, Debug)]
pub struct Hint {
    /// The tunnel's first local selector.
    pub local: Prefix,
    /// Whether it is the only one (a miss on it is a miss for the tunnel).
    pub single: bool,
    pub outbound: Option<Arc<OutboundSa>>,
}

/// One bucket: the tunnels whose remote selectors include this exact prefix, in id order
/// (the first inline, since there is normally one).
#[derive(Clone, Debug, Default)]
pub struct PolicyEntry {
    key: Option<PolicyKey>,
    first: TunnelId,
    rest: Option<Arc<[TunnelId]>>,
    hint: Option<Hint>,
}

/// What a policy lookup found.
pub enum Found<'a> {
    /// The outbound SA (or its absence) of the first tunnel, from the entry's hint.
    Outbound(Option<&'a OutboundSa>),
    /// A tunnel the caller's check accepted.
    Tunnel(TunnelId),
}

impl PolicyEntry {
    #[inline]
    fn ids(&self) -> impl Iterator<Item = TunnelId> + '_ {
        std::iter::once(self.first).chain(self.rest.iter().flat_map(|r| r.iter().copied()))
    }

    fn with_ids(key: PolicyKey, ids: &[TunnelId]) -> PolicyEntry {
        PolicyEntry {
            key: Some(key),
            first: ids[0],
            rest: (ids.len() > 1).then(|| ids[1..].into()),
            hint: None,
        }
    }
}

impl HashEntry for PolicyEntry {
    type Key = PolicyKey;
    #[inline]
    fn key(&self) -> Option<PolicyKey> {
        self.key
    }
    #[inline]
    fn hash(k: &PolicyKey) -> u64 {
        // One round: configuration chooses the keys, not peers.
        mix64(k.hi ^ k.lo.rotate_left(29) ^ ((k.len as u64) << 1 | k.v6 as u64))
    }
}

/// The prefix lengths (0..=128) present for one address family, as bits.
#[derive(Clone, Copy, Debug, Default)]
struct Lengths([u64; 3]);

impl Lengths {
    fn set(&mut self, len: u8, on: bool) {
        let (w, b) = (len as usize / 64, len as u32 % 64);
        if on {
            self.0[w] |= 1 << b;
        } else {
            self.0[w] &= !(1 << b);
        }
    }

    /// Present lengths, longest first.
    #[inline]
    fn longest_first(self) -> impl Iterator<Item = u8> {
        let mut words = self.0;
        let mut w = words.len();
        std::iter::from_fn(move || loop {
            if w == 0 {
                return None;
            }
            let word = &mut words[w - 1];
            if *word == 0 {
                w -= 1;
                continue;
            }
            let b = 63 - word.leading_zeros();
            *word &= !(1u64 << b);
            return Some(((w - 1) * 64) as u8 + b as u8);
        })
    }
}

/// Outbound policy lookup (RFC 4301 5.1), kept up to date one tunnel at a time.
///
/// Every remote selector is a key of one persistent hash table (a host route is the
/// prefix of full length, the common case for a gateway with virtual IPs). A lookup probes
/// the table once per prefix length in use for the destination's family, longest first,
/// so it costs one probe with host routes alone and never depends on the number of
/// tunnels. Adding or removing a tunnel touches the page of each of its selectors. Ties
/// between tunnels with the same remote prefix go to the lower tunnel id; the caller takes
/// the first candidate whose local selectors also contain the source.
#[derive(Clone)]
pub struct PolicyTable {
    map: HashPages<PolicyEntry>,
    /// Present lengths: IPv4, IPv6.
    lengths: [Lengths; 2],
    /// Keys per length, IPv4 (0..=32) then IPv6 (0..=128).
    keys_per_len: [u32; 33 + 129],
}

impl Default for PolicyTable {
    fn default() -> Self {
        PolicyTable::with_max(0)
    }
}

impl PolicyTable {
    /// A table sized for `tunnels` remote selectors before it first grows.
    pub fn with_max(tunnels: usize) -> PolicyTable {
        PolicyTable {
            map: if tunnels == 0 {
                HashPages::default()
            } else {
                HashPages::with_max(tunnels)
            },
            lengths: [Lengths::default(); 2],
            keys_per_len: [0; 33 + 129],
        }
    }

    /// A table holding `tunnels` (built one by one, as the writer does).
    pub fn build<'a>(tunnels: impl Iterator<Item = &'a Tunnel>) -> PolicyTable {
        let mut t = PolicyTable::default();
        for tunnel in tunnels {
            t.insert(tunnel);
        }
        t
    }

    fn count(&mut self, k: &PolicyKey, add: bool) {
        let i = if k.v6 {
            33 + k.len as usize
        } else {
            k.len as usize
        };
        let n = &mut self.keys_per_len[i];
        if add {
            *n += 1;
        } else {
            *n -= 1;
        }
        let present = *n > 0;
        self.lengths[k.v6 as usize].set(k.len, present);
    }

    /// Adds the remote selectors of `tunnel` (call `remove` with the old version first
    /// when a tunnel changes).
    pub fn insert(&mut self, tunnel: &Tunnel) {
        for p in &tunnel.remote_ts {
            let key = PolicyKey::of_prefix(p);
            match self.map.get(&key) {
                Some(e) => {
                    let mut ids: Vec<TunnelId> = e.ids().collect();
                    if let Err(at) = ids.binary_search(&tunnel.id) {
                        ids.insert(at, tunnel.id);
                        self.map.insert(PolicyEntry::with_ids(key, &ids));
                    }
                }
                None => {
                    self.map.insert(PolicyEntry::with_ids(key, &[tunnel.id]));
                    self.count(&key, true);
                }
            }
        }
    }

    /// Removes the remote selectors of `tunnel`.
    pub fn remove(&mut self, tunnel: &Tunnel) {
        for p in &tunnel.remote_ts {
            let key = PolicyKey::of_prefix(p);
            let Some(e) = self.map.get(&key) else {
                continue;
            };
            let ids: Vec<TunnelId> = e.ids().filter(|&id| id != tunnel.id).collect();
            if ids.is_empty() {
                self.map.remove(&key);
                self.count(&key, false);
            } else if ids.len() != e.ids().count() {
                self.map.insert(PolicyEntry::with_ids(key, &ids));
            }
        }
    }

    /// The first tunnel of the entry for `prefix`, if there is one.
    pub fn first_of(&self, prefix: &Prefix) -> Option<TunnelId> {
        self.map.get(&PolicyKey::of_prefix(prefix)).map(|e| e.first)
    }

    /// Sets the hint of the entry for `prefix` (the writer calls it after every change of
    /// the entry's first tunnel or of that tunnel's outbound SA).
    pub fn set_hint(&mut self, prefix: &Prefix, hint: Option<Hint>) {
        let key = PolicyKey::of_prefix(prefix);
        if let Some(mut e) = self.map.get(&key).cloned() {
            e.hint = hint;
            self.map.insert(e);
        }
    }

    /// The outbound SA for an inner packet `src -> dst`: the first candidate (in the
    /// order of `candidates`) whose local selectors contain `src`, answered from the
    /// entry's hint where it can, else from `accept`. No allocation.
    #[inline]
    pub fn lookup(
        &self,
        src: IpAddr,
        dst: IpAddr,
        mut accept: impl FnMut(TunnelId) -> bool,
    ) -> Option<Found<'_>> {
        let v6 = dst.is_ipv6();
        let words = self.lengths[v6 as usize].0;
        let mut len: i32 = if v6 { 128 } else { 32 };
        while len >= 0 {
            let (w, b) = (len as usize / 64, len as u32 % 64);
            // Skip to the next present length at or below `len`.
            let below = if b == 63 {
                u64::MAX
            } else {
                (1u64 << (b + 1)) - 1
            };
            let bits = words[w] & below;
            if bits == 0 {
                len = (w as i32) * 64 - 1;
                continue;
            }
            let l = (w as u32 * 64 + 63 - bits.leading_zeros()) as u8;
            if let Some(e) = self.map.get(&PolicyKey::of(dst, l)) {
                match &e.hint {
                    Some(h) if h.local.contains(src) => {
                        return Some(Found::Outbound(h.outbound.as_deref()))
                    }
                    Some(h) if h.single => {}
                    _ => {
                        if accept(e.first) {
                            return Some(Found::Tunnel(e.first));
                        }
                    }
                }
                if let Some(rest) = &e.rest {
                    for &id in rest.iter() {
                        if accept(id) {
                            return Some(Found::Tunnel(id));
                        }
                    }
                }
            }
            len = l as i32 - 1;
        }
        None
    }

    /// Candidate tunnels for an inner destination, most specific prefix first, lower id
    /// first among equals; the caller checks the source against the tunnel's local
    /// selectors. No allocation.
    #[inline]
    pub fn candidates(&self, dst: IpAddr) -> impl Iterator<Item = TunnelId> + '_ {
        self.lengths[dst.is_ipv6() as usize]
            .longest_first()
            .filter_map(move |len| self.map.get(&PolicyKey::of(dst, len)))
            .flat_map(PolicyEntry::ids)
    }

    /// Distinct remote prefixes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Pages allocated in this version.
    pub fn pages(&self) -> usize {
        self.map.pages()
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
