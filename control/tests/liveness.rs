//! Liveness checks (RFC 7296 2.4) between two endpoints that both run them: how many
//! exchanges an idle tunnel carries, when they go out, and that a peer that stops
//! answering is still found. Virtual clock, in-memory link.

mod common;
use common::*;
use std::cell::RefCell;
use std::rc::Rc;

/// The liveness grid of the IKE core (`timers::DPD_GRID_NS`).
const GRID: u64 = 100 * MS;

/// Both ends check every `interval_s`; IKE and child lifetimes off so that only
/// liveness checks are left on an idle tunnel.
fn idle_pair(interval_s: u64, seed: u64) -> Net {
    let mut a = client_conn();
    let mut b = gateway_conn();
    for c in [&mut a, &mut b] {
        c.dpd.interval_s = interval_s;
        c.dpd.timeout_s = 20;
        c.ike_lifetime.rekey_s = 0;
        c.ike_lifetime.life_s = 0;
        c.child_lifetime.rekey_s = 0;
        c.child_lifetime.life_s = 0;
    }
    endpoints(a, b, seed)
}

/// Records the side and time of every INFORMATIONAL request that goes on the link.
fn record_checks(net: &mut Net) -> Rc<RefCell<Vec<(Side, u64)>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    net.filter = Some(Box::new(move |from, t, now| {
        let h = header::Packet::new_checked(&t.data[..])
            .ok()
            .and_then(|p| HeaderRepr::parse(&p).ok());
        if let Some(h) = h {
            if h.exchange_type == ExchangeType::INFORMATIONAL && !h.response {
                log.borrow_mut().push((from, now));
            }
        }
        true
    }));
    seen
}

#[test]
fn both_ends_checking_carry_one_exchange_per_interval() {
    let mut net = idle_pair(30, 71);
    establish(&mut net);
    let checks = record_checks(&mut net);
    net.run_for(600 * S);
    let checks = checks.borrow();
    // 600 s at 30 s: 20 checks in all, not 20 from each end; once one end's check has
    // reset the other's timer, the other leaves the checking to it.
    assert!(
        (19..=21).contains(&checks.len()),
        "{} checks: {:?}",
        checks.len(),
        *checks
    );
    let from_a = checks.iter().filter(|(s, _)| *s == Side::A).count();
    assert!(
        from_a <= 1 || from_a >= checks.len() - 1,
        "both ends keep checking: {:?}",
        *checks
    );
    assert_eq!(net.a.sa_count(), 1);
    assert_eq!(net.b.sa_count(), 1);
}

#[test]
fn checks_go_out_on_the_grid_and_at_most_one_step_late() {
    let mut net = idle_pair(5, 72);
    establish(&mut net);
    let checks = record_checks(&mut net);
    let start = net.now;
    net.run_for(60 * S);
    let checks = checks.borrow();
    assert!(checks.len() >= 10, "{:?}", *checks);
    for (_, at) in checks.iter() {
        assert_eq!(at % GRID, 0, "a check off the grid at {at}");
    }
    // Never later than interval + a step (+ the defer to the peer's checks, 2 steps).
    let mut last = start;
    for (_, at) in checks.iter() {
        assert!(
            at - last <= 5 * S + 3 * GRID + 2 * net.latency,
            "{last} -> {at}"
        );
        last = *at;
    }
}

#[test]
fn an_end_whose_peer_stops_checking_checks_itself_and_finds_it_dead() {
    let mut net = idle_pair(5, 73);
    establish(&mut net);
    let checks = record_checks(&mut net);
    net.run_for(30 * S);
    let checker = checks.borrow().last().map(|(s, _)| *s).expect("checks");
    let other = match checker {
        Side::A => Side::B,
        Side::B => Side::A,
    };
    // The checking end goes silent (it died): the other end, which has left the
    // checks to it, notices within its interval, the defer and the DPD timeout.
    let dead_at = net.now;
    let log = checks.clone();
    let mut inner = net.filter.take().expect("recording filter");
    net.filter = Some(Box::new(move |from, t, now| {
        inner(from, t, now) && from != checker
    }));
    let down = |n: &Net| match other {
        Side::A => !ike_down(&n.ev_a).is_empty(),
        Side::B => !ike_down(&n.ev_b).is_empty(),
    };
    assert!(
        net.run_until(60 * S, down),
        "never noticed: {:?}",
        log.borrow()
    );
    let ev = match other {
        Side::A => &net.ev_a,
        Side::B => &net.ev_b,
    };
    assert_eq!(ike_down(ev), vec![DownReason::PeerDead]);
    let took = net.now - dead_at;
    assert!(took <= 5 * S + 3 * GRID + 20 * S + S, "{took}");
    assert!(
        log.borrow()
            .iter()
            .any(|(s, at)| *s == other && *at > dead_at),
        "the other end never checked"
    );
}
