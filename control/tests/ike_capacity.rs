//! A gateway that runs out of room (dataplane slots, pool addresses) says so, and a
//! client that gets no tunnel retries with backoff rather than keeping an IKE SA that
//! carries nothing; an IKE SA without children does not outlive a vanished peer.
//! Over the in-memory link with a virtual clock, the client driven by
//! `control::client::Client` as `mobiked client` drives it.

mod common;
use common::*;

use mobiked_control::client::{Client, RETRY_FIRST_NS};

/// Client connections `c0.test`, `c1.test`, ... (one IKE SA each, distinct
/// identities so that INITIAL_CONTACT does not replace one by the next).
fn clients(n: usize, vip: bool) -> Vec<Conn> {
    (0..n)
        .map(|i| {
            let mut c = client_conn();
            c.name = format!("c{i}");
            c.local_id = Identity::parse(&format!("c{i}.test")).unwrap();
            if vip {
                c.request_vip4 = true;
                c.local_ts = Vec::new().into();
            }
            c
        })
        .collect()
}

fn net_with(a: Vec<Conn>, b: Conn, cfg_b: EndpointConfig, seed: u64) -> Net {
    let ea = Endpoint::new(
        EndpointConfig::default(),
        a,
        Box::new(SeededRandom::new(seed)),
    );
    let eb = Endpoint::new(cfg_b, vec![b], Box::new(SeededRandom::new(seed ^ 0xb0b)));
    Net::new(ea, eb)
}

fn room_for(children: usize) -> EndpointConfig {
    EndpointConfig {
        max_child_sas: children,
        ..EndpointConfig::default()
    }
}

/// Runs the link for `d` with the client initiating and reacting to A's events, as
/// the engine loop does. Calls `each` after every step.
fn drive(net: &mut Net, client: &mut Client, d: u64, mut each: impl FnMut(&Net)) {
    let until = net.now + d;
    let mut seen = net.ev_a.len();
    for _ in 0..1_000_000 {
        client.start_due(&mut net.a, net.now);
        let bound = client
            .next_deadline()
            .map_or(until, |t| t.clamp(net.now, until));
        let moved = net.step(bound);
        while seen < net.ev_a.len() {
            let ev = net.ev_a[seen].clone();
            seen += 1;
            let now = net.now;
            client.on_event(&mut net.a, &ev, now, false);
        }
        each(net);
        if !moved && net.now >= until {
            return;
        }
    }
    panic!("drive: more than a million steps");
}

fn failed_with(ev: &[Event], want: FailReason) -> usize {
    ev.iter()
        .filter(|e| matches!(e, Event::ChildFailed { reason, .. } if *reason == want))
        .count()
}

#[test]
fn a_full_dataplane_refuses_new_children_with_no_additional_sas() {
    let mut net = net_with(clients(3, false), gateway_conn(), room_for(2), 1);
    for i in 0..3 {
        net.a.initiate(net.now, i, None).unwrap();
    }
    net.run_for(5 * S);
    // Three IKE SAs, two child SAs: the third child is refused in IKE_AUTH (RFC 7296
    // 3.10.1), not negotiated and then never installed.
    assert_eq!((ike_up(&net.ev_a), ike_up(&net.ev_b)), (3, 3));
    assert_eq!(live(&net.ev_b).len(), 2);
    assert_eq!(net.b.child_count(), 2);
    assert_paired(&live(&net.ev_a), &live(&net.ev_b));
    assert_eq!(failed_with(&net.ev_a, FailReason::PeerError(35)), 1);
    assert_eq!(failed_with(&net.ev_b, FailReason::Refused(35)), 1);
    assert_eq!(net.b.counters().child_refused_capacity, 1);
    // An additional child on a full gateway is refused as well.
    let sa = net.a.sa_ids()[0];
    assert!(net.a.create_child(net.now, sa));
    net.run_for(S);
    assert_eq!(net.b.child_count(), 2);
    assert_eq!(net.b.counters().child_refused_capacity, 2);
    // Rekeys of existing children still go through: room is kept for them.
    let with_child = *net
        .a
        .sa_ids()
        .iter()
        .find(|s| !net.a.children(**s).is_empty())
        .unwrap();
    let child = net.a.children(with_child)[0];
    assert!(net.a.rekey_child(net.now, with_child, child));
    net.run_for(S);
    assert_eq!(net.b.child_count(), 2);
    assert_eq!(net.b.counters().child_refused_capacity, 2);
    assert!(!net.a.children(with_child).contains(&child), "rekeyed");
}

#[test]
fn the_client_drops_an_ike_sa_without_child_and_retries_until_there_is_room() {
    let mut net = net_with(clients(3, false), gateway_conn(), room_for(2), 2);
    let mut client = Client::new(net.a.conns(), net.now);
    let mut most = 0;
    drive(&mut net, &mut client, 500 * MS, |n| {
        most = most.max(n.b.child_count())
    });
    assert_eq!(most, 2, "never more children than room");
    assert_eq!(net.b.child_count(), 2);
    // The refused one is deleted on both ends and waits for its retry.
    assert_eq!((net.a.sa_count(), net.b.sa_count()), (2, 2));
    assert_eq!(client.counters.childless, 1);
    assert_eq!(client.waiting(), 1);
    let first_retry = client.next_deadline().unwrap();
    // It keeps trying with a growing wait while the gateway stays full.
    drive(&mut net, &mut client, 10 * S, |n| {
        most = most.max(n.b.child_count())
    });
    assert_eq!(most, 2);
    assert!(client.counters.childless >= 3, "{:?}", client.counters);
    assert!(net.b.counters().child_refused_capacity >= 3);
    let gap = client.next_deadline().unwrap() - net.now;
    assert!(gap > RETRY_FIRST_NS, "backoff grows: next in {gap} ns");
    assert!(first_retry > 0);
    // A tunnel that goes (its client deletes it) comes back after its first,
    // short retry; the gateway never holds more than its room, and no childless
    // IKE SA stays behind on either end.
    let victim = *net
        .a
        .sa_ids()
        .iter()
        .find(|s| !net.a.children(**s).is_empty())
        .unwrap();
    assert!(net.a.delete(net.now, victim));
    drive(&mut net, &mut client, 70 * S, |n| {
        most = most.max(n.b.child_count())
    });
    assert_eq!(most, 2);
    assert_eq!(net.b.child_count(), 2);
    assert!(
        net.b.sa_count() <= 3,
        "at most the one being refused right now"
    );
    assert_paired(&live(&net.ev_a), &live(&net.ev_b));
    assert!(client.counters.childless >= 5, "{:?}", client.counters);
}

fn pool_gateway(size: u32) -> Conn {
    let mut c = gateway_conn();
    c.remote_ts = Vec::new().into();
    c.pools = vec![PoolConf {
        name: "p".into(),
        start: "10.3.0.1".parse().unwrap(),
        size,
        dns: Vec::new(),
    }]
    .into();
    c
}

#[test]
fn an_exhausted_pool_is_counted_and_the_client_retries_with_backoff() {
    let mut net = net_with(
        clients(3, true),
        pool_gateway(2),
        EndpointConfig::default(),
        3,
    );
    let mut client = Client::new(net.a.conns(), net.now);
    drive(&mut net, &mut client, 40 * S, |_| {});
    assert_eq!(net.b.leased(), 2);
    assert_eq!(net.b.child_count(), 2);
    // Each try of the third: INTERNAL_ADDRESS_FAILURE, counted on the gateway,
    // the IKE SA deleted by the client (none piles up on the gateway).
    let tries = net.b.counters().pool_exhausted;
    assert!(
        (3..=7).contains(&tries),
        "1 s, 2, 4, 8, 16 s apart: {tries}"
    );
    assert_eq!(
        failed_with(&net.ev_a, FailReason::PeerError(36)) as u64,
        tries
    );
    assert_eq!(
        failed_with(&net.ev_b, FailReason::Refused(36)) as u64,
        tries
    );
    assert_eq!(client.counters.childless, tries);
    assert_eq!(net.b.sa_count(), 2);
}

#[test]
fn a_childless_ike_sa_whose_peer_vanished_is_deleted_after_its_timeout() {
    // The client's selectors are outside what the gateway allows: its IKE SA comes
    // up without a child. Then the client disappears without a DELETE, and DPD is
    // off on both ends.
    let mut a = client_conn();
    a.local_ts = vec![sel("10.9.0.0/24")].into();
    let mut b = gateway_conn();
    b.childless_timeout_ms = 30_000;
    let mut net = endpoints(a, b, 4);
    establish(&mut net);
    net.run_for(S);
    assert_eq!(net.b.child_count(), 0);
    assert_eq!(failed_with(&net.ev_b, FailReason::Refused(38)), 1);
    net.filter = Some(Box::new(|_, _, _| false));
    net.run_for(25 * S);
    assert_eq!(net.b.sa_count(), 1, "not before its time");
    // Its DELETE goes unanswered: the SA goes after the retransmissions (about
    // 47 s with the default schedule).
    net.run_for(60 * S);
    assert_eq!(net.b.sa_count(), 0, "deleted; the DELETE went unanswered");
    assert_eq!(net.b.counters().childless_deleted, 1);
    assert!(ike_down(&net.ev_b).contains(&DownReason::Deleted));
}

#[test]
fn childless_timeout_zero_keeps_it_and_a_child_keeps_it_alive() {
    let mut a = client_conn();
    a.local_ts = vec![sel("10.9.0.0/24")].into();
    a.childless_timeout_ms = 0;
    let mut b = gateway_conn();
    b.childless_timeout_ms = 0;
    let mut net = endpoints(a, b, 5);
    establish(&mut net);
    net.run_for(600 * S);
    assert_eq!(net.b.sa_count(), 1);
    assert_eq!(net.b.counters().childless_deleted, 0);
    // With children, the default timeout never fires; once they are all deleted,
    // it does.
    let mut net = endpoints(client_conn(), gateway_conn(), 6);
    let sa = establish(&mut net);
    net.run_for(600 * S);
    assert_eq!((net.a.sa_count(), net.b.sa_count()), (1, 1));
    let child = net.a.children(sa)[0];
    assert!(net.a.drop_child(net.now, sa, child));
    net.run_for(S);
    assert_eq!(net.b.child_count(), 0);
    assert_eq!(net.b.sa_count(), 1);
    net.run_for(61 * S);
    assert_eq!((net.a.sa_count(), net.b.sa_count()), (0, 0));
    assert_eq!(
        net.a.counters().childless_deleted + net.b.counters().childless_deleted,
        1
    );
}
