//! Tunnels and their traffic selectors: which inner packets go into which outbound SA,
//! and which inner packets an inbound SA may deliver (RFC 4301 5.1/5.2).

mod ids;

use crate::pages::{mix64, HashEntry, HashPages};
use crate::sa::OutboundSa;
use ids::Ids;

/// Buckets per page of the policy tables. A tunnel's installation copies the page of
/// its bucket, and each entry's hint holds the outbound SA of its first tunnel, whose
/// count that copy raises: with 64-bucket pages a third of the gateway's publication
/// cost at 100,000 tunnels was those counts in cold memory.
const POLICY_PAGE: usize = 16;
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
    ids: Ids,
    hint: Option<Hint>,
}

/// A remote selector and a local selector of the same tunnels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceKey {
    dst: PolicyKey,
    src: PolicyKey,
}

/// The tunnels that have this remote and this local selector, in id order: how the
/// packet path tells apart the many tunnels of one remote prefix by the source (a
/// client's tunnels to one gateway subnet, one virtual IP each) without walking them.
#[derive(Clone, Debug, Default)]
pub struct SourceEntry {
    key: Option<SourceKey>,
    ids: Ids,
}

impl HashEntry for SourceEntry {
    type Key = SourceKey;
    #[inline]
    fn key(&self) -> Option<SourceKey> {
        self.key
    }
    #[inline]
    fn hash(k: &SourceKey) -> u64 {
        mix64(PolicyEntry::hash(&k.dst) ^ PolicyEntry::hash(&k.src).rotate_left(17))
    }
}

/// What a policy lookup found.
pub enum Found<'a> {
    /// The outbound SA (or its absence) of the first tunnel, from the entry's hint.
    Outbound(Option<&'a OutboundSa>),
    /// The first tunnel whose local selectors contain the source.
    Tunnel(TunnelId),
}

impl PolicyEntry {
    #[inline]
    fn tunnels(&self) -> impl Iterator<Item = TunnelId> + '_ {
        self.ids.iter()
    }
}

/// An entry holding tunnel ids under a key: the policy buckets and the source index.
trait IdsEntry: HashEntry {
    fn ids(&self) -> &Ids;
    /// A fresh entry (a bucket's hint is set again by the writer after every change).
    fn of(key: Self::Key, ids: Ids) -> Self;
}

impl IdsEntry for PolicyEntry {
    fn ids(&self) -> &Ids {
        &self.ids
    }
    fn of(key: PolicyKey, ids: Ids) -> Self {
        PolicyEntry {
            key: Some(key),
            ids,
            hint: None,
        }
    }
}

impl IdsEntry for SourceEntry {
    fn ids(&self) -> &Ids {
        &self.ids
    }
    fn of(key: SourceKey, ids: Ids) -> Self {
        SourceEntry {
            key: Some(key),
            ids,
        }
    }
}

/// Adds `id` under `key`. `None` if it was there already, else the ids the key held
/// before (`Some(None)`: the key is new).
fn add_id<E: IdsEntry>(
    map: &mut HashPages<E, POLICY_PAGE>,
    key: E::Key,
    id: TunnelId,
) -> Option<Option<Ids>> {
    let before = map.get(&key).map(|e| e.ids().clone());
    let ids = match &before {
        Some(b) => b.with(id)?,
        None => Ids::one(id),
    };
    map.insert(E::of(key, ids));
    Some(before)
}

/// Takes `id` from under `key`. `None` if it was not there, else whether the key is
/// gone with it.
fn remove_id<E: IdsEntry>(
    map: &mut HashPages<E, POLICY_PAGE>,
    key: E::Key,
    id: TunnelId,
) -> Option<bool> {
    match map.get(&key)?.ids().without(id)? {
        Some(ids) => {
            map.insert(E::of(key, ids));
            Some(false)
        }
        None => {
            map.remove(&key);
            Some(true)
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

/// Counts a key of length `k.len` in or out of `per_len`, and keeps `lengths` to the
/// lengths with at least one key.
fn count_length(
    per_len: &mut [u32; 33 + 129],
    lengths: &mut [Lengths; 2],
    k: &PolicyKey,
    add: bool,
) {
    let i = if k.v6 {
        33 + k.len as usize
    } else {
        k.len as usize
    };
    let n = &mut per_len[i];
    if add {
        *n += 1;
    } else {
        *n = n.saturating_sub(1);
    }
    let present = *n > 0;
    lengths[k.v6 as usize].set(k.len, present);
}

/// Outbound policy lookup (RFC 4301 5.1), kept up to date one tunnel at a time.
///
/// Every remote selector is a key of one persistent hash table (a host route is the
/// prefix of full length, the common case for a gateway with virtual IPs). A lookup probes
/// the table once per prefix length in use for the destination's family, longest first,
/// so it costs one probe with host routes alone and never depends on the number of
/// tunnels. Adding or removing a tunnel touches the page of each of its selectors. Ties
/// between tunnels with the same remote prefix go to the lower tunnel id among those
/// whose local selectors contain the source: the entry's hint answers for its first
/// tunnel, and a second table keyed by (remote selector, local selector) for the others,
/// probed once per local prefix length in use.
#[derive(Clone)]
pub struct PolicyTable {
    map: HashPages<PolicyEntry, POLICY_PAGE>,
    /// Present lengths: IPv4, IPv6.
    lengths: [Lengths; 2],
    /// Keys per length, IPv4 (0..=32) then IPv6 (0..=128).
    keys_per_len: [u32; 33 + 129],
    /// Every (remote, local) selector pair of every tunnel.
    by_src: HashPages<SourceEntry, POLICY_PAGE>,
    /// Local prefix lengths present in `by_src`: IPv4, IPv6.
    src_lengths: [Lengths; 2],
    /// `by_src` keys per local prefix length.
    src_keys_per_len: [u32; 33 + 129],
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
            // Grown on demand: most tables (a gateway's) never need it.
            by_src: HashPages::default(),
            src_lengths: [Lengths::default(); 2],
            src_keys_per_len: [0; 33 + 129],
        }
    }

    /// A table holding `tunnels` (built one by one, as the writer does).
    pub fn build<'a>(tunnels: impl Iterator<Item = &'a Tunnel>) -> PolicyTable {
        let mut t = PolicyTable::default();
        let mut seen: Vec<&Tunnel> = Vec::new();
        for tunnel in tunnels {
            t.insert(tunnel, |id| seen.iter().find(|s| s.id == id).copied());
            seen.push(tunnel);
        }
        t
    }

    fn count(&mut self, k: &PolicyKey, add: bool) {
        count_length(&mut self.keys_per_len, &mut self.lengths, k, add);
    }

    /// Adds `id` under (`dst`, each local selector).
    fn index_sources(&mut self, dst: PolicyKey, local_ts: &[Prefix], id: TunnelId) {
        for l in local_ts {
            let key = SourceKey {
                dst,
                src: PolicyKey::of_prefix(l),
            };
            if let Some(None) = add_id(&mut self.by_src, key, id) {
                count_length(
                    &mut self.src_keys_per_len,
                    &mut self.src_lengths,
                    &key.src,
                    true,
                );
            }
        }
    }

    /// Takes `id` out from under (`dst`, each local selector).
    fn unindex_sources(&mut self, dst: PolicyKey, local_ts: &[Prefix], id: TunnelId) {
        for l in local_ts {
            let key = SourceKey {
                dst,
                src: PolicyKey::of_prefix(l),
            };
            if remove_id(&mut self.by_src, key, id) == Some(true) {
                count_length(
                    &mut self.src_keys_per_len,
                    &mut self.src_lengths,
                    &key.src,
                    false,
                );
            }
        }
    }

    /// The lowest tunnel of bucket `dst` with a local selector that contains `src`.
    #[inline]
    fn by_source(&self, dst: PolicyKey, src: IpAddr) -> Option<TunnelId> {
        let mut best: Option<TunnelId> = None;
        for len in self.src_lengths[src.is_ipv6() as usize].longest_first() {
            let key = SourceKey {
                dst,
                src: PolicyKey::of(src, len),
            };
            if let Some(e) = self.by_src.get(&key) {
                best = Some(best.map_or(e.ids.first, |b| b.min(e.ids.first)));
            }
        }
        best
    }

    /// Adds the remote selectors of `tunnel` (call `remove` with the old version first
    /// when a tunnel changes).
    ///
    /// A tunnel enters the source index only where the entry's hint cannot answer for it:
    /// in an entry it shares with other tunnels, or with more than one local selector.
    /// `others` gives the selectors of the tunnels already in the table (the one an entry
    /// held alone is indexed when a second one joins it).
    pub fn insert<'t>(&mut self, tunnel: &Tunnel, others: impl Fn(TunnelId) -> Option<&'t Tunnel>) {
        for p in &tunnel.remote_ts {
            let key = PolicyKey::of_prefix(p);
            let Some(before) = add_id(&mut self.map, key, tunnel.id) else {
                continue;
            };
            // A bucket that held a tunnel before holds several now.
            let several = before.is_some();
            if !several {
                self.count(&key, true);
            }
            if several || tunnel.local_ts.len() > 1 {
                self.index_sources(key, &tunnel.local_ts, tunnel.id);
            }
            // The entry has just become shared: its former only tunnel is told apart by
            // the source from now on too.
            if let Some(alone) = before.filter(|b| !b.several()) {
                if let Some(t) = others(alone.first) {
                    self.index_sources(key, &t.local_ts, alone.first);
                }
            }
        }
    }

    /// Removes the remote selectors of `tunnel`.
    pub fn remove(&mut self, tunnel: &Tunnel) {
        for p in &tunnel.remote_ts {
            let key = PolicyKey::of_prefix(p);
            let Some(gone) = remove_id(&mut self.map, key, tunnel.id) else {
                continue;
            };
            if gone {
                self.count(&key, false);
            }
            self.unindex_sources(key, &tunnel.local_ts, tunnel.id);
        }
    }

    /// The first tunnel of the entry for `prefix`, if there is one.
    pub fn first_of(&self, prefix: &Prefix) -> Option<TunnelId> {
        self.map
            .get(&PolicyKey::of_prefix(prefix))
            .map(|e| e.ids.first)
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
    /// entry's hint where it can, else from the source index. No allocation, and no walk
    /// over the tunnels of a bucket however many share it.
    #[inline]
    pub fn lookup(&self, src: IpAddr, dst: IpAddr) -> Option<Found<'_>> {
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
            let key = PolicyKey::of(dst, l);
            if let Some(e) = self.map.get(&key) {
                match &e.hint {
                    Some(h) if h.local.contains(src) => {
                        return Some(Found::Outbound(h.outbound.as_deref()))
                    }
                    // The only tunnel, with the only local selector: a miss.
                    Some(h) if h.single && !e.ids.several() => {}
                    _ => {
                        if let Some(id) = self.by_source(key, src) {
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
            .flat_map(PolicyEntry::tunnels)
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

    #[test]
    fn tunnels_sharing_a_remote_prefix_are_found_by_source() {
        // A client's shape: one remote selector, a virtual IP each. The first tunnel was
        // alone in the entry (not in the source index) until the second came.
        let vip = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let tunnels: Vec<Tunnel> = (0..2000)
            .map(|i| Tunnel {
                id: i,
                local_ts: vec![Prefix::host(vip(i))],
                remote_ts: vec!["172.16.0.0/24".parse().unwrap()],
            })
            .collect();
        let mut pt = PolicyTable::build(tunnels.iter());
        let dst: IpAddr = "172.16.0.5".parse().unwrap();
        let found = |pt: &PolicyTable, i: u32| match pt.lookup(vip(i), dst) {
            Some(Found::Tunnel(id)) => Some(id),
            _ => None,
        };
        for i in [0, 1, 2, 999, 1999] {
            assert_eq!(found(&pt, i), Some(i));
        }
        assert_eq!(found(&pt, 5000), None);
        // Down to one tunnel again (the last one): still found, the others not.
        for t in &tunnels[..1999] {
            pt.remove(t);
        }
        assert_eq!(found(&pt, 1999), Some(1999));
        assert_eq!(found(&pt, 0), None);
        pt.remove(&tunnels[1999]);
        assert!(pt.is_empty());
        assert_eq!(found(&pt, 1999), None);
    }
}
