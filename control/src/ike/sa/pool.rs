//! Virtual IP pools: addresses leased to peers that ask for one in a CP request.
//! A peer identity gets the same address back while its lease exists (a reconnect
//! before the old SA is gone reuses it, as strongSwan does).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ike::conn::PoolConf;

/// One pool's state: a bitmap of leased offsets and the lease per identity.
#[derive(Debug)]
struct Pool {
    conf: PoolConf,
    used: Vec<bool>,
    /// Where the next search starts, so leasing is O(1) amortised.
    cursor: usize,
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
            used: vec![false; conf.size as usize],
            cursor: 0,
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
            let len = p.used.len();
            for k in 0..len {
                let i = (p.cursor + k) % len;
                if !p.used[i] {
                    p.used[i] = true;
                    p.cursor = (i + 1) % len;
                    p.by_peer.insert(peer.to_string(), (i, 1));
                    return Some((offset_addr(p.conf.start, i as u32), p.conf.dns.clone()));
                }
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
                    let off = *off;
                    p.by_peer.remove(peer);
                    if let Some(u) = p.used.get_mut(off) {
                        *u = false;
                    }
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
