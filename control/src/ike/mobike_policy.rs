//! The client's address rotation (MyIKEv2's `mobikeiplifetime` /
//! `mobikechangeaddrtype`): every lifetime the initiator moves its IKE SA to the next
//! (own, peer) address pair. RFC 4555 leaves the choice of addresses to local policy
//! (3.5: "the initiator decides"); this is that policy, without sockets or clocks.
//!
//! # Which pair is next
//! Each side keeps a *stable order*: addresses in the order they were first seen, cut
//! down to the latest list (and the current address). The latest list cannot serve as
//! the order itself: the peer's list comes current-first (`Endpoint::peer_addrs`), so
//! "the one after the current" would always be its second entry, and three addresses
//! would never get past the first two.
//!
//! - own-only: the next own address after the current one (wrapping), peer unchanged;
//! - peer-only: the next peer address after the current one, own unchanged;
//! - both: own-major over own x peer, i.e. `(o0,p0) (o0,p1) .. (o1,p0) (o1,p1) ..`,
//!   starting after the current pair (wrapping), skipping the current pair.
//!
//! Candidates are only addresses in the latest lists, and only pairs of one address
//! family. A current address that has left its list keeps its place in the stable
//! order, so the next is the one that followed it. `None`: there is nowhere to go.

use std::net::IpAddr;

use super::conn::ChangeType;

/// One tunnel's rotation policy. Deterministic: the same calls give the same pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationPolicy {
    change: ChangeType,
    own: Vec<IpAddr>,
    peer: Vec<IpAddr>,
}

impl RotationPolicy {
    pub fn new(change: ChangeType) -> Self {
        RotationPolicy {
            change,
            own: Vec::new(),
            peer: Vec::new(),
        }
    }

    pub fn change_type(&self) -> ChangeType {
        self.change
    }

    /// The pair to move to from `current` (own, peer), given our usable addresses
    /// (`own`: the instance's addresses) and the peer's latest list (`peer`:
    /// configured and announced, in any order). Asking twice without moving gives the
    /// same answer.
    pub fn next_pair(
        &mut self,
        own: &[IpAddr],
        peer: &[IpAddr],
        current: (IpAddr, IpAddr),
    ) -> Option<(IpAddr, IpAddr)> {
        let (cur_own, cur_peer) = current;
        update_order(&mut self.own, own, cur_own);
        update_order(&mut self.peer, peer, cur_peer);
        let io = position(&self.own, cur_own);
        let ip = position(&self.peer, cur_peer);
        let (no, np) = (self.own.len(), self.peer.len());
        let usable = |o: IpAddr, p: IpAddr| {
            o.is_ipv4() == p.is_ipv4() && own.contains(&o) && peer.contains(&p)
        };
        match self.change {
            ChangeType::OwnOnly => (1..no)
                .filter_map(|k| self.own.get((io + k) % no).copied())
                .find(|o| usable(*o, cur_peer))
                .map(|o| (o, cur_peer)),
            ChangeType::PeerOnly => (1..np)
                .filter_map(|k| self.peer.get((ip + k) % np).copied())
                .find(|p| usable(cur_own, *p))
                .map(|p| (cur_own, p)),
            ChangeType::Both => {
                // Combinations numbered own-major; k = 0 is the current pair.
                let total = no * np;
                let here = io * np + ip;
                (1..total)
                    .map(|k| (here + k) % total)
                    .filter_map(|n| Some((*self.own.get(n / np)?, *self.peer.get(n % np)?)))
                    .find(|(o, p)| usable(*o, *p))
            }
        }
    }
}

/// Cuts `order` down to `latest` and `current` (keeping places), then appends what is
/// new, in the order given, and last the current address if it was never seen (so
/// that the next after an unknown address is the first of the list).
fn update_order(order: &mut Vec<IpAddr>, latest: &[IpAddr], current: IpAddr) {
    order.retain(|a| *a == current || latest.contains(a));
    for a in latest.iter().chain(core::iter::once(&current)) {
        if !order.contains(a) {
            order.push(*a);
        }
    }
}

fn position(order: &[IpAddr], a: IpAddr) -> usize {
    order.iter().position(|x| *x == a).unwrap_or(0)
}

/// When the next rotation is due, in the caller's clock (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// `u64::MAX`: never (lifetime 0).
    pub next_at: u64,
}

impl Rotation {
    /// Never due.
    pub const OFF: Rotation = Rotation { next_at: u64::MAX };

    /// First due `lifetime_ns` after `now`; never with lifetime 0.
    pub fn new(now: u64, lifetime_ns: u64) -> Self {
        let mut r = Rotation::OFF;
        r.rearm(now, lifetime_ns);
        r
    }

    /// First due at a point of the first lifetime given by `seed` (`mobikeipspread`:
    /// random seeds spread SAs set up together over one lifetime); never with
    /// lifetime 0.
    pub fn spread(now: u64, lifetime_ns: u64, seed: u64) -> Self {
        match lifetime_ns {
            0 => Rotation::OFF,
            l => Rotation {
                next_at: now.saturating_add(1 + seed % l).min(u64::MAX - 1),
            },
        }
    }

    pub fn due(&self, now: u64) -> bool {
        self.next_at != u64::MAX && now >= self.next_at
    }

    /// Due again `lifetime_ns` after `now` (the seed waits a whole lifetime on each
    /// address); lifetime 0 switches the rotation off.
    pub fn rearm(&mut self, now: u64, lifetime_ns: u64) {
        self.next_at = match lifetime_ns {
            0 => u64::MAX,
            l => now.saturating_add(l).min(u64::MAX - 1),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| ip(s)).collect()
    }

    /// Follows the policy for `steps` moves with fixed lists (the peer's list handed
    /// over current-first, as `Endpoint::peer_addrs` does) and returns the pairs
    /// visited, the start included.
    fn walk(
        change: ChangeType,
        own: &[IpAddr],
        peer: &[IpAddr],
        start: (IpAddr, IpAddr),
        steps: usize,
    ) -> Vec<(IpAddr, IpAddr)> {
        let mut p = RotationPolicy::new(change);
        let mut cur = start;
        let mut seen = vec![cur];
        for _ in 0..steps {
            let mut latest = vec![cur.1];
            latest.extend(peer.iter().filter(|a| **a != cur.1));
            let again = p.next_pair(own, &latest, cur);
            let Some(next) = p.next_pair(own, &latest, cur) else {
                break;
            };
            assert_eq!(again, Some(next), "asking twice gives one answer");
            cur = next;
            seen.push(cur);
        }
        seen
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(IpAddr, IpAddr)> {
        list.iter().map(|(o, p)| (ip(o), ip(p))).collect()
    }

    const OWN: [&str; 3] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
    const PEER: [&str; 2] = ["192.0.2.1", "192.0.2.2"];

    #[test]
    fn own_only_cycles_own_addresses() {
        let (own, peer) = (ips(&OWN), ips(&PEER));
        let got = walk(ChangeType::OwnOnly, &own, &peer, (own[0], peer[0]), 4);
        let want = pairs(&[
            ("10.0.0.1", "192.0.2.1"),
            ("10.0.0.2", "192.0.2.1"),
            ("10.0.0.3", "192.0.2.1"),
            ("10.0.0.1", "192.0.2.1"),
            ("10.0.0.2", "192.0.2.1"),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn peer_only_cycles_peer_addresses() {
        let (own, peer) = (ips(&OWN), ips(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]));
        // Handed over current-first, the third address is still reached.
        let got = walk(ChangeType::PeerOnly, &own, &peer, (own[1], peer[0]), 4);
        let want = pairs(&[
            ("10.0.0.2", "192.0.2.1"),
            ("10.0.0.2", "192.0.2.2"),
            ("10.0.0.2", "192.0.2.3"),
            ("10.0.0.2", "192.0.2.1"),
            ("10.0.0.2", "192.0.2.2"),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn both_goes_own_major_through_every_combination() {
        let (own, peer) = (ips(&OWN), ips(&PEER));
        let got = walk(ChangeType::Both, &own, &peer, (own[0], peer[0]), 7);
        let want = pairs(&[
            ("10.0.0.1", "192.0.2.1"),
            ("10.0.0.1", "192.0.2.2"),
            ("10.0.0.2", "192.0.2.1"),
            ("10.0.0.2", "192.0.2.2"),
            ("10.0.0.3", "192.0.2.1"),
            ("10.0.0.3", "192.0.2.2"),
            ("10.0.0.1", "192.0.2.1"),
            ("10.0.0.1", "192.0.2.2"),
        ]);
        assert_eq!(got, want);
        // From the middle: after (o2, p2) comes (o3, p1). A new policy takes the
        // lists' order as it finds it.
        let mut p = RotationPolicy::new(ChangeType::Both);
        assert_eq!(
            p.next_pair(&own, &peer, (own[1], peer[1])),
            Some((own[2], peer[0]))
        );
        let mut p = RotationPolicy::new(ChangeType::Both);
        assert_eq!(
            p.next_pair(&own, &[peer[1], peer[0]], (own[1], peer[1])),
            Some((own[1], peer[0]))
        );
        // A current pair the policy never saw: the first combination.
        let mut p = RotationPolicy::new(ChangeType::Both);
        let stranger = (ip("10.0.0.9"), ip("192.0.2.9"));
        assert_eq!(p.next_pair(&own, &peer, stranger), Some((own[0], peer[0])));
    }

    #[test]
    fn pairs_stay_in_one_family() {
        let own = ips(&["10.0.0.1", "2001:db8::1", "10.0.0.2", "2001:db8::2"]);
        let peer = ips(&["192.0.2.1", "2001:db8:f::1"]);
        let got = walk(ChangeType::OwnOnly, &own, &peer, (own[0], peer[0]), 2);
        assert_eq!(
            got,
            pairs(&[
                ("10.0.0.1", "192.0.2.1"),
                ("10.0.0.2", "192.0.2.1"),
                ("10.0.0.1", "192.0.2.1")
            ])
        );
        let got = walk(ChangeType::OwnOnly, &own, &peer, (own[1], peer[1]), 2);
        assert_eq!(
            got,
            pairs(&[
                ("2001:db8::1", "2001:db8:f::1"),
                ("2001:db8::2", "2001:db8:f::1"),
                ("2001:db8::1", "2001:db8:f::1")
            ])
        );
        // Peer-only from an IPv4 own address: the IPv6 peer is no candidate.
        let mut p = RotationPolicy::new(ChangeType::PeerOnly);
        assert_eq!(p.next_pair(&own, &peer, (own[0], peer[0])), None);
        // Both: the mixed combinations are skipped, the rest visited own-major.
        let got = walk(ChangeType::Both, &own, &peer, (own[0], peer[0]), 4);
        assert_eq!(
            got,
            pairs(&[
                ("10.0.0.1", "192.0.2.1"),
                ("2001:db8::1", "2001:db8:f::1"),
                ("10.0.0.2", "192.0.2.1"),
                ("2001:db8::2", "2001:db8:f::1"),
                ("10.0.0.1", "192.0.2.1"),
            ])
        );
    }

    #[test]
    fn the_latest_peer_list_decides() {
        let own = ips(&["10.0.0.1"]);
        let o = own[0];
        let [p1, p2, p3, p4] = [
            ip("192.0.2.1"),
            ip("192.0.2.2"),
            ip("192.0.2.3"),
            ip("192.0.2.4"),
        ];
        let mut p = RotationPolicy::new(ChangeType::PeerOnly);
        assert_eq!(p.next_pair(&own, &[p1, p2], (o, p1)), Some((o, p2)));
        // The peer announces p3 and withdraws p1: after p2 comes p3, not p1.
        assert_eq!(p.next_pair(&own, &[p2, p3], (o, p2)), Some((o, p3)));
        // p1 comes back, current-first order: p3 p1 p2. Stable order p2 p3 p1.
        assert_eq!(p.next_pair(&own, &[p3, p1, p2], (o, p3)), Some((o, p1)));
        assert_eq!(p.next_pair(&own, &[p1, p2, p3], (o, p1)), Some((o, p2)));
        // The current address leaves the list: the one after its place (p3), and the
        // same answer however often it is asked.
        for _ in 0..3 {
            assert_eq!(p.next_pair(&own, &[p4, p3, p1], (o, p2)), Some((o, p3)));
        }
        // Gone, and so is the one after it: p1 (wrapping past p4, which is new and
        // last: order p2 p3 p1 p4 without p3 -> p2 p1 p4).
        assert_eq!(p.next_pair(&own, &[p1, p4], (o, p2)), Some((o, p1)));

        // Both, with the peer list growing between steps.
        let own = ips(&["10.0.0.1", "10.0.0.2"]);
        let mut p = RotationPolicy::new(ChangeType::Both);
        assert_eq!(p.next_pair(&own, &[p1], (own[0], p1)), Some((own[1], p1)));
        assert_eq!(
            p.next_pair(&own, &[p1, p2], (own[1], p1)),
            Some((own[1], p2))
        );
        assert_eq!(
            p.next_pair(&own, &[p2, p1], (own[1], p2)),
            Some((own[0], p1))
        );
    }

    #[test]
    fn nowhere_to_go() {
        let (o, q) = (ip("10.0.0.1"), ip("192.0.2.1"));
        for change in [ChangeType::OwnOnly, ChangeType::PeerOnly, ChangeType::Both] {
            let mut p = RotationPolicy::new(change);
            assert_eq!(p.next_pair(&[o], &[q], (o, q)), None, "{change:?}");
            assert_eq!(p.next_pair(&[], &[], (o, q)), None, "{change:?}");
        }
        // Own-only with one own address but several peers; peer-only the reverse.
        let peers = ips(&PEER);
        let mut p = RotationPolicy::new(ChangeType::OwnOnly);
        assert_eq!(p.next_pair(&[o], &peers, (o, peers[0])), None);
        let owns = ips(&OWN);
        let mut p = RotationPolicy::new(ChangeType::PeerOnly);
        assert_eq!(p.next_pair(&owns, &[q], (owns[0], q)), None);
        // The current own address is gone and it was the only one: nothing left.
        let mut p = RotationPolicy::new(ChangeType::OwnOnly);
        assert_eq!(p.next_pair(&[], &[q], (o, q)), None);
        // ...but with another own address left, that one.
        let o2 = ip("10.0.0.2");
        assert_eq!(p.next_pair(&[o2], &[q], (o, q)), Some((o2, q)));
    }

    #[test]
    fn rotation_schedule() {
        const S: u64 = 1_000_000_000;
        let mut r = Rotation::new(5 * S, 30 * S);
        assert_eq!(r.next_at, 35 * S);
        assert!(!r.due(35 * S - 1));
        assert!(r.due(35 * S));
        assert!(r.due(40 * S));
        r.rearm(40 * S, 30 * S);
        assert_eq!(r.next_at, 70 * S);
        assert!(!r.due(69 * S));
        // Lifetime 0: never, even at the end of time.
        r.rearm(70 * S, 0);
        assert_eq!(r, Rotation::OFF);
        assert!(!r.due(u64::MAX));
        assert!(!Rotation::new(0, 0).due(u64::MAX));
        // Saturates instead of wrapping, and stays distinguishable from OFF.
        let r = Rotation::new(u64::MAX - 5, 30 * S);
        assert_eq!(r.next_at, u64::MAX - 1);
        assert!(r.due(u64::MAX));
    }
}
