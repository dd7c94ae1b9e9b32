//! MOBIKE (RFC 4555) between two endpoints over the in-memory link with a virtual
//! clock: the client (A, the original initiator) has three addresses, the gateway
//! (B) two IPv4 and one IPv6. Addresses "go away" by a filter that drops everything
//! to or from them; a NAT is a rewrite. No sockets, no sleeps.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::*;

const A1: &str = "10.0.0.1";
const A2: &str = "10.0.1.1";
const A6: &str = "fd00::1";
const B1: &str = "10.0.0.2";
const B2: &str = "10.0.2.2";
const B6: &str = "fd00::2";
/// The NAT's public address (in front of A).
const NAT: &str = "192.0.2.1";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn at(s: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip(s), port)
}

struct Lab {
    net: Net,
    sa_a: u64,
    sa_b: u64,
    /// Addresses whose packets are dropped (gone, or a blackholed path).
    dead: Rc<RefCell<Vec<IpAddr>>>,
    /// Datagrams to drop by position among A's (or B's) sends, counted from now.
    drop_a: Rc<RefCell<Vec<usize>>>,
    drop_b: Rc<RefCell<Vec<usize>>>,
    /// Datagrams each side has sent (all that reached the link).
    sent_a: Rc<Cell<usize>>,
    sent_b: Rc<Cell<usize>>,
}

fn client(f: impl FnOnce(&mut Conn)) -> Conn {
    let mut c = client_conn();
    c.local_addrs = vec![at(A1, 500), at(A2, 500), at(A6, 500)];
    c.peer_addrs = vec![at(B1, 500)];
    c.mobike.enabled = true;
    f(&mut c);
    c
}

fn gateway(f: impl FnOnce(&mut Conn)) -> Conn {
    let mut c = gateway_conn();
    c.mobike.enabled = true;
    f(&mut c);
    c
}

fn lab(seed: u64, a: Conn, b: Conn) -> Lab {
    let mut net = endpoints(a, b, seed);
    net.a_ips = vec![ip(A1), ip(A2), ip(A6), ip(NAT)];
    let now = net.now;
    net.b.set_own_addrs(now, &[ip(B1), ip(B2), ip(B6)]);
    let dead: Rc<RefCell<Vec<IpAddr>>> = Rc::default();
    let drop_a: Rc<RefCell<Vec<usize>>> = Rc::default();
    let drop_b: Rc<RefCell<Vec<usize>>> = Rc::default();
    let sent_a: Rc<Cell<usize>> = Rc::default();
    let sent_b: Rc<Cell<usize>> = Rc::default();
    let (d, da, db) = (dead.clone(), drop_a.clone(), drop_b.clone());
    let (na, nb) = (sent_a.clone(), sent_b.clone());
    net.filter = Some(Box::new(move |from, t, _| {
        let (n, drops) = match from {
            Side::A => (&na, &da),
            Side::B => (&nb, &db),
        };
        n.set(n.get() + 1);
        let d = d.borrow();
        if d.contains(&t.local.ip()) || d.contains(&t.remote.ip()) {
            return false;
        }
        let mut drops = drops.borrow_mut();
        if let Some(i) = drops.iter().position(|k| *k == n.get()) {
            drops.remove(i);
            return false;
        }
        true
    }));
    let sa_a = establish(&mut net);
    let sa_b = net.b.sa_ids()[0];
    Lab {
        net,
        sa_a,
        sa_b,
        dead,
        drop_a,
        drop_b,
        sent_a,
        sent_b,
    }
}

impl Lab {
    fn path_a(&self) -> (SocketAddr, SocketAddr, bool) {
        self.net.a.path(self.sa_a).unwrap()
    }
    fn path_b(&self) -> (SocketAddr, SocketAddr, bool) {
        self.net.b.path(self.sa_b).unwrap()
    }
    /// Both ends agree: A's local is B's remote and the other way round.
    fn assert_agree(&self) {
        let (la, ra, ea) = self.path_a();
        let (lb, rb, eb) = self.path_b();
        assert_eq!(
            (la, ra, ea),
            (rb, lb, eb),
            "a {:?} b {:?}",
            self.path_a(),
            self.path_b()
        );
    }
    /// A's (or B's) next datagrams numbered in `which` (1 = the next) are lost.
    fn lose(&self, side: Side, which: &[usize]) {
        let (v, sent) = match side {
            Side::A => (&self.drop_a, self.sent_a.get()),
            Side::B => (&self.drop_b, self.sent_b.get()),
        };
        v.borrow_mut().extend(which.iter().map(|k| sent + k));
    }
    fn kill(&self, a: &str) {
        self.dead.borrow_mut().push(ip(a));
    }
    fn revive(&self, a: &str) {
        self.dead.borrow_mut().retain(|x| *x != ip(a));
    }
    fn children(&self) -> (Vec<ChildInfo>, Vec<ChildInfo>) {
        (live(&self.net.ev_a), live(&self.net.ev_b))
    }
    fn path_changes(&self, side: Side) -> usize {
        let ev = match side {
            Side::A => &self.net.ev_a,
            Side::B => &self.net.ev_b,
        };
        ev.iter()
            .filter(|e| matches!(e, Event::PathChanged { .. }))
            .count()
    }
}

#[test]
fn mobike_is_negotiated_with_address_lists_and_ike_moves_to_4500() {
    let l = lab(1, client(|_| {}), gateway(|_| {}));
    assert!(l.net.a.mobike(l.sa_a));
    assert!(l.net.b.mobike(l.sa_b));
    // No NAT, but MOBIKE wants the NAT-T port for IKE from IKE_AUTH on.
    assert_eq!(l.path_a(), (at(A1, 4500), at(B1, 4500), false));
    l.assert_agree();
    let mut net = l.net;
    // The gateway announced its other addresses, the client its own.
    assert_eq!(net.a.peer_addrs(l.sa_a), vec![ip(B1), ip(B2), ip(B6)]);
    assert_eq!(net.b.peer_addrs(l.sa_b), vec![ip(A1), ip(A2), ip(A6)]);
    // Without MOBIKE on the gateway: off on both (the client, not knowing yet,
    // went to 4500 all the same).
    let l = lab(2, client(|_| {}), gateway(|c| c.mobike.enabled = false));
    assert!(!l.net.a.mobike(l.sa_a));
    assert!(!l.net.b.mobike(l.sa_b));
    assert_eq!(l.path_a().1, at(B1, 4500));
    l.assert_agree();
}

#[test]
fn the_candidate_pairs_come_in_preference_order() {
    let mut l = lab(3, client(|_| {}), gateway(|_| {}));
    let c = l.net.a.candidates(l.sa_a);
    // The current pair, then the family in use by the longest common prefix
    // (10.0.1.1/10.0.0.2 share 23 bits, 10.0.0.1/10.0.2.2 22), then IPv6.
    let want: Vec<(SocketAddr, SocketAddr)> = [(A1, B1), (A2, B1), (A1, B2), (A2, B2), (A6, B6)]
        .iter()
        .map(|(x, y)| (at(x, 4500), at(y, 4500)))
        .collect();
    assert_eq!(c, want);
    // Without A1 the current pair goes; A2 comes first.
    let now = l.net.now;
    l.kill(A1);
    l.net.a.set_own_addrs(now, &[ip(A2), ip(A6)]);
    let c = l.net.a.candidates(l.sa_a);
    assert_eq!(c[0], (at(A2, 4500), at(B1, 4500)));
    assert!(c.iter().all(|(x, _)| x.ip() != ip(A1)));
}

#[test]
fn break_before_make_moves_both_ends_in_one_round_trip() {
    let mut l = lab(4, client(|_| {}), gateway(|_| {}));
    let (ca, cb) = l.children();
    let now = l.net.now;
    l.kill(A1);
    l.net.a.set_own_addrs(now, &[ip(A2), ip(A6)]);
    // The outbound leaves the lost address at once, before the answer.
    l.net.collect();
    assert_eq!(l.path_changes(Side::A), 1);
    assert_eq!(l.net.a.counters().mobike_early_switches, 1);
    // Latency 5 ms each way: one round trip.
    assert!(l
        .net
        .run_until(10 * MS, |n| n.b.counters().mobike_moves == 1
            && n.a.counters().mobike_moves == 1));
    assert_eq!(l.path_a(), (at(A2, 4500), at(B1, 4500), false));
    l.assert_agree();
    // The same child SAs: keys, SPIs, nothing renegotiated.
    l.net.run_for(5 * S);
    assert_eq!(l.children(), (ca, cb));
    assert_eq!(l.path_changes(Side::A), 1);
    assert_eq!(l.path_changes(Side::B), 1);
    let ev = l
        .net
        .ev_b
        .iter()
        .find(|e| matches!(e, Event::PathChanged { .. }))
        .unwrap();
    assert_eq!(
        *ev,
        Event::PathChanged {
            sa: l.sa_b,
            local: at(B1, 4500),
            remote: at(A2, 4500),
            encap: false,
            behind_nat: false,
        }
    );
}

#[test]
fn make_before_break_by_command_and_only_the_initiator_decides() {
    let mut l = lab(5, client(|_| {}), gateway(|_| {}));
    let now = l.net.now;
    assert!(!l.net.b.migrate(now, l.sa_b, ip(B2), ip(A2)));
    assert!(l.net.a.migrate(now, l.sa_a, ip(A2), ip(B2)));
    // Until the answer both stay on the old pair.
    assert_eq!(l.path_b().1, at(A1, 4500));
    assert!(l
        .net
        .run_until(10 * MS, |n| n.a.counters().mobike_moves == 1));
    assert_eq!(l.path_a(), (at(A2, 4500), at(B2, 4500), false));
    l.assert_agree();
    // The gateway answered from the new pair.
    let (_, last) = l
        .net
        .wire
        .iter()
        .rev()
        .find(|(s, _)| *s == Side::B)
        .unwrap();
    assert_eq!((last.local, last.remote), (at(B2, 4500), at(A2, 4500)));
    // Families must match.
    let now = l.net.now;
    assert!(!l.net.a.migrate(now, l.sa_a, ip(A6), ip(B1)));
    // And to IPv6 and back.
    assert!(l.net.a.migrate(now, l.sa_a, ip(A6), ip(B6)));
    l.net.run_for(20 * MS);
    assert_eq!(l.path_a(), (at(A6, 4500), at(B6, 4500), false));
    l.assert_agree();
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A1), ip(B1)));
    l.net.run_for(20 * MS);
    assert_eq!(l.path_a(), (at(A1, 4500), at(B1, 4500), false));
    l.assert_agree();
}

#[test]
fn a_lost_update_is_retransmitted_unchanged_on_the_next_pair() {
    let mut l = lab(
        6,
        client(|c| c.retransmit.initial_ms = 100),
        gateway(|_| {}),
    );
    let now = l.net.now;
    // A1 goes; the update's first copy (to A2 -> B1) is lost.
    l.kill(A1);
    l.net.a.set_own_addrs(now, &[ip(A2)]);
    let wire_before = l.net.wire.len();
    l.lose(Side::A, &[1]);
    assert!(l.net.run_until(S, |n| n.b.counters().mobike_moves >= 1
        && n.a.counters().mobike_moves >= 1));
    l.net.run_for(S);
    l.assert_agree();
    assert_eq!(l.path_a().0, at(A2, 4500));
    // The retransmission carried the very same bytes, to the next pair.
    let sent: Vec<&Transmit> = l.net.wire[wire_before..]
        .iter()
        .filter(|(s, _)| *s == Side::A)
        .map(|(_, t)| t)
        .collect();
    assert!(sent.len() >= 2, "{sent:?}");
    assert_eq!(
        (sent[0].local, sent[0].remote),
        (at(A2, 4500), at(B2, 4500))
    );
    // The first copy was lost: its twin went on the next pair. That pair's NAT-D
    // did not match, so a second update for it followed.
    assert_ne!(sent[0].remote, at(B1, 4500));
    assert_eq!(l.net.a.counters().mobike_moves, 1);
}

#[test]
fn a_lost_response_is_resent_from_the_cache_and_the_move_happens_once() {
    let mut l = lab(
        7,
        client(|c| c.retransmit.initial_ms = 100),
        gateway(|_| {}),
    );
    let now = l.net.now;
    l.lose(Side::B, &[1]);
    assert!(l.net.a.migrate(now, l.sa_a, ip(A2), ip(B1)));
    l.net.run_for(S);
    assert_eq!(l.net.b.counters().resent_responses, 1);
    assert_eq!(l.net.b.counters().mobike_updates_received, 1);
    assert_eq!(l.net.a.counters().mobike_moves, 1);
    assert_eq!(l.net.b.counters().mobike_moves, 1);
    l.assert_agree();
    assert_eq!(l.path_a().0, at(A2, 4500));
}

#[test]
fn an_address_change_during_an_update_starts_over() {
    let mut l = lab(8, client(|_| {}), gateway(|_| {}));
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A2), ip(B1)));
    // Before the answer (10 ms round trip) A2 goes away.
    l.net.run_for(2 * MS);
    let now = l.net.now;
    l.kill(A2);
    l.net.a.set_own_addrs(now, &[ip(A1), ip(A6)]);
    l.net.run_for(S);
    assert_eq!(l.net.a.counters().mobike_stale_responses, 1);
    // The stale answer moved nothing on A; the second update put both on A1.
    assert_eq!(l.path_a().0, at(A1, 4500));
    l.assert_agree();
}

/// A NAT in front of A2: A2:4500 becomes 192.0.2.1:40000.
fn nat_on_a2(net: &mut Net, public_port: Rc<RefCell<u16>>) {
    net.rewrite = Some(Box::new(move |from, t| {
        let port = *public_port.borrow();
        match from {
            Side::A if t.local.ip() == ip(A2) => t.local = at(NAT, port),
            Side::B if t.remote.ip() == ip(NAT) => t.remote = at(A2, 4500),
            _ => {}
        }
    }));
}

#[test]
fn a_nat_on_the_new_path_turns_encapsulation_on_and_off_again() {
    let mut l = lab(9, client(|_| {}), gateway(|_| {}));
    nat_on_a2(&mut l.net, Rc::new(RefCell::new(40000)));
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A2), ip(B1)));
    l.net.run_for(100 * MS);
    assert_eq!(l.path_a(), (at(A2, 4500), at(B1, 4500), true));
    assert_eq!(l.path_b(), (at(B1, 4500), at(NAT, 40000), true));
    // Only the end behind the NAT keeps its mapping alive (RFC 3948 4).
    assert_eq!(last_behind_nat(&l.net.ev_a), Some(true));
    assert_eq!(last_behind_nat(&l.net.ev_b), Some(false));
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A1), ip(B1)));
    l.net.run_for(100 * MS);
    assert_eq!(l.path_a(), (at(A1, 4500), at(B1, 4500), false));
    assert_eq!(last_behind_nat(&l.net.ev_a), Some(false));
    l.assert_agree();
}

/// `behind_nat` of the last path event (IkeUp or PathChanged).
fn last_behind_nat(ev: &[Event]) -> Option<bool> {
    ev.iter().rev().find_map(|e| match e {
        Event::IkeUp { behind_nat, .. } | Event::PathChanged { behind_nat, .. } => {
            Some(*behind_nat)
        }
        _ => None,
    })
}

#[test]
fn forced_encapsulation_holds_for_the_life_of_the_sa() {
    // The client forces UDP encapsulation (a fake NAT_DETECTION_SOURCE_IP in
    // IKE_SA_INIT), the gateway does not. Every later NAT-D from the client (DPD,
    // UPDATE_SA_ADDRESSES) must say the same, or the gateway concludes the NAT went
    // away and drops encapsulation (RFC 7296 2.23, RFC 4555 3.9).
    let mut l = lab(
        30,
        client(|c| {
            c.force_encap = true;
            c.dpd.interval_s = 1;
        }),
        gateway(|_| {}),
    );
    assert_eq!(l.path_b(), (at(B1, 4500), at(A1, 4500), true));
    // DPD with NAT-D, a few rounds.
    l.net.run_for(5 * S);
    assert!(l.net.a.counters().tx >= 4);
    assert!(l.path_b().2);
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A2), ip(B2)));
    l.net.run_for(100 * MS);
    assert_eq!(l.path_a(), (at(A2, 4500), at(B2, 4500), true));
    assert_eq!(l.path_b(), (at(B2, 4500), at(A2, 4500), true));
    // The gateway answers with real hashes: the client knows no NAT is in front of
    // it, so it sends no keepalives, but keeps encapsulating.
    assert_eq!(last_behind_nat(&l.net.ev_a), Some(false));
    // And the gateway moves on the initiator's break-before-make too.
    let now = l.net.now;
    l.kill(A2);
    l.net.a.set_own_addrs(now, &[ip(A1), ip(A6)]);
    l.net.run_for(100 * MS);
    assert_eq!(l.path_b().1.ip(), ip(A1));
    assert!(l.path_b().2, "{:?}", l.path_b());
    l.assert_agree();
}

#[test]
fn disallownat_refuses_the_nat_pair_and_the_sa_stays() {
    let mut l = lab(
        10,
        client(|c| c.mobike.disallow_nat = true),
        gateway(|_| {}),
    );
    nat_on_a2(&mut l.net, Rc::new(RefCell::new(40000)));
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A2), ip(B1)));
    l.net.run_for(100 * MS);
    assert_eq!(l.net.b.counters().mobike_refused, 1);
    assert_eq!(l.path_a(), (at(A1, 4500), at(B1, 4500), false));
    l.assert_agree();
    // Break-before-make with only NAT pairs and one clean pair left: the clean one.
    let now = l.net.now;
    l.kill(A1);
    l.net.a.set_own_addrs(now, &[ip(A2), ip(A6)]);
    l.net.run_for(S);
    assert_eq!(l.path_a().0, at(A6, 4500));
    l.assert_agree();
    assert!(!l.path_a().2);
    assert!(l.net.b.counters().mobike_refused >= 2);
}

#[test]
fn disallownat_is_not_fooled_by_a_gateway_that_forces_encapsulation() {
    // The gateway forces UDP encapsulation (the udp backend does): its NAT_DETECTION_
    // SOURCE_IP never matches, on every answer. That is no NAT between us; the client
    // with NO_NATS_ALLOWED must still take a direct pair, and refuse the NATed one.
    let mut l = lab(
        31,
        client(|c| {
            c.mobike.disallow_nat = true;
            c.force_encap = true;
        }),
        gateway(|c| c.force_encap = true),
    );
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A1), ip(B2)));
    l.net.run_for(100 * MS);
    assert_eq!(l.path_a(), (at(A1, 4500), at(B2, 4500), true));
    l.assert_agree();
    assert_eq!(l.net.a.counters().mobike_refused, 0);
    nat_on_a2(&mut l.net, Rc::new(RefCell::new(40000)));
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A2), ip(B1)));
    l.net.run_for(100 * MS);
    assert_eq!(l.net.b.counters().mobike_refused, 1);
    assert_eq!(l.path_a(), (at(A1, 4500), at(B2, 4500), true));
    // Break-before-make off A1: the direct IPv6 pair, not the NAT.
    let now = l.net.now;
    l.kill(A1);
    l.net.a.set_own_addrs(now, &[ip(A2), ip(A6)]);
    l.net.run_for(S);
    assert_eq!(l.path_a().0, at(A6, 4500));
    l.assert_agree();
}

#[test]
fn an_unacceptable_pair_is_refused_and_the_next_one_taken() {
    // The gateway's host has B2, but the connection serves only B1 and B6; the client
    // knows B2 from its own configuration.
    let mut l = lab(
        18,
        client(|c| c.peer_addrs = vec![at(B1, 500), at(B2, 500)]),
        gateway(|c| c.local_addrs = vec![at(B1, 500), at(B6, 500)]),
    );
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A1), ip(B2)));
    l.net.run_for(100 * MS);
    assert_eq!(l.net.b.counters().mobike_refused, 1);
    assert_eq!(l.net.a.counters().mobike_refused, 1);
    assert_eq!(l.net.b.counters().mobike_moves, 0);
    // The path in use still works: the SA stays.
    assert_eq!(l.path_a(), (at(A1, 4500), at(B1, 4500), false));
    l.assert_agree();
    // A1 and B1 go: the update to (A2, B1) is lost, the probe on (A2, B2) is refused,
    // and the SA ends on the pair left, IPv6.
    let now = l.net.now;
    l.kill(A1);
    l.kill(B1);
    l.net.a.set_own_addrs(now, &[ip(A2), ip(A6)]);
    l.net.run_for(5 * S);
    assert_eq!(l.path_a(), (at(A6, 4500), at(B6, 4500), false));
    l.assert_agree();
    assert_eq!(l.net.b.counters().mobike_refused, 2);
    assert_eq!(l.net.b.counters().mobike_moves, 1);
    assert_eq!(l.net.b.established(), 1);
}

#[test]
fn a_nat_between_at_ike_auth_with_disallownat_fails_the_sa() {
    let mut net = endpoints(
        client(|c| {
            c.mobike.disallow_nat = true;
            c.local_addrs = vec![at(A2, 500)];
        }),
        gateway(|_| {}),
        11,
    );
    net.a_ips = vec![ip(A2), ip(NAT)];
    net.rewrite = Some(Box::new(|from, t| match from {
        Side::A => t.local = at(NAT, 40000 + t.local.port() % 10),
        Side::B => t.remote = at(A2, if t.remote.port() == 40000 { 500 } else { 4500 }),
    }));
    net.a.initiate(net.now, 0, None).unwrap();
    net.run_for(5 * S);
    assert_eq!(net.b.established(), 0);
    assert_eq!(net.a.established(), 0);
    assert_eq!(net.b.counters().mobike_refused, 1);
}

#[test]
fn the_return_routability_check_comes_before_the_move() {
    let mut l = lab(12, client(|_| {}), gateway(|c| c.mobike.rr_check = true));
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A2), ip(B1)));
    // The update's round trip, then B's COOKIE2 round trip.
    l.net.run_for(12 * MS);
    assert_eq!(l.net.a.counters().mobike_moves, 1);
    assert_eq!(l.net.b.counters().mobike_moves, 0);
    l.net.run_for(10 * MS);
    assert_eq!(l.net.b.counters().mobike_moves, 1);
    l.assert_agree();
    // A check that goes unanswered leaves B where it was.
    let mut l = lab(
        13,
        client(|_| {}),
        gateway(|c| {
            c.mobike.rr_check = true;
            c.retransmit.initial_ms = 100;
            c.retransmit.tries = 3;
        }),
    );
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A2), ip(B1)));
    l.net.run_for(6 * MS);
    // B's answer and its COOKIE2 request are on their way; every answer A gives
    // to the check is lost.
    l.lose(Side::A, &[1, 2, 3, 4]);
    l.net.run_for(5 * S);
    assert_eq!(l.net.b.counters().mobike_rr_failed, 1);
    assert_eq!(l.path_b().1, at(A1, 4500));
    assert_eq!(l.net.b.established(), 1);
}

#[test]
fn dpd_failure_on_the_current_path_tests_the_others() {
    let mut l = lab(
        14,
        client(|c| {
            c.dpd.interval_s = 1;
            c.dpd.timeout_s = 10;
            c.retransmit.initial_ms = 200;
        }),
        gateway(|_| {}),
    );
    let (ca, cb) = l.children();
    // The path A1 <-> B1 blackholes; the addresses stay.
    let blackhole = Rc::new(RefCell::new(true));
    let bh = blackhole.clone();
    let mut inner = l.net.filter.take().unwrap();
    l.net.filter = Some(Box::new(move |from, t, now| {
        let pair = [t.local.ip(), t.remote.ip()];
        if *bh.borrow() && pair.contains(&ip(A1)) && pair.contains(&ip(B1)) {
            return false;
        }
        inner(from, t, now)
    }));
    let start = l.net.now;
    assert!(l.net.run_until(5 * S, |n| n.a.counters().mobike_moves == 1
        && n.b.counters().mobike_moves == 1));
    // DPD after 1 s of silence, a retransmission 200 ms later on the next pair.
    assert!(
        l.net.now - start < 1500 * MS,
        "{} ms",
        (l.net.now - start) / MS
    );
    assert_ne!(l.path_a(), (at(A1, 4500), at(B1, 4500), false));
    l.assert_agree();
    l.net.run_for(10 * S);
    assert_eq!(l.net.a.established(), 1);
    assert_eq!(l.children(), (ca, cb));
}

#[test]
fn the_responders_own_dpd_follows_the_move_instead_of_dying_on_the_old_path() {
    // Both ends run DPD; the path blackholes, so both start a liveness check on it.
    // The client finds the other pair and moves the SA; the gateway's check, sent on
    // the dead path before the move, must follow it rather than time out there.
    let dpd = |c: &mut Conn| {
        c.dpd.interval_s = 1;
        c.dpd.timeout_s = 3;
        c.retransmit.initial_ms = 200;
    };
    let mut l = lab(17, client(dpd), gateway(dpd));
    let (ca, cb) = l.children();
    let mut inner = l.net.filter.take().unwrap();
    l.net.filter = Some(Box::new(move |from, t, now| {
        let pair = [t.local.ip(), t.remote.ip()];
        if pair.contains(&ip(A1)) && pair.contains(&ip(B1)) {
            return false;
        }
        inner(from, t, now)
    }));
    assert!(l.net.run_until(5 * S, |n| n.b.counters().mobike_moves == 1));
    l.net.run_for(10 * S);
    assert_eq!((l.net.a.established(), l.net.b.established()), (1, 1));
    assert_eq!(l.children(), (ca, cb));
    l.assert_agree();
    assert_ne!(l.path_a(), (at(A1, 4500), at(B1, 4500), false));
}

#[test]
fn a_nat_rebinding_the_port_is_noticed_by_dpd_and_followed() {
    let mut l = lab(15, client(|c| c.dpd.interval_s = 1), gateway(|_| {}));
    let port = Rc::new(RefCell::new(40000));
    nat_on_a2(&mut l.net, port.clone());
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A2), ip(B1)));
    l.net.run_for(100 * MS);
    assert_eq!(l.path_b().1, at(NAT, 40000));
    // The NAT forgets the mapping and picks another port.
    *port.borrow_mut() = 40123;
    // B keeps sending to the old port until told: the source of a request alone
    // moves nothing (no NAT-T dynamic update under MOBIKE).
    l.net.run_for(2500 * MS);
    assert_eq!(l.path_b().1, at(NAT, 40123));
    assert!(l.net.b.counters().mobike_updates_received >= 2);
    l.revive(A1);
}

#[test]
fn the_responder_never_moves_on_a_mere_change_of_source() {
    let mut l = lab(16, client(|c| c.dpd.interval_s = 1), gateway(|_| {}));
    // A's packets from A1 now arrive from A2:4501 (a NAT appearing, not an update),
    // and what B sends there goes back to A1.
    l.net.rewrite = Some(Box::new(|from, t| match from {
        Side::A if t.local.ip() == ip(A1) => t.local = at(A2, 4501),
        Side::B if t.remote == at(A2, 4501) => t.remote = at(A1, 4500),
        _ => {}
    }));
    l.net.run_for(5 * S);
    assert!(
        l.net.b.counters().rx >= 4,
        "DPD kept going: {:?}",
        l.net.b.counters()
    );
    assert_eq!(l.path_b().1, at(A1, 4500));
    assert_eq!(l.net.b.counters().mobike_moves, 0);
}

#[test]
fn an_ike_rekey_keeps_mobike_and_the_path() {
    let mut l = lab(17, client(|_| {}), gateway(|_| {}));
    let now = l.net.now;
    assert!(l.net.a.migrate(now, l.sa_a, ip(A2), ip(B2)));
    l.net.run_for(20 * MS);
    let now = l.net.now;
    assert!(l.net.a.rekey_ike(now, l.sa_a));
    l.net.run_for(S);
    let new_a = l.net.a.sa_ids()[0];
    assert_ne!(new_a, l.sa_a);
    assert!(l.net.a.mobike(new_a));
    assert_eq!(
        l.net.a.path(new_a).unwrap(),
        (at(A2, 4500), at(B2, 4500), false)
    );
    let now = l.net.now;
    assert!(l.net.a.migrate(now, new_a, ip(A1), ip(B1)));
    l.net.run_for(20 * MS);
    let new_b = l.net.b.sa_ids()[0];
    assert_eq!(l.net.b.path(new_b).unwrap().1, at(A1, 4500));
}

#[test]
fn address_lists_follow_each_change_newest_wins() {
    let mut l = lab(18, client(|_| {}), gateway(|_| {}));
    let now = l.net.now;
    // The gateway loses B2: it tells the client, whose list loses it.
    l.net.b.set_own_addrs(now, &[ip(B1), ip(B6)]);
    l.net.run_for(20 * MS);
    assert_eq!(l.net.a.peer_addrs(l.sa_a), vec![ip(B1), ip(B6)]);
    let now = l.net.now;
    l.net.b.set_own_addrs(now, &[ip(B1)]);
    l.net.run_for(20 * MS);
    assert_eq!(l.net.a.peer_addrs(l.sa_a), vec![ip(B1)]);
    // The client gains nothing new: no exchange. It loses A6: it announces.
    let now = l.net.now;
    let wire = l.net.wire.len();
    l.net.a.set_own_addrs(now, &[ip(A1), ip(A2)]);
    l.net.run_for(20 * MS);
    assert_eq!(l.net.b.peer_addrs(l.sa_b), vec![ip(A1), ip(A2)]);
    assert!(l.net.wire.len() > wire);
}

#[test]
fn a_gateway_that_loses_its_address_announces_from_another_and_the_client_follows() {
    let mut l = lab(19, client(|_| {}), gateway(|_| {}));
    let now = l.net.now;
    l.kill(B1);
    l.net.b.set_own_addrs(now, &[ip(B2), ip(B6)]);
    assert!(l.net.run_until(S, |n| n.a.counters().mobike_moves == 1
        && n.b.counters().mobike_moves == 1));
    assert_eq!(l.path_a(), (at(A1, 4500), at(B2, 4500), false));
    l.assert_agree();
}

#[test]
fn pairs_without_a_route_are_tried_last() {
    let mut l = lab(20, client(|_| {}), gateway(|_| {}));
    // The host has no route from A2 to B1 (say, B1's subnet went with A1).
    l.net
        .a
        .set_route_oracle(Box::new(|from, to| !(from == ip(A2) && to == ip(B1))));
    let now = l.net.now;
    l.kill(A1);
    l.net.a.set_own_addrs(now, &[ip(A2), ip(A6)]);
    assert_eq!(l.net.a.candidates(l.sa_a)[0], (at(A2, 4500), at(B2, 4500)));
    // One round trip: the first pair tried is the one that works.
    assert!(l
        .net
        .run_until(10 * MS, |n| n.a.counters().mobike_moves == 1));
    assert_eq!(l.path_a(), (at(A2, 4500), at(B2, 4500), false));
    l.assert_agree();
}
