//! Virtual IP pools: addresses leased to peers that ask for one in a CP request.
//! A peer identity gets the same address back while its lease exists (a reconnect
//! before the old SA is gone reuses it, as strongSwan does).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ike::conn::PoolConf;

/// One pool's state: the free offsets and the lease per identity.
#[derive(Debug)]
struct Pool {
    conf: PoolConf,
    /// Offsets released and not leased again, the least recently released last: a
    /// lease and a release are O(1) however full the pool (a walk over the offsets for
    /// a free one cost O(size) per lease once the pool was nearly full or exhausted).
    free: VecDeque<u32>,
    /// Offsets from here to the pool's size were never leased; they go before any
    /// released one. Kept as a bound rather than in `free`, so a pool costs memory by
    /// the leases it made, not by its size (a /13 listed whole was 2 MiB).
    fresh: u32,
    by_peer: HashMap<String, (usize, u32)>,
}

/// All pools of an endpoint, by name.
#[derive(Debug, Default)]
pub struct Pools {
    pools: Vec<Pool>,
}

fn offset_addr(start: IpAddr, off: u32) -> IpAddr {
    match start {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(off))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(u128::from(off)))),
    }
}

impl Pools {
    /// Registers a pool unless one of that name exists.
    pub fn add(&mut self, conf: &PoolConf) {
        if self.pools.iter().any(|p| p.conf.name == conf.name) {
            return;
        }
        self.pools.push(Pool {
            conf: conf.clone(),
            free: VecDeque::new(),
            fresh: 0,
            by_peer: HashMap::new(),
        });
    }

    /// Leases an address of the wanted family from the first pool of `names` that
    /// has one free; returns it and the pool's DNS servers.
    pub fn lease(
        &mut self,
        names: &[String],
        peer: &str,
        v6: bool,
    ) -> Option<(IpAddr, Vec<IpAddr>)> {
        for name in names {
            let Some(p) = self
                .pools
                .iter_mut()
                .find(|p| &p.conf.name == name && p.conf.start.is_ipv6() == v6)
            else {
                continue;
            };
            if let Some((off, n)) = p.by_peer.get_mut(peer) {
                *n += 1;
                return Some((offset_addr(p.conf.start, *off as u32), p.conf.dns.clone()));
            }
            let next = if p.fresh < p.conf.size {
                p.fresh += 1;
                Some(p.fresh - 1)
            } else {
                p.free.pop_front()
            };
            if let Some(i) = next {
                p.by_peer.insert(peer.to_string(), (i as usize, 1));
                return Some((offset_addr(p.conf.start, i), p.conf.dns.clone()));
            }
        }
        None
    }

    /// Releases one reference to the peer's lease of `addr`.
    pub fn release(&mut self, peer: &str, addr: IpAddr) {
        for p in &mut self.pools {
            if let Some((off, n)) = p.by_peer.get_mut(peer) {
                if offset_addr(p.conf.start, *off as u32) != addr {
                    continue;
                }
                *n -= 1;
                if *n == 0 {
                    let off = *off as u32;
                    p.by_peer.remove(peer);
                    p.free.push_back(off);
                }
                return;
            }
        }
    }

    /// Addresses leased now, over all pools.
    pub fn leased(&self) -> usize {
        self.pools.iter().map(|p| p.by_peer.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn conf(size: u32) -> PoolConf {
        PoolConf {
            name: "p".into(),
            start: "10.3.0.1".parse().unwrap(),
            size,
            dns: Vec::new(),
        }
    }

    /// A pool costs memory by its leases, not its size; never-leased addresses go
    /// first, in order, then the released ones, least recently released first.
    #[test]
    fn a_large_pool_holds_nothing_per_address_and_leases_fresh_ones_first() {
        let mut pools = Pools::default();
        pools.add(&conf(1 << 24));
        assert_eq!(pools.pools[0].free.capacity(), 0);
        let names = vec!["p".to_string()];
        let mut small = Pools::default();
        small.add(&conf(3));
        let lease = |p: &mut Pools, who: &str| p.lease(&names, who, false).map(|(a, _)| a);
        let addr = |o: u8| Some(IpAddr::V4(Ipv4Addr::new(10, 3, 0, 1 + o)));
        assert_eq!(lease(&mut pools, "a"), addr(0));
        assert_eq!(lease(&mut small, "a"), addr(0));
        assert_eq!(lease(&mut small, "b"), addr(1));
        small.release("a", addr(0).unwrap());
        assert_eq!(
            lease(&mut small, "c"),
            addr(2),
            "a fresh one before a released one"
        );
        small.release("c", addr(2).unwrap());
        small.release("b", addr(1).unwrap());
        assert_eq!(lease(&mut small, "d"), addr(0));
        assert_eq!(lease(&mut small, "e"), addr(2));
        assert_eq!(lease(&mut small, "f"), addr(1));
        assert_eq!(lease(&mut small, "g"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Random leases and releases against a plain model: an address per peer,
        /// held while the peer has a reference, never two peers on one address, and a
        /// lease refused exactly when every address is out.
        #[test]
        fn leases_agree_with_a_model(
            size in 1u32..6,
            ops in proptest::collection::vec((any::<bool>(), 0..8usize), 1..80),
        ) {
            let mut pools = Pools::default();
            pools.add(&conf(size));
            let names = vec!["p".to_string()];
            // peer -> (address, references)
            let mut model: HashMap<String, (IpAddr, u32)> = HashMap::new();
            for (lease, who) in ops {
                let peer = format!("peer-{who}");
                if lease {
                    let got = pools.lease(&names, &peer, false).map(|(a, _)| a);
                    let held = model.len();
                    match model.get_mut(&peer) {
                        Some((a, n)) => {
                            prop_assert_eq!(got, Some(*a));
                            *n += 1;
                        }
                        None if held < size as usize => {
                            let a = got.expect("a free address");
                            prop_assert!(model.values().all(|(b, _)| *b != a));
                            let IpAddr::V4(v) = a else {
                                panic!("an IPv6 address from an IPv4 pool");
                            };
                            let off = u32::from(v).wrapping_sub(u32::from(Ipv4Addr::new(10, 3, 0, 1)));
                            prop_assert!(off < size);
                            model.insert(peer, (a, 1));
                        }
                        None => prop_assert_eq!(got, None),
                    }
                } else if let Some((a, n)) = model.get_mut(&peer) {
                    pools.release(&peer, *a);
                    *n -= 1;
                    if *n == 0 {
                        model.remove(&peer);
                    }
                }
                prop_assert_eq!(pools.leased(), model.len());
            }
        }
    }
}
