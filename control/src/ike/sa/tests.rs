//! The endpoint's indexes and counts (peer identity -> IKE SAs, SAs established,
//! children, initiating, half-open) against walks over all SAs, after every step of
//! random runs: clients that connect, restart (INITIAL_CONTACT, RFC 7296 2.4), share
//! identities, rekey, delete, lose messages and time out, over real IKE exchanges.

use super::*;
use crate::ike::conn::{PoolConf, Selector};
use crate::ike::crypto::random::SeededRandom;
use proptest::prelude::*;

impl Endpoint {
    /// The old walk: the other IKE SAs with peer `who`, not half-open.
    fn replaced_by_scan(&self, keep: SaId, who: &Identity) -> Vec<SaId> {
        let mut v: Vec<SaId> = self
            .sas
            .values()
            .filter(|s| s.id() != keep && s.peer_id() == Some(who) && !s.is_half_open())
            .map(|s| s.id())
            .collect();
        v.sort_unstable();
        v
    }

    /// Every index and count against a walk over all SAs.
    fn check_indexes(&self) {
        let mut by_peer: HashMap<Identity, HashSet<SaId>> = HashMap::new();
        for s in self.sas.values() {
            if let Some(p) = s.peer_id() {
                by_peer.entry(p.clone()).or_default().insert(s.id());
            }
        }
        let indexed: HashMap<Identity, HashSet<SaId>> = self
            .by_peer
            .iter()
            .map(|(who, ids)| (who.clone(), ids.iter().copied().collect()))
            .collect();
        assert_eq!(indexed, by_peer, "peer identity index");
        for (who, ids) in &self.by_peer {
            assert_eq!(ids.len(), by_peer[who].len(), "{who:?} indexed twice");
        }
        let count = |f: fn(&IkeSa) -> bool| self.sas.values().filter(|s| f(s)).count();
        assert_eq!(self.established(), count(IkeSa::is_established));
        assert_eq!(self.initiating(), count(IkeSa::is_initiating));
        assert_eq!(self.half_open(), count(IkeSa::is_half_open));
        let children: usize = self.sas.values().map(|s| s.child_count()).sum();
        assert_eq!(self.child_count(), children);
        for s in self.sas.values() {
            assert_eq!(self.child_count_of(s.id()), s.child_count());
            for who in by_peer.keys() {
                assert_eq!(
                    self.replaced_by(s.id(), who),
                    self.replaced_by_scan(s.id(), who)
                );
            }
        }
    }
}

const MS: u64 = 1_000_000;
const GW: &str = "10.0.0.254:500";
/// Clients, and the identities they share (two clients per identity at most).
const CLIENTS: usize = 5;
const IDENTITIES: usize = 3;

fn client(k: usize, seed: u64) -> Endpoint {
    let mut c = Conn::new(
        "c",
        Identity::Fqdn(format!("client-{}.test", k % IDENTITIES)),
        b"0123456789abcdef",
    );
    c.peer_addrs = vec![GW.parse().unwrap()];
    c.local_addrs = vec![format!("10.0.1.{}:500", k + 1).parse().unwrap()];
    c.remote_id = Some(Identity::Fqdn("gw.test".into()));
    c.request_vip4 = true;
    c.local_ts = vec![Selector::parse("0.0.0.0/0").unwrap()].into();
    c.remote_ts = vec![Selector::parse("10.2.0.0/24").unwrap()].into();
    Endpoint::new(
        EndpointConfig::default(),
        vec![c],
        Box::new(SeededRandom::new(seed)),
    )
}

fn gateway(seed: u64) -> Endpoint {
    let mut c = Conn::new("gw", Identity::Fqdn("gw.test".into()), b"0123456789abcdef");
    c.local_addrs = vec![GW.parse().unwrap()];
    c.local_ts = vec![Selector::parse("10.2.0.0/24").unwrap()].into();
    c.remote_ts = vec![Selector::parse("0.0.0.0/0").unwrap()].into();
    // Fewer addresses than identities: some children are refused.
    c.pools = vec![PoolConf {
        name: "p".into(),
        start: "10.3.0.1".parse().unwrap(),
        size: 2,
        dns: Vec::new(),
    }]
    .into();
    Endpoint::new(
        EndpointConfig {
            cookie_threshold: 3,
            ..EndpointConfig::default()
        },
        vec![c],
        Box::new(SeededRandom::new(seed)),
    )
}

#[derive(Debug, Clone)]
enum Op {
    Initiate(usize),
    /// The client loses its state and connects again (INITIAL_CONTACT).
    Restart(usize),
    RekeyIke(usize),
    RekeyChild(usize),
    CreateChild(usize),
    Delete(usize),
    ClientDelete(usize),
    /// The datagrams now queued are lost.
    Lose,
    /// Virtual time passes (ms): retransmissions, timeouts, DPD, lifetimes.
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CLIENTS).prop_map(Op::Initiate),
        2 => (0..CLIENTS).prop_map(Op::Restart),
        2 => (0..8usize).prop_map(Op::RekeyIke),
        1 => (0..8usize).prop_map(Op::RekeyChild),
        1 => (0..8usize).prop_map(Op::CreateChild),
        1 => (0..8usize).prop_map(Op::Delete),
        1 => (0..CLIENTS).prop_map(Op::ClientDelete),
        1 => Just(Op::Lose),
        2 => prop_oneof![Just(1u64), Just(2_000), Just(40_000), Just(4_000_000)]
            .prop_map(Op::Wait),
    ]
}

struct World {
    gw: Endpoint,
    clients: Vec<Endpoint>,
    now: u64,
    seed: u64,
}

impl World {
    fn new(seed: u64) -> World {
        World {
            gw: gateway(seed),
            clients: (0..CLIENTS)
                .map(|k| client(k, seed + 1 + k as u64))
                .collect(),
            now: 1_000_000 * MS,
            seed,
        }
    }

    /// Hands datagrams around until none is left (bounded); events are dropped.
    fn pump(&mut self, lose: bool) {
        for _ in 0..16 {
            let mut moved = false;
            let now = self.now;
            for k in 0..CLIENTS {
                while let Some(t) = self.clients[k].poll_transmit() {
                    moved = true;
                    if !lose {
                        self.gw.handle_datagram(now, t.remote, t.local, &t.data);
                    }
                }
                while self.clients[k].poll_event().is_some() {}
            }
            while let Some(t) = self.gw.poll_transmit() {
                moved = true;
                let IpAddr::V4(v4) = t.remote.ip() else {
                    continue;
                };
                let k = usize::from(v4.octets()[3]) - 1;
                if !lose && k < CLIENTS {
                    self.clients[k].handle_datagram(now, t.remote, t.local, &t.data);
                }
            }
            while self.gw.poll_event().is_some() {}
            if !moved {
                return;
            }
        }
    }

    fn nth_gw_sa(&self, i: usize) -> Option<SaId> {
        let ids = self.gw.sa_ids();
        (!ids.is_empty()).then(|| ids[i % ids.len()])
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::Initiate(k) => {
                self.clients[k].initiate(now, 0, None);
            }
            Op::Restart(k) => {
                self.seed += 100;
                self.clients[k] = client(k, self.seed);
                self.clients[k].initiate(now, 0, None);
            }
            Op::RekeyIke(i) => {
                if let Some(sa) = self.nth_gw_sa(i) {
                    self.gw.rekey_ike(now, sa);
                }
            }
            Op::RekeyChild(i) => {
                if let Some(sa) = self.nth_gw_sa(i) {
                    if let Some(&c) = self.gw.children(sa).first() {
                        self.gw.rekey_child(now, sa, c);
                    }
                }
            }
            Op::CreateChild(i) => {
                if let Some(sa) = self.nth_gw_sa(i) {
                    self.gw.create_child(now, sa);
                }
            }
            Op::Delete(i) => {
                if let Some(sa) = self.nth_gw_sa(i) {
                    self.gw.delete(now, sa);
                }
            }
            Op::ClientDelete(k) => {
                if let Some(&sa) = self.clients[k].sa_ids().first() {
                    self.clients[k].delete(now, sa);
                }
            }
            Op::Lose => {}
            Op::Wait(ms) => {
                // Every timer up to the new time, in order.
                let until = now + ms * MS;
                for _ in 0..10_000 {
                    let next = std::iter::once(self.gw.poll_timeout())
                        .chain(self.clients.iter_mut().map(Endpoint::poll_timeout))
                        .flatten()
                        .min();
                    let Some(t) = next.filter(|&t| t <= until) else {
                        break;
                    };
                    self.now = self.now.max(t);
                    self.gw.handle_timeout(self.now);
                    for c in &mut self.clients {
                        c.handle_timeout(self.now);
                    }
                    self.pump(false);
                }
                self.now = until;
            }
        }
        self.pump(matches!(op, Op::Lose));
    }

    fn check(&self) {
        self.gw.check_indexes();
        for c in &self.clients {
            c.check_indexes();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn indexes_agree_with_walks_over_all_sas(
        seed in 0u64..1_000_000,
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let mut w = World::new(seed);
        for op in &ops {
            w.apply(op);
            w.check();
        }
    }
}

/// A restarted client's INITIAL_CONTACT replaces, through the index, every IKE SA of
/// its identity, and nothing else.
#[test]
fn initial_contact_replaces_every_sa_of_the_identity_and_no_other() {
    let mut w = World::new(7);
    // Two IKE SAs of client 0 (the second without INITIAL_CONTACT: the first is up),
    // one of client 1.
    w.apply(&Op::Initiate(0));
    w.apply(&Op::Initiate(0));
    w.apply(&Op::Initiate(1));
    w.check();
    assert_eq!(w.gw.established(), 3);
    let who = Identity::Fqdn("client-0.test".into());
    assert_eq!(w.gw.by_peer.get(&who).map(Vec::len), Some(2));
    w.apply(&Op::Restart(0));
    w.check();
    assert_eq!(w.gw.counters().initial_contact_dropped, 2);
    assert_eq!(w.gw.established(), 2);
    assert_eq!(w.gw.by_peer.get(&who).map(Vec::len), Some(1));
}

/// Every IKE SA is this big (boxed in the endpoint's map): at 100,000 tunnels each
/// 100 bytes are 10 MB. Handshake state, expanded keys and rarely used state are
/// boxed or dropped once established; this keeps it so.
#[test]
fn an_ike_sa_stays_small() {
    let size = std::mem::size_of::<IkeSa>();
    assert!(size <= SA_SIZE_MAX, "IkeSa is {size} bytes");
}

/// 1,648 bytes before the handshake state, the SK contexts and the keys were boxed or
/// dropped; 584 before the deadlines took eight bytes each and the nonces moved into
/// the handshake state (480 then).
const SA_SIZE_MAX: usize = 512;
