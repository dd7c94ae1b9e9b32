//! The installer against a real `TableWriter`.
use super::*;
use crate::ike::conn::Identity;
use shared::table::{Snapshot, TableConfig};
use std::sync::Arc;

const SA1: SaId = 0x1111_0000_0000_0001;
const SA2: SaId = 0x2222_0000_0000_0002;

fn writer(workers: usize) -> TableWriter {
    TableWriter::new(TableConfig::sized(workers, 16))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ike_up(sa: SaId, encap: bool) -> Event {
    ike_up_nat(sa, encap, false)
}

fn ike_up_nat(sa: SaId, encap: bool, behind_nat: bool) -> Event {
    Event::IkeUp {
        sa,
        conn: 0,
        initiator: true,
        local: addr("192.0.2.1:4500"),
        remote: addr("198.51.100.1:4500"),
        encap,
        behind_nat,
        peer_id: Some(Identity::Fqdn("gw.test".into())),
        vip: Some("10.3.0.1".parse().unwrap()),
        suite: crate::ike::crypto::IkeSuite {
            encr: crate::ike::crypto::Encr::AesGcm16_128,
            integ: None,
            prf: crate::ike::crypto::Prf::HmacSha2_256,
            dh: crate::ike::crypto::DhGroup::Curve25519,
        },
        setup_ns: 1_000_000,
    }
}

fn child(id: ChildId, spi_in: u32, spi_out: u32, replaces: Option<ChildId>) -> ChildInfo {
    let key = |b: u8| vec![b; 20];
    ChildInfo {
        id,
        spi_in,
        spi_out,
        cipher: EspCipher::AesGcm16_128,
        esn: false,
        key_in: key(spi_in as u8),
        key_out: key(spi_out as u8),
        local_ts: vec![Selector::host("10.3.0.1".parse().unwrap())],
        remote_ts: vec![Selector::prefix("10.1.0.0".parse().unwrap(), 24)],
        replaces,
        defer_outbound: false,
    }
}

fn up(sa: SaId, c: ChildInfo) -> Event {
    Event::ChildUp { sa, child: c }
}

fn down(sa: SaId, c: ChildId, spi_in: u32, spi_out: u32) -> Event {
    Event::ChildDown {
        sa,
        child: c,
        spi_in,
        spi_out,
    }
}

/// Applies a batch and publishes once, as the engine loop does.
fn batch(i: &mut Installer, w: &mut TableWriter, evs: &[Event]) -> Arc<Snapshot> {
    for ev in evs {
        i.on_event(w, 1, ev).unwrap();
    }
    i.commit(w);
    w.published()
}

fn out_spi(s: &Snapshot, t: TunnelId) -> Option<u32> {
    s.outbound(t).map(|o| o.spi)
}

fn assert_empty(i: &Installer, s: &Snapshot) {
    assert_eq!(s.inbound_len(), 0);
    for id in 0..16 {
        assert!(s.tunnel(id).is_none(), "tunnel {id} left");
        assert!(s.outbound(id).is_none(), "outbound {id} left");
        assert!(s.path(id).is_none(), "path {id} left");
    }
    assert_eq!(i.in_use(), (0, 0, 0));
    assert!(i.sas().is_empty());
}

#[test]
fn up_installs_path_tunnel_and_both_sas() {
    let mut w = writer(2);
    let mut i = Installer::new(&w, false, 64);
    let s = batch(
        &mut i,
        &mut w,
        &[ike_up(SA1, false), up(SA1, child(1, 0x1000, 0x2000, None))],
    );
    let p = s.path(0).unwrap();
    assert_eq!(p.spec.encap, Encap::Esp);
    assert_eq!(p.spec.remote, addr("198.51.100.1:4500"));
    let t = s.tunnel(0).unwrap();
    assert_eq!(t.local_ts, vec!["10.3.0.1/32".parse::<Prefix>().unwrap()]);
    assert_eq!(t.remote_ts, vec!["10.1.0.0/24".parse::<Prefix>().unwrap()]);
    let o = s.outbound(0).unwrap();
    assert_eq!((o.spi, o.path, o.tunnel), (0x2000, 0, 0));
    let inb = s.inbound(0x1000).unwrap();
    assert_eq!((inb.tunnel, inb.replay_window), (0, 64));
    // Owners round-robin: inbound then outbound.
    assert_ne!(inb.owner, o.owner);
    assert_eq!(
        s.lookup_outbound("10.3.0.1".parse().unwrap(), "10.1.0.9".parse().unwrap())
            .map(|o| o.spi),
        Some(0x2000)
    );
    // Both events in one publication.
    assert_eq!(s.generation(), 1);
    let v = i.sas();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].path, 0);
    assert_eq!(i.children_of(SA1).len(), 1);
}

#[test]
fn udp_only_backend_encapsulates_every_path() {
    let mut w = writer(1);
    let mut i = Installer::new(&w, true, 64);
    let s = batch(&mut i, &mut w, &[ike_up(SA1, false)]);
    let p = s.path(0).unwrap().spec;
    assert_eq!(p.encap, Encap::Udp);
    // Encapsulated, but no NAT in front of us: nothing to keep alive.
    assert_eq!(p.keepalive_ms, 0);
}

#[test]
fn nat_keepalives_only_while_a_nat_is_in_front_of_us() {
    // RFC 3948 4: the end behind a NAT sends keepalives, whichever role it has.
    let mut w = writer(1);
    let mut i = Installer::new(&w, true, 64);
    let mut up = ike_up_nat(SA1, true, true);
    if let Event::IkeUp { initiator, .. } = &mut up {
        *initiator = false;
    }
    let s = batch(&mut i, &mut w, &[up]);
    assert_eq!(s.path(0).unwrap().spec.keepalive_ms, KEEPALIVE_MS);
    let moved = |behind_nat| Event::PathChanged {
        sa: SA1,
        local: addr("192.0.2.9:4500"),
        remote: addr("198.51.100.1:4500"),
        encap: true,
        behind_nat,
    };
    // MOBIKE to a pair without a NAT: they stop; to one with a NAT again: back.
    let s = batch(&mut i, &mut w, &[moved(false)]);
    assert_eq!(s.path(0).unwrap().spec.keepalive_ms, 0);
    let s = batch(&mut i, &mut w, &[moved(true)]);
    assert_eq!(s.path(0).unwrap().spec.keepalive_ms, KEEPALIVE_MS);
}

#[test]
fn a_rekey_we_answered_keeps_the_old_outbound_until_the_old_child_goes() {
    let mut w = writer(1);
    let mut i = Installer::new(&w, false, 64);
    batch(
        &mut i,
        &mut w,
        &[ike_up(SA1, true), up(SA1, child(1, 0x1000, 0x2000, None))],
    );
    let mut c2 = child(2, 0x1001, 0x2001, Some(1));
    c2.defer_outbound = true;
    let s = batch(&mut i, &mut w, &[up(SA1, c2)]);
    // The new inbound SA is there at once; we keep sending on the old one.
    assert!(s.inbound(0x1001).is_some());
    assert_eq!(out_spi(&s, 0), Some(0x2000));
    // The peer's DELETE of the old child: now the new one sends, and the old
    // inbound lingers.
    let s = batch(&mut i, &mut w, &[down(SA1, 1, 0x1000, 0x2000)]);
    assert_eq!(out_spi(&s, 0), Some(0x2001));
    assert!(s.inbound(0x1000).is_some());
    assert_eq!(i.lingering(), 1);
    i.expire(&mut w, 1 + REPLACED_INBOUND_LINGER_NS);
    let s = batch(&mut i, &mut w, &[]);
    assert!(s.inbound(0x1000).is_none());
    assert_eq!(out_spi(&s, 0), Some(0x2001));
}

#[test]
fn rekey_switches_outbound_in_one_publication_and_keeps_old_inbound() {
    let mut w = writer(1);
    let mut i = Installer::new(&w, false, 64);
    batch(
        &mut i,
        &mut w,
        &[ike_up(SA1, true), up(SA1, child(1, 0x1000, 0x2000, None))],
    );
    let g = w.published().generation();
    let s = batch(
        &mut i,
        &mut w,
        &[up(SA1, child(2, 0x1001, 0x2001, Some(1)))],
    );
    assert_eq!(s.generation(), g + 1);
    // Same tunnel, new outbound, both inbound SAs.
    assert_eq!(out_spi(&s, 0), Some(0x2001));
    assert!(s.tunnel(1).is_none());
    assert_eq!(s.inbound(0x1000).unwrap().tunnel, 0);
    assert_eq!(s.inbound(0x1001).unwrap().tunnel, 0);
    // The old child goes: only its inbound SA leaves, after a grace period for ESP
    // still in flight.
    let s = batch(&mut i, &mut w, &[down(SA1, 1, 0x1000, 0x2000)]);
    assert!(s.inbound(0x1000).is_some());
    assert_eq!(i.lingering(), 1);
    // The control loop sleeps until the expiry: nothing goes before it, all at it.
    let due = i.next_expiry().expect("a lingering SA has an expiry");
    i.expire(&mut w, due - 1);
    assert_eq!(i.lingering(), 1);
    i.expire(&mut w, REPLACED_INBOUND_LINGER_NS);
    i.commit(&mut w);
    assert!(w.published().inbound(0x1000).is_some());
    i.expire(&mut w, 1 + REPLACED_INBOUND_LINGER_NS);
    let s = batch(&mut i, &mut w, &[]);
    assert_eq!(i.lingering(), 0);
    assert_eq!(i.next_expiry(), None);
    assert!(s.inbound(0x1000).is_none());
    assert!(s.inbound(0x1001).is_some());
    assert_eq!(out_spi(&s, 0), Some(0x2001));
    assert!(s.tunnel(0).is_some());
    // The last child goes: everything of the tunnel leaves; the path stays.
    let s = batch(&mut i, &mut w, &[down(SA1, 2, 0x1001, 0x2001)]);
    assert_eq!(s.inbound_len(), 0);
    assert!(s.tunnel(0).is_none());
    assert!(s.outbound(0).is_none());
    assert!(s.path(0).is_some());
    let s = batch(
        &mut i,
        &mut w,
        &[Event::IkeDown {
            sa: SA1,
            reason: DownReason::Deleted,
        }],
    );
    assert_empty(&i, &s);
}

#[test]
fn a_lingering_spi_given_out_again_is_replaced_not_refused() {
    let mut w = writer(1);
    let mut i = Installer::new(&w, false, 64);
    batch(
        &mut i,
        &mut w,
        &[
            ike_up(SA1, false),
            up(SA1, child(1, 0x1000, 0x2000, None)),
            up(SA1, child(2, 0x1001, 0x2001, Some(1))),
            down(SA1, 1, 0x1000, 0x2000),
        ],
    );
    assert_eq!(i.lingering(), 1);
    let old = w.published().inbound(0x1000).unwrap().install_id;
    // The next rekey draws the freed SPI 0x1000 again.
    let s = batch(
        &mut i,
        &mut w,
        &[up(SA1, child(3, 0x1000, 0x2002, Some(2)))],
    );
    assert_eq!(i.lingering(), 0);
    assert_eq!(out_spi(&s, 0), Some(0x2002));
    assert_ne!(s.inbound(0x1000).unwrap().install_id, old);
    assert_eq!(i.children_of(SA1).len(), 2);
}

#[test]
fn replacing_child_down_first_restores_the_old_outbound() {
    let mut w = writer(1);
    let mut i = Installer::new(&w, false, 64);
    batch(
        &mut i,
        &mut w,
        &[
            ike_up(SA1, false),
            up(SA1, child(1, 0x1000, 0x2000, None)),
            up(SA1, child(2, 0x1001, 0x2001, Some(1))),
        ],
    );
    let s = batch(&mut i, &mut w, &[down(SA1, 2, 0x1001, 0x2001)]);
    assert_eq!(out_spi(&s, 0), Some(0x2000));
    assert!(s.inbound(0x1000).is_some());
    // The tunnel carries on: the gone child's inbound SA lingers briefly too.
    assert_eq!(i.lingering(), 1);
    i.expire(&mut w, 1 + REPLACED_INBOUND_LINGER_NS);
    let s = batch(&mut i, &mut w, &[]);
    assert!(s.inbound(0x1001).is_none());
    assert!(i.children_of(SA1)[0].outbound);
}

#[test]
fn ike_rekey_moves_children_and_path_then_path_change_moves_them() {
    let mut w = writer(1);
    let mut i = Installer::new(&w, false, 64);
    batch(
        &mut i,
        &mut w,
        &[ike_up(SA1, false), up(SA1, child(1, 0x1000, 0x2000, None))],
    );
    let s = batch(&mut i, &mut w, &[Event::IkeRekeyed { old: SA1, new: SA2 }]);
    // Nothing changes on the wire.
    assert_eq!(s.generation(), 1);
    assert_eq!(i.path_of(SA2), Some(0));
    assert_eq!(i.path_of(SA1), None);
    assert_eq!(i.children_of(SA2).len(), 1);
    // The old SA going down (as the core reports it) removes nothing.
    let err = i.on_event(
        &mut w,
        2,
        &Event::IkeDown {
            sa: SA1,
            reason: DownReason::Rekeyed,
        },
    );
    assert_eq!(err, Ok(()));
    let s = batch(
        &mut i,
        &mut w,
        &[Event::PathChanged {
            sa: SA2,
            local: addr("192.0.2.7:4500"),
            remote: addr("198.51.100.1:4500"),
            encap: true,
            behind_nat: false,
        }],
    );
    let p = s.path(0).unwrap();
    assert_eq!(p.spec.local, addr("192.0.2.7:4500"));
    assert_eq!(p.spec.encap, Encap::Udp);
    assert_eq!(p.generation, 2);
    assert_eq!(s.outbound(0).unwrap().path, 0);
    let s = batch(
        &mut i,
        &mut w,
        &[
            down(SA2, 1, 0x1000, 0x2000),
            Event::IkeDown {
                sa: SA2,
                reason: DownReason::DeletedByPeer,
            },
        ],
    );
    assert_empty(&i, &s);
}

#[test]
fn ids_are_reused_and_nothing_leaks_over_many_sas() {
    let mut w = writer(2);
    let mut i = Installer::new(&w, false, 64);
    for round in 0..5u32 {
        let mut evs = Vec::new();
        for k in 0..4u64 {
            let sa = SA1 + k;
            let base = 0x10_000 + round * 100 + k as u32 * 10;
            evs.push(ike_up(sa, false));
            evs.push(up(sa, child(k * 10 + 1, base, base + 1, None)));
            evs.push(up(
                sa,
                child(k * 10 + 2, base + 2, base + 3, Some(k * 10 + 1)),
            ));
        }
        let s = batch(&mut i, &mut w, &evs);
        assert_eq!(s.inbound_len(), 8);
        assert_eq!(i.in_use(), (4, 4, 8));
        let mut evs = Vec::new();
        for k in 0..4u64 {
            // IkeDown with children still installed: they go too.
            evs.push(Event::IkeDown {
                sa: SA1 + k,
                reason: DownReason::PeerDead,
            });
        }
        let s = batch(&mut i, &mut w, &evs);
        assert_empty(&i, &s);
    }
    // Ids stayed within the first four.
    assert!(w.published().paths_len() <= 64);
}

#[test]
fn a_failed_install_leaves_nothing_behind() {
    let mut w = writer(1);
    let mut i = Installer::new(&w, false, 64);
    batch(
        &mut i,
        &mut w,
        &[ike_up(SA1, false), up(SA1, child(1, 0x1000, 0x2000, None))],
    );
    // Same inbound SPI again: refused, the second tunnel is withdrawn.
    let e = i.on_event(&mut w, 1, &up(SA1, child(2, 0x1000, 0x2001, None)));
    assert_eq!(
        e,
        Err(InstallError::Table(TableError::DuplicateSpi(0x1000)))
    );
    let s = batch(&mut i, &mut w, &[]);
    assert!(s.tunnel(1).is_none());
    // A short key is refused before anything is staged.
    let mut bad = child(3, 0x3000, 0x3001, None);
    bad.key_in.truncate(3);
    assert!(matches!(
        i.on_event(&mut w, 1, &up(SA1, bad)),
        Err(InstallError::Key(_))
    ));
    // A child of an unknown IKE SA.
    assert_eq!(
        i.on_event(&mut w, 1, &up(SA2, child(4, 0x4000, 0x4001, None))),
        Err(InstallError::UnknownSa(SA2))
    );
    let s = batch(
        &mut i,
        &mut w,
        &[Event::IkeDown {
            sa: SA1,
            reason: DownReason::Deleted,
        }],
    );
    assert_empty(&i, &s);
}

#[test]
fn a_worker_reader_sees_the_installed_sas() {
    let mut w = writer(1);
    let mut reader = w.reader(0).unwrap();
    let mut i = Installer::new(&w, true, 64);
    batch(
        &mut i,
        &mut w,
        &[ike_up(SA1, true), up(SA1, child(1, 0x1000, 0x2000, None))],
    );
    let snap = reader.begin_burst();
    assert_eq!(snap.inbound(0x1000).map(|s| s.spi), Some(0x1000));
    assert_eq!(snap.outbound(0).map(|s| s.spi), Some(0x2000));
    assert_eq!(snap.path(0).map(|p| p.spec.encap), Some(Encap::Udp));
    reader.offline();
}

#[test]
fn path_ids_run_out_cleanly() {
    let mut w = TableWriter::new(TableConfig::sized(1, 2));
    let mut i = Installer::new(&w, false, 64);
    i.on_event(&mut w, 1, &ike_up(1, false)).unwrap();
    i.on_event(&mut w, 1, &ike_up(2, false)).unwrap();
    assert_eq!(
        i.on_event(&mut w, 1, &ike_up(3, false)),
        Err(InstallError::PathsFull)
    );
    i.on_event(
        &mut w,
        1,
        &Event::IkeDown {
            sa: 1,
            reason: DownReason::Deleted,
        },
    )
    .unwrap();
    i.on_event(&mut w, 1, &ike_up(3, false)).unwrap();
    assert_eq!(i.path_of(3), Some(0));
}

/// The indexes (IKE SAs by addresses, children by IKE SA, lingering inbound SAs by SPI,
/// by time and by tunnel) against walks over everything, after every step of random
/// event sequences through a real `TableWriter`.
mod indexes {
    use super::*;
    use proptest::prelude::*;

    const PAIRS: [(&str, &str); 3] = [
        ("192.0.2.1:500", "198.51.100.1:500"),
        ("192.0.2.1:4500", "198.51.100.1:4500"),
        ("192.0.2.2:4500", "198.51.100.7:4500"),
    ];

    fn addrs_of(k: usize) -> (SocketAddr, SocketAddr) {
        let (l, r) = PAIRS[k % PAIRS.len()];
        (addr(l), addr(r))
    }

    impl Installer {
        /// The old walk: the lowest SPI's path among the IKE SAs on the pair.
        fn path_between_scan(
            &self,
            w: &TableWriter,
            local: SocketAddr,
            remote: SocketAddr,
        ) -> Option<PathId> {
            self.sas
                .values()
                .filter(|s| {
                    w.path(s.path)
                        .is_some_and(|r| (r.spec.local, r.spec.remote) == (local, remote))
                })
                .min_by_key(|s| s.sa)
                .map(|s| s.path)
        }

        /// The old walk over all children.
        fn children_of_scan(&self, sa: SaId) -> Vec<ChildId> {
            let mut v: Vec<ChildId> = self
                .children
                .values()
                .filter(|c| c.view.sa == sa)
                .map(|c| c.view.id)
                .collect();
            v.sort_unstable();
            v
        }

        fn check_indexes(&self, w: &TableWriter, snap: &Snapshot) {
            for k in 0..PAIRS.len() {
                let (l, r) = addrs_of(k);
                assert_eq!(self.path_between(w, l, r), self.path_between_scan(w, l, r));
            }
            let n: usize = self.by_addrs.values().map(PairSas::len).sum();
            assert_eq!(n, self.sas.len(), "every IKE SA indexed once");
            for sa in self.sas.keys().copied().chain([1, 2, 3]) {
                let ids: Vec<ChildId> = self.children_of(sa).iter().map(|c| c.id).collect();
                assert_eq!(ids, self.children_of_scan(sa));
            }
            let n: usize = self.sas.values().map(|s| s.children.len()).sum();
            assert_eq!(n, self.children.len(), "every child indexed once");
            assert!(
                self.sas
                    .values()
                    .all(|s| s.children.as_slice().is_sorted_by(|a, b| a < b)),
                "children ascending, once each"
            );
            // Tunnels: each child in its tunnel's list once, nothing else there.
            let n: usize = self
                .tunnel_recs
                .iter()
                .flatten()
                .map(|t| t.children.len())
                .sum();
            assert_eq!(n, self.children.len(), "every child in its tunnel once");
            for c in self.children.values() {
                let t = self.tunnel_rec(c.view.tunnel).expect("the child's tunnel");
                assert!(t.children.as_slice().contains(&c.view.id));
            }
            // Lingering: by time and by tunnel agree with by SPI, and are installed.
            let l = &self.lingering;
            assert_eq!(self.next_expiry(), l.by_spi.values().map(|x| x.until).min());
            let by_time: BTreeSet<(u64, u32)> =
                l.by_spi.iter().map(|(&spi, x)| (x.until, spi)).collect();
            assert_eq!(l.by_time, by_time);
            let on_tunnels: Vec<(TunnelId, u32)> = l.by_tunnel.iter().copied().collect();
            for (t, _) in &on_tunnels {
                assert!(
                    self.tunnel_rec(*t).is_some(),
                    "lingering on live tunnel {t}"
                );
            }
            let mut want: Vec<(TunnelId, u32)> =
                l.by_spi.iter().map(|(&spi, x)| (x.tunnel, spi)).collect();
            want.sort_unstable();
            assert_eq!(on_tunnels, want, "lingering SAs by tunnel");
            for spi in l.by_spi.keys() {
                assert!(snap.inbound(*spi).is_some(), "lingering {spi:#x} installed");
            }
            for c in self.children.values() {
                assert!(snap.inbound(c.view.spi_in).is_some());
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// An IKE SA up: a fresh SPI (`fresh`) or again for an existing one.
        IkeUp {
            fresh: bool,
            pick: usize,
            pair: usize,
        },
        /// A child of an IKE SA, maybe replacing one of its children (a rekey).
        ChildUp {
            pick: usize,
            rekey: Option<usize>,
            defer: bool,
            spi: u32,
        },
        ChildDown(usize),
        PathChanged {
            pick: usize,
            pair: usize,
        },
        IkeRekeyed(usize),
        IkeDown(usize),
        /// Time passes (ms) and the lingering SAs due go.
        Expire(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<bool>(), 0..8usize, 0..3usize)
                .prop_map(|(fresh, pick, pair)| Op::IkeUp { fresh, pick, pair }),
            5 => (0..8usize, proptest::option::of(0..8usize), any::<bool>(), 0..12u32)
                .prop_map(|(pick, rekey, defer, spi)| Op::ChildUp { pick, rekey, defer, spi }),
            3 => (0..16usize).prop_map(Op::ChildDown),
            2 => (0..8usize, 0..3usize).prop_map(|(pick, pair)| Op::PathChanged { pick, pair }),
            2 => (0..8usize).prop_map(Op::IkeRekeyed),
            2 => (0..8usize).prop_map(Op::IkeDown),
            2 => prop_oneof![Just(0u64), Just(100), Just(600)].prop_map(Op::Expire),
        ]
    }

    struct Run {
        i: Installer,
        w: TableWriter,
        now: u64,
        next_sa: SaId,
        next_child: ChildId,
    }

    impl Run {
        fn pick_sa(&self, k: usize) -> Option<SaId> {
            let mut v: Vec<SaId> = self.i.sas.keys().copied().collect();
            v.sort_unstable();
            (!v.is_empty()).then(|| v[k % v.len()])
        }

        fn pick_child(&self, k: usize) -> Option<(SaId, ChildId, u32, u32)> {
            let mut v: Vec<&ChildView> = self.i.children.values().map(|c| &c.view).collect();
            v.sort_unstable_by_key(|c| c.id);
            (!v.is_empty()).then(|| {
                let c = v[k % v.len()];
                (c.sa, c.id, c.spi_in, c.spi_out)
            })
        }

        fn step(&mut self, op: &Op) {
            let ev = match *op {
                Op::IkeUp { fresh, pick, pair } => {
                    let sa = match self.pick_sa(pick) {
                        Some(sa) if !fresh => sa,
                        _ => {
                            self.next_sa += 1;
                            self.next_sa
                        }
                    };
                    let (local, remote) = addrs_of(pair);
                    let Event::IkeUp {
                        conn,
                        initiator,
                        encap,
                        behind_nat,
                        peer_id,
                        vip,
                        suite,
                        setup_ns,
                        ..
                    } = ike_up(sa, false)
                    else {
                        unreachable!()
                    };
                    Some(Event::IkeUp {
                        sa,
                        conn,
                        initiator,
                        local,
                        remote,
                        encap,
                        behind_nat,
                        peer_id,
                        vip,
                        suite,
                        setup_ns,
                    })
                }
                Op::ChildUp {
                    pick,
                    rekey,
                    defer,
                    spi,
                } => self.pick_sa(pick).map(|sa| {
                    // Like the core: an inbound SPI no live child holds (a lingering
                    // one may come back).
                    let live: Vec<u32> = self.i.children.values().map(|c| c.view.spi_in).collect();
                    let spi_in = (0..12)
                        .map(|k| 0x100 + (spi + k) % 12)
                        .find(|s| !live.contains(s))
                        .unwrap_or(0x1000 + self.next_child as u32);
                    let replaces = rekey.and_then(|k| {
                        let ids = self.i.children_of_scan(sa);
                        (!ids.is_empty()).then(|| ids[k % ids.len()])
                    });
                    self.next_child += 1;
                    let mut c = child(self.next_child, spi_in, 0x2000 + spi_in, replaces);
                    c.defer_outbound = defer;
                    up(sa, c)
                }),
                Op::ChildDown(k) => self
                    .pick_child(k)
                    .map(|(sa, c, si, so)| down(sa, c, si, so)),
                Op::PathChanged { pick, pair } => self.pick_sa(pick).map(|sa| {
                    let (local, remote) = addrs_of(pair);
                    Event::PathChanged {
                        sa,
                        local,
                        remote,
                        encap: true,
                        behind_nat: false,
                    }
                }),
                Op::IkeRekeyed(k) => self.pick_sa(k).map(|old| {
                    self.next_sa += 1;
                    Event::IkeRekeyed {
                        old,
                        new: self.next_sa,
                    }
                }),
                Op::IkeDown(k) => self.pick_sa(k).map(|sa| Event::IkeDown {
                    sa,
                    reason: DownReason::Deleted,
                }),
                Op::Expire(ms) => {
                    self.now += ms * 1_000_000;
                    self.i.expire(&mut self.w, self.now);
                    None
                }
            };
            if let Some(ev) = ev {
                // Refusals (a full table) are fine; the indexes must hold anyway.
                let _ = self.i.on_event(&mut self.w, self.now, &ev);
            }
            self.i.commit(&mut self.w);
            let snap = self.w.published();
            self.i.check_indexes(&self.w, &snap);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn indexes_agree_with_walks(ops in proptest::collection::vec(op(), 1..60)) {
            let w = TableWriter::new(TableConfig::sized(2, 12));
            let i = Installer::new(&w, false, 64);
            let mut r = Run { i, w, now: 1, next_sa: 0, next_child: 0 };
            for op in &ops {
                r.step(op);
            }
            // Everything down: nothing is left in any index.
            for _ in 0..r.i.sas.len() {
                r.step(&Op::IkeDown(0));
            }
            r.step(&Op::Expire(600));
            prop_assert!(r.i.by_addrs.is_empty());
            prop_assert!(r.i.tunnel_recs.iter().all(Option::is_none));
            prop_assert_eq!(r.i.lingering(), 0);
            prop_assert!(r.i.lingering.by_time.is_empty());
        }
    }
}
