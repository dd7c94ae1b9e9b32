//! The IKE SA state machines driven over in-memory links with a virtual clock: two
//! endpoints (and spoofing third parties) exchange real, encrypted IKE messages. No
//! sockets and no sleeps; every run is deterministic for its seed.

mod common;

use common::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

#[test]
fn ike_sa_init_and_auth_make_a_child_both_ends_agree_on() {
    let mut net = endpoints(client_conn(), gateway_conn(), 1);
    establish(&mut net);
    let (a, b) = (live(&net.ev_a), live(&net.ev_b));
    assert_eq!(a.len(), 1);
    assert_paired(&a, &b);
    // Narrowed to the intersection of both ends' selectors.
    assert_eq!(a[0].local_ts.to_vec(), vec![sel("10.1.0.0/24")]);
    assert_eq!(a[0].remote_ts.to_vec(), vec![sel("10.2.0.0/24")]);
    assert_eq!(b[0].local_ts.to_vec(), vec![sel("10.2.0.0/24")]);
    assert_eq!(b[0].remote_ts.to_vec(), vec![sel("10.1.0.0/24")]);
    // Two exchanges, four messages, nothing else.
    assert_eq!(
        exchanges(&net),
        vec![
            (Side::A, ExchangeType::IKE_SA_INIT.0, false),
            (Side::B, ExchangeType::IKE_SA_INIT.0, true),
            (Side::A, ExchangeType::IKE_AUTH.0, false),
            (Side::B, ExchangeType::IKE_AUTH.0, true),
        ]
    );
    // No NAT, nothing forced: IKE stays on port 500, and neither end encapsulates.
    assert!(net.wire.iter().all(|(_, t)| t.remote.port() == 500));
    for ev in [&net.ev_a, &net.ev_b] {
        assert!(
            matches!(ev[0], Event::IkeUp { encap: false, .. }),
            "{:?}",
            ev[0]
        );
    }
    match &net.ev_a[0] {
        Event::IkeUp {
            encap,
            peer_id,
            initiator,
            ..
        } => {
            assert!(!encap);
            assert!(initiator);
            assert_eq!(peer_id, &Some(Identity::parse("b.test").unwrap()));
        }
        e => panic!("first event {e:?}"),
    }
    assert_eq!(net.a.half_open(), 0);
    assert_eq!(net.b.half_open(), 0);
    assert_eq!(net.a.initiating(), 0);
}

/// Sends one packet each way through the dataplane's ESP with the keys both ends
/// derived: the child SAs work, not only agree.
fn esp_round_trip(a: &ChildInfo, b: &ChildInfo) {
    use dataplane::buf::PacketBuf;
    use dataplane::esp;
    use dataplane::replay::ReplayWindow;
    use shared::sa::EspKey;
    assert_eq!(a.cipher, b.cipher);
    for (from, to) in [(a, b), (b, a)] {
        let out = EspKey::new(from.cipher, &from.key_out).unwrap();
        let inb = EspKey::new(to.cipher, &to.key_in).unwrap();
        let inner: Vec<u8> = (0..77u8).collect();
        let mut buf = PacketBuf::new();
        assert!(buf.fill(&inner));
        esp::encap(&out, from.spi_out, 1, from.esn, esp::NH_IPV4, &mut buf).unwrap();
        assert_eq!(esp::spi_of(buf.data()), Some(to.spi_in));
        let mut w = ReplayWindow::new(64);
        w.reset(64, to.esn);
        assert_eq!(
            esp::decap(&inb, to.esn, &mut w, &mut buf),
            Ok(esp::NH_IPV4),
            "{}",
            a.cipher
        );
        assert_eq!(buf.data(), &inner[..]);
    }
}

#[test]
fn every_ike_suite_and_esp_cipher_negotiates() {
    let suites = [
        "aes128gcm16-prfsha256-x25519",
        "aes256gcm16-prfsha384-ecp384",
        "aes128gcm16-prfsha512-ecp256",
        "aes128-sha256-prfsha256-x25519",
        "aes256-sha384-prfsha384-ecp256",
        "aes256-sha512-prfsha512-ecp384",
    ];
    // Every ESP transform, each alone in the client's proposal, against the gateway's
    // defaults; the name the dataplane and `ctl sas` use must come out.
    let esps = [
        ("aes128gcm16", "aes128gcm16"),
        ("aes256gcm16-esn", "aes256gcm16"),
        ("chacha20poly1305", "chacha20poly1305"),
        ("chacha20poly1305-esn", "chacha20poly1305"),
        ("aes128-sha256", "aes128-sha256"),
        ("aes128-sha384-esn", "aes128-sha384"),
        ("aes128-sha512", "aes128-sha512"),
        ("aes256-sha256", "aes256-sha256"),
        ("aes256-sha384", "aes256-sha384"),
        ("aes256-sha512-esn", "aes256-sha512"),
    ];
    for (i, s) in suites.iter().enumerate() {
        for (j, (esp, name)) in esps.iter().enumerate() {
            let mut a = client_conn();
            a.ike_proposals = vec![IkeProposal::parse(s).unwrap()].into();
            a.esp_proposals = vec![EspProposal::parse(esp).unwrap()].into();
            let mut net = endpoints(a, gateway_conn(), 10 + (i * esps.len() + j) as u64);
            establish(&mut net);
            let (ca, cb) = (live(&net.ev_a), live(&net.ev_b));
            assert_paired(&ca, &cb);
            assert_eq!(ca[0].esn, esp.ends_with("esn"), "{s} {esp}");
            assert_eq!(ca[0].cipher.name(), *name, "{s} {esp}");
            assert_eq!(ca[0].key_out.len(), ca[0].cipher.keymat_len(), "{s} {esp}");
            esp_round_trip(&ca[0], &cb[0]);
        }
    }
}

#[test]
fn cbc_only_and_chacha_only_clients_get_working_child_sas_from_a_default_gateway() {
    // What OpenIKED 7.2 and Windows' native client propose (CBC + HMAC-SHA2 only, several
    // of each in one proposal), and a ChaCha20-Poly1305-only client. The gateway has no
    // esp_proposals configured.
    let cases: [(Vec<EspProposal>, &str); 5] = [
        // The responder's preference decides among what the peer offers (RFC 7296 2.7).
        (
            vec![EspProposal::parse("aes256-aes128-sha512-sha384-sha256").unwrap()],
            "aes128-sha256",
        ),
        (
            vec![EspProposal::parse("aes256-sha512-sha384").unwrap()],
            "aes256-sha384",
        ),
        (
            vec![EspProposal::parse("aes128-sha256").unwrap()],
            "aes128-sha256",
        ),
        (
            vec![EspProposal::parse("aes256-sha384-esn").unwrap()],
            "aes256-sha384",
        ),
        (
            vec![EspProposal::parse("chacha20poly1305").unwrap()],
            "chacha20poly1305",
        ),
    ];
    for (i, (props, want)) in cases.into_iter().enumerate() {
        let mut a = client_conn();
        a.esp_proposals = props.into();
        let mut net = endpoints(a, gateway_conn(), 300 + i as u64);
        establish(&mut net);
        let (ca, cb) = (live(&net.ev_a), live(&net.ev_b));
        assert_eq!(ca.len(), 1, "{want}");
        assert_paired(&ca, &cb);
        assert_eq!(cb[0].cipher.name(), want);
        esp_round_trip(&ca[0], &cb[0]);
        assert_eq!(net.b.counters().no_proposal, 0);
    }
    // Both ends on the defaults: AES-GCM wins (first in the gateway's preference).
    let mut net = endpoints(client_conn(), gateway_conn(), 310);
    establish(&mut net);
    assert_eq!(live(&net.ev_a)[0].cipher.name(), "aes128gcm16");
}

#[test]
fn aead_with_integrity_and_cbc_without_are_refused_with_no_proposal_chosen() {
    use mobiked_control::ike::crypto::{EspEncr, Integ};
    // Proposals the parser refuses, built by hand as a broken peer would send them
    // (RFC 7296 3.3: an AEAD has no integrity algorithm; CBC must have one).
    let broken = [
        EspProposal {
            encr: vec![EspEncr::AesGcm16_128],
            integ: vec![Integ::HmacSha2_256_128],
            esn: vec![false],
            dh: vec![],
        },
        EspProposal {
            encr: vec![EspEncr::ChaCha20Poly1305],
            integ: vec![Integ::HmacSha2_512_256],
            esn: vec![false],
            dh: vec![],
        },
        EspProposal {
            encr: vec![EspEncr::AesCbc128, EspEncr::AesCbc256],
            integ: vec![],
            esn: vec![false],
            dh: vec![],
        },
    ];
    for (i, p) in broken.into_iter().enumerate() {
        let mut a = client_conn();
        a.esp_proposals = vec![p.clone()].into();
        let mut net = endpoints(a, gateway_conn(), 320 + i as u64);
        establish(&mut net);
        // RFC 7296 1.2: the IKE SA stands, the child is refused.
        assert!(live(&net.ev_a).is_empty(), "{p:?}");
        assert!(live(&net.ev_b).is_empty(), "{p:?}");
        assert_eq!(net.b.counters().no_proposal, 1, "{p:?}");
        assert!(
            net.ev_a.iter().any(|e| matches!(
                e,
                Event::ChildFailed {
                    reason: FailReason::PeerError(14),
                    ..
                }
            )),
            "{p:?}: {:?}",
            net.ev_a
        );
    }
}

#[test]
fn same_seed_same_bytes() {
    let run = || {
        let mut net = endpoints(client_conn(), gateway_conn(), 7);
        establish(&mut net);
        net.wire
            .iter()
            .map(|(_, t)| t.data.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn invalid_ke_payload_makes_the_initiator_retry_with_the_wanted_group() {
    let mut a = client_conn();
    a.ike_proposals =
        vec![IkeProposal::parse("aes128gcm16-prfsha256-ecp256-x25519").unwrap()].into();
    let mut b = gateway_conn();
    b.ike_proposals = vec![IkeProposal::parse("aes128gcm16-prfsha256-x25519").unwrap()].into();
    let mut net = endpoints(a, b, 2);
    establish(&mut net);
    assert_eq!(net.b.counters().invalid_ke_sent, 1);
    // INIT, INVALID_KE, INIT again, INIT response, AUTH, AUTH response.
    assert_eq!(exchanges(&net).len(), 6);
    assert_paired(&live(&net.ev_a), &live(&net.ev_b));
    // The responder kept no state for the refused attempt.
    assert_eq!(net.b.sa_count(), 1);
}

#[test]
fn no_common_proposal_fails_the_initiator_and_leaves_no_state() {
    let mut a = client_conn();
    a.ike_proposals = vec![IkeProposal::parse("aes256gcm16-prfsha512-ecp384").unwrap()].into();
    let mut b = gateway_conn();
    b.ike_proposals = vec![IkeProposal::parse("aes128gcm16-prfsha256-x25519").unwrap()].into();
    let mut net = endpoints(a, b, 3);
    net.a.initiate(net.now, 0, None).unwrap();
    net.run_for(5 * S);
    assert_eq!(
        ike_down(&net.ev_a),
        vec![DownReason::Failed(FailReason::PeerError(14))]
    );
    assert_eq!(net.a.sa_count(), 0);
    assert_eq!(net.b.sa_count(), 0);
    assert_eq!(net.b.counters().no_proposal, 1);
}

#[test]
fn wrong_psk_fails_authentication_on_both_ends() {
    let mut a = client_conn();
    a.psk = b"not the secret".to_vec();
    let mut net = endpoints(a, gateway_conn(), 4);
    net.a.initiate(net.now, 0, None).unwrap();
    net.run_for(5 * S);
    assert_eq!(
        ike_down(&net.ev_a),
        vec![DownReason::Failed(FailReason::AuthenticationFailed)]
    );
    assert_eq!(net.b.counters().auth_failed, 1);
    assert_eq!(ike_up(&net.ev_b), 0);
    assert!(child_ups(&net.ev_b).is_empty());
    assert_eq!(net.a.sa_count() + net.b.sa_count(), 0);
}

#[test]
fn responder_identity_mismatch_is_refused_by_the_initiator() {
    let mut a = client_conn();
    a.remote_id = Some(Identity::parse("someone.else").unwrap());
    let mut net = endpoints(a, gateway_conn(), 5);
    net.a.initiate(net.now, 0, None).unwrap();
    net.run_for(5 * S);
    assert_eq!(
        ike_down(&net.ev_a),
        vec![DownReason::Failed(FailReason::AuthenticationFailed)]
    );
}

#[test]
fn a_nat_is_detected_and_ike_moves_to_port_4500() {
    let mut net = endpoints(client_conn(), gateway_conn(), 6);
    // A NAT in front of A: its source becomes 192.0.2.99 with another port, and
    // answers to that address come back to A.
    net.a_ips.push("192.0.2.99".parse().unwrap());
    net.rewrite = Some(Box::new(|from, t| match from {
        Side::A => {
            let port = if t.local.port() == 500 { 31000 } else { 31001 };
            t.local = SocketAddr::new("192.0.2.99".parse().unwrap(), port);
        }
        Side::B => {
            let port = if t.remote.port() == 31000 { 500 } else { 4500 };
            t.remote = SocketAddr::new("10.0.0.1".parse().unwrap(), port);
        }
    }));
    establish(&mut net);
    for ev in [&net.ev_a, &net.ev_b] {
        match &ev[0] {
            Event::IkeUp { encap, .. } => assert!(*encap, "{ev:?}"),
            e => panic!("{e:?}"),
        }
    }
    // IKE_AUTH went to 4500.
    let auth: Vec<_> = net
        .wire
        .iter()
        .filter(|(s, _)| *s == Side::A)
        .map(|(_, t)| t.remote.port())
        .collect();
    assert_eq!(auth, vec![500, 4500]);
    match &net.ev_b[0] {
        Event::IkeUp { remote, .. } => assert_eq!(*remote, sa("192.0.2.99:31001")),
        e => panic!("{e:?}"),
    }
}

#[test]
fn forced_encapsulation_without_nat() {
    let mut a = client_conn();
    a.force_encap = true;
    let mut net = endpoints(a, gateway_conn(), 8);
    establish(&mut net);
    for ev in [&net.ev_a, &net.ev_b] {
        match &ev[0] {
            Event::IkeUp { encap, local, .. } => {
                assert!(*encap);
                assert_eq!(local.port(), 4500);
            }
            e => panic!("{e:?}"),
        }
    }
}

#[test]
fn lost_messages_are_retransmitted_and_responses_resent_from_cache() {
    let mut net = endpoints(client_conn(), gateway_conn(), 9);
    // Drop the first IKE_SA_INIT request and the first IKE_AUTH response.
    let mut seen_init = 0;
    let mut seen_auth_resp = 0;
    net.filter = Some(Box::new(move |from, t, _| {
        let h = HeaderRepr::parse(&header::Packet::new_checked(&t.data[..]).unwrap()).unwrap();
        if from == Side::A && h.exchange_type == ExchangeType::IKE_SA_INIT {
            seen_init += 1;
            return seen_init > 1;
        }
        if from == Side::B && h.exchange_type == ExchangeType::IKE_AUTH {
            seen_auth_resp += 1;
            return seen_auth_resp > 1;
        }
        true
    }));
    let t0 = net.now;
    establish(&mut net);
    assert_eq!(net.a.counters().retransmits, 2);
    assert_eq!(net.b.counters().resent_responses, 1);
    // Two 1 s timeouts (the default first interval) passed.
    assert!(
        net.now - t0 >= 2 * S && net.now - t0 < 3 * S,
        "{}",
        net.now - t0
    );
    assert_paired(&live(&net.ev_a), &live(&net.ev_b));
    assert_eq!(net.b.sa_count(), 1);
}

#[test]
fn an_unanswered_initiation_fails_after_the_retransmission_schedule() {
    let mut net = endpoints(client_conn(), gateway_conn(), 11);
    net.filter = Some(Box::new(|from, _, _| from != Side::A));
    let t0 = net.now;
    net.a.initiate(net.now, 0, None).unwrap();
    assert_eq!(net.a.initiating(), 1);
    net.run_for(120 * S);
    assert_eq!(net.a.initiating(), 0);
    assert_eq!(
        ike_down(&net.ev_a),
        vec![DownReason::Failed(FailReason::Timeout)]
    );
    // 6 tries: 1 + 2 + 4 + 8 + 16 + 16 s (capped) = 47 s.
    assert_eq!(net.a.counters().retransmits, 5);
    let _ = t0;
    assert_eq!(net.a.sa_count(), 0);
}

fn rekey_child_from(initiator_side: Side, pfs: bool, seed: u64) {
    let mut a = client_conn();
    let mut b = gateway_conn();
    if pfs {
        a.esp_proposals = vec![EspProposal::parse("aes128gcm16-x25519").unwrap()].into();
        b.esp_proposals = vec![EspProposal::parse("aes128gcm16-ecp256-x25519").unwrap()].into();
    }
    let mut net = endpoints(a, b, seed);
    let sa_a = establish(&mut net);
    let old = live(&net.ev_a)[0].clone();
    let sa_b = net.b.sa_ids()[0];
    let now = net.now;
    match initiator_side {
        Side::A => assert!(net.a.rekey_child(now, sa_a, old.id)),
        Side::B => {
            let cid = net.b.children(sa_b)[0];
            assert!(net.b.rekey_child(now, sa_b, cid));
        }
    }
    net.run_for(5 * S);
    let (la, lb) = (live(&net.ev_a), live(&net.ev_b));
    assert_eq!(la.len(), 1, "{:?}", net.ev_a);
    assert_paired(&la, &lb);
    assert_ne!(la[0].spi_in, old.spi_in);
    assert_ne!(la[0].key_in, old.key_in);
    assert!(downs(&net.ev_a).contains(&old.spi_in));
    assert_eq!(net.a.child_count(), 1);
    assert_eq!(net.b.child_count(), 1);
    let replaced = child_ups(&net.ev_a).last().unwrap().replaces;
    assert_eq!(replaced, Some(old.id));
    // The end that answered the rekey keeps sending on the old SA until its DELETE.
    let (new_a, new_b) = (
        child_ups(&net.ev_a).last().unwrap().clone(),
        child_ups(&net.ev_b).last().unwrap().clone(),
    );
    assert_eq!(new_a.defer_outbound, initiator_side == Side::B);
    assert_eq!(new_b.defer_outbound, initiator_side == Side::A);
}

#[test]
fn child_rekey_started_by_the_initiator() {
    rekey_child_from(Side::A, false, 20);
}

#[test]
fn child_rekey_started_by_the_responder() {
    rekey_child_from(Side::B, false, 21);
}

#[test]
fn child_rekey_with_pfs() {
    rekey_child_from(Side::A, true, 22);
    rekey_child_from(Side::B, true, 23);
}

#[test]
fn an_additional_child_sa() {
    let mut net = endpoints(client_conn(), gateway_conn(), 24);
    let sa_a = establish(&mut net);
    assert!(net.a.create_child(net.now, sa_a));
    net.run_for(2 * S);
    let (la, lb) = (live(&net.ev_a), live(&net.ev_b));
    assert_eq!(la.len(), 2);
    assert_paired(&la, &lb);
}

fn rekey_ike_from(side: Side, seed: u64) {
    let mut a = client_conn();
    a.dpd.interval_s = 10;
    let mut b = gateway_conn();
    b.dpd.interval_s = 10;
    let mut net = endpoints(a, b, seed);
    let sa_a = establish(&mut net);
    let sa_b = net.b.sa_ids()[0];
    let children_before = live(&net.ev_a);
    let now = net.now;
    match side {
        Side::A => assert!(net.a.rekey_ike(now, sa_a)),
        Side::B => assert!(net.b.rekey_ike(now, sa_b)),
    }
    net.run_for(3 * S);
    assert_eq!(net.a.sa_count(), 1, "{:?}", net.ev_a);
    assert_eq!(net.b.sa_count(), 1, "{:?}", net.ev_b);
    assert_ne!(net.a.sa_ids()[0], sa_a);
    for ev in [&net.ev_a, &net.ev_b] {
        assert!(
            ev.iter().any(|e| matches!(e, Event::IkeRekeyed { .. })),
            "{ev:?}"
        );
        assert_eq!(ike_down(ev), vec![DownReason::Rekeyed]);
    }
    // Children unchanged, now under the new IKE SA.
    assert_eq!(live(&net.ev_a), children_before);
    assert_eq!(net.a.child_count(), 1);
    // The new SA works: a child rekey and DPD over it.
    let new_a = net.a.sa_ids()[0];
    let cid = net.a.children(new_a)[0];
    assert!(net.a.rekey_child(net.now, new_a, cid));
    net.run_for(60 * S);
    assert_paired(&live(&net.ev_a), &live(&net.ev_b));
    assert_eq!(net.a.established(), 1);
    assert_eq!(net.b.established(), 1);
    assert!(ike_down(&net.ev_a)
        .iter()
        .all(|r| *r == DownReason::Rekeyed));
}

#[test]
fn ike_rekey_started_by_the_initiator() {
    rekey_ike_from(Side::A, 30);
}

#[test]
fn ike_rekey_started_by_the_responder() {
    rekey_ike_from(Side::B, 31);
}

#[test]
fn simultaneous_child_rekeys_leave_one_pair() {
    for seed in 40..48 {
        let mut net = endpoints(client_conn(), gateway_conn(), seed);
        let sa_a = establish(&mut net);
        let sa_b = net.b.sa_ids()[0];
        let ca = net.a.children(sa_a)[0];
        let cb = net.b.children(sa_b)[0];
        let now = net.now;
        assert!(net.a.rekey_child(now, sa_a, ca));
        assert!(net.b.rekey_child(now, sa_b, cb));
        net.run_for(10 * S);
        // Both requests really crossed: each side sent one and answered the other's.
        let ccs = |side| {
            exchanges(&net)
                .into_iter()
                .filter(|(s, x, r)| *s == side && *x == ExchangeType::CREATE_CHILD_SA.0 && !r)
                .count()
        };
        assert_eq!((ccs(Side::A), ccs(Side::B)), (1, 1), "seed {seed}");
        assert_eq!(
            child_ups(&net.ev_a).len(),
            3,
            "seed {seed}: the original and two new"
        );
        let (la, lb) = (live(&net.ev_a), live(&net.ev_b));
        assert_eq!(la.len(), 1, "seed {seed}: a {:?}", net.ev_a);
        assert_paired(&la, &lb);
        assert_eq!(net.a.child_count(), 1);
        assert_eq!(net.b.child_count(), 1);
    }
}

#[test]
fn simultaneous_ike_rekeys_converge() {
    for seed in 50..54 {
        let mut net = endpoints(client_conn(), gateway_conn(), seed);
        let sa_a = establish(&mut net);
        let sa_b = net.b.sa_ids()[0];
        let now = net.now;
        assert!(net.a.rekey_ike(now, sa_a));
        assert!(net.b.rekey_ike(now, sa_b));
        // RFC 7296 2.8.2: both exchanges complete, no retry is needed.
        net.run_for(5 * S);
        let ccs = |side| {
            exchanges(&net)
                .into_iter()
                .filter(|(s, x, r)| *s == side && *x == ExchangeType::CREATE_CHILD_SA.0 && !r)
                .count()
        };
        assert_eq!((ccs(Side::A), ccs(Side::B)), (1, 1), "seed {seed}");
        for ev in [&net.ev_a, &net.ev_b] {
            let moved = ev
                .iter()
                .filter(|e| matches!(e, Event::IkeRekeyed { .. }))
                .count();
            assert_eq!(moved, 1, "seed {seed}: {ev:?}");
        }
        assert_eq!(net.a.sa_count(), 1, "seed {seed}: {:?}", net.ev_a);
        assert_eq!(net.b.sa_count(), 1, "seed {seed}: {:?}", net.ev_b);
        assert_eq!(net.a.established(), 1);
        assert_paired(&live(&net.ev_a), &live(&net.ev_b));
        // Both ends kept the same IKE SA: a child rekey over it works.
        let sa = net.a.sa_ids()[0];
        let child = net.a.children(sa)[0];
        assert!(net.a.rekey_child(net.now, sa, child));
        net.run_for(3 * S);
        assert_eq!(net.a.child_count(), 1, "seed {seed}");
        assert_eq!(net.b.child_count(), 1, "seed {seed}");
        assert_paired(&live(&net.ev_a), &live(&net.ev_b));
        assert!(!live(&net.ev_a).iter().any(|c| c.id == child));
    }
}

#[test]
fn lifetimes_rekey_by_themselves_for_a_virtual_day_without_leaks() {
    let mut a = client_conn();
    a.ike_lifetime.rekey_s = 600;
    a.ike_lifetime.life_s = 700;
    a.ike_lifetime.jitter_s = 60;
    a.child_lifetime.rekey_s = 120;
    a.child_lifetime.life_s = 150;
    a.child_lifetime.jitter_s = 20;
    a.dpd.interval_s = 30;
    let mut b = gateway_conn();
    b.ike_lifetime = a.ike_lifetime;
    b.child_lifetime = a.child_lifetime;
    b.dpd.interval_s = 30;
    let mut net = endpoints(a, b, 60);
    establish(&mut net);
    net.run_for(24 * 3600 * S);
    assert_eq!(net.a.sa_count(), 1);
    assert_eq!(net.b.sa_count(), 1);
    assert_eq!(net.a.established(), 1);
    let (la, lb) = (live(&net.ev_a), live(&net.ev_b));
    assert_eq!(la.len(), 1, "{}", la.len());
    assert_paired(&la, &lb);
    let rekeys = net
        .ev_a
        .iter()
        .filter(|e| matches!(e, Event::IkeRekeyed { .. }))
        .count();
    assert!(rekeys >= 24 * 6 - 1, "IKE rekeys {rekeys}");
    assert!(
        child_ups(&net.ev_a).len() > 24 * 30,
        "children {}",
        child_ups(&net.ev_a).len()
    );
    // No hard expiry ever hit: every child was replaced before it expired.
    assert!(ike_down(&net.ev_a)
        .iter()
        .all(|r| *r == DownReason::Rekeyed));
}

#[test]
fn dpd_notices_a_dead_peer_and_cleans_up() {
    let mut a = client_conn();
    a.dpd.interval_s = 5;
    a.dpd.timeout_s = 20;
    let mut net = endpoints(a, gateway_conn(), 61);
    establish(&mut net);
    let dead_at = net.now;
    net.filter = Some(Box::new(|from, _, _| from != Side::B));
    net.run_until(60 * S, |n| !ike_down(&n.ev_a).is_empty());
    assert_eq!(ike_down(&net.ev_a), vec![DownReason::PeerDead]);
    let took = net.now - dead_at;
    // Interval 5 s, then at most the 20 s timeout.
    assert!(took <= 26 * S, "{took}");
    assert!(live(&net.ev_a).is_empty());
    assert_eq!(net.a.sa_count(), 0);
}

#[test]
fn dpd_does_not_probe_while_esp_arrives() {
    let mut a = client_conn();
    a.dpd.interval_s = 5;
    let mut net = endpoints(a, gateway_conn(), 62);
    let sa_a = establish(&mut net);
    let before = net.wire.len();
    for _ in 0..20 {
        let now = net.now;
        net.a.note_inbound_traffic(now, sa_a);
        net.run_for(S);
    }
    assert_eq!(net.wire.len(), before);
    net.run_for(10 * S);
    assert!(net.wire.len() >= before + 2);
}

#[test]
fn delete_from_either_side_removes_everything() {
    for side in [Side::A, Side::B] {
        let mut net = endpoints(client_conn(), gateway_conn(), 63);
        let sa_a = establish(&mut net);
        let sa_b = net.b.sa_ids()[0];
        let now = net.now;
        match side {
            Side::A => assert!(net.a.delete(now, sa_a)),
            Side::B => assert!(net.b.delete(now, sa_b)),
        }
        net.run_for(2 * S);
        assert!(live(&net.ev_a).is_empty());
        assert!(live(&net.ev_b).is_empty());
        assert_eq!(net.a.sa_count() + net.b.sa_count(), 0);
        let (da, db) = (ike_down(&net.ev_a), ike_down(&net.ev_b));
        let (mine, theirs) = match side {
            Side::A => (da, db),
            Side::B => (db, da),
        };
        assert_eq!(mine, vec![DownReason::Deleted]);
        assert_eq!(theirs, vec![DownReason::DeletedByPeer]);
    }
}

fn pool_gateway() -> Conn {
    let mut b = gateway_conn();
    b.remote_ts = vec![].into();
    b.pools = vec![PoolConf {
        name: "vpn".into(),
        start: "10.3.0.1".parse().unwrap(),
        size: 2,
        dns: vec!["10.3.0.254".parse().unwrap()],
    }]
    .into();
    b
}

fn vip_client(name: &str) -> Conn {
    let mut a = client_conn();
    a.local_id = Identity::parse(name).unwrap();
    a.local_ts = vec![].into();
    a.request_vip4 = true;
    a
}

#[test]
fn a_virtual_ip_from_the_pool_becomes_the_clients_selector() {
    let mut net = endpoints(vip_client("a.test"), pool_gateway(), 70);
    establish(&mut net);
    let vip: IpAddr = "10.3.0.1".parse().unwrap();
    for ev in [&net.ev_a, &net.ev_b] {
        match &ev[0] {
            Event::IkeUp { vip: v, .. } => assert_eq!(*v, Some(vip)),
            e => panic!("{e:?}"),
        }
    }
    let (la, lb) = (live(&net.ev_a), live(&net.ev_b));
    assert_paired(&la, &lb);
    assert_eq!(la[0].local_ts.to_vec(), vec![Selector::host(vip)]);
    assert_eq!(lb[0].remote_ts.to_vec(), vec![Selector::host(vip)]);
    assert_eq!(net.b.leased(), 1);
    let sa_a = net.a.sa_ids()[0];
    let now = net.now;
    net.a.delete(now, sa_a);
    net.run_for(2 * S);
    assert_eq!(net.b.leased(), 0);
}

#[test]
fn the_pool_runs_out_and_says_so() {
    // Three clients, two addresses: the third gets INTERNAL_ADDRESS_FAILURE and no
    // child, but its IKE SA stands.
    let b = pool_gateway();
    let conns: Vec<Conn> = ["c1.test", "c2.test", "c3.test"]
        .iter()
        .map(|n| vip_client(n))
        .collect();
    let ea = Endpoint::new(
        EndpointConfig::default(),
        conns,
        Box::new(SeededRandom::new(71)),
    );
    let eb = Endpoint::new(
        EndpointConfig::default(),
        vec![b],
        Box::new(SeededRandom::new(72)),
    );
    let mut net = Net::new(ea, eb);
    for i in 0..3 {
        net.a.initiate(net.now, i, None).unwrap();
    }
    net.run_for(5 * S);
    assert_eq!(ike_up(&net.ev_a), 3);
    assert_eq!(live(&net.ev_a).len(), 2);
    assert_eq!(net.b.leased(), 2);
    let failed: Vec<_> = net
        .ev_a
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::ChildFailed {
                    reason: FailReason::PeerError(36),
                    ..
                }
            )
        })
        .collect();
    assert_eq!(failed.len(), 1);
    let vips: HashSet<_> = net
        .ev_b
        .iter()
        .filter_map(|e| match e {
            Event::IkeUp { vip, .. } => *vip,
            _ => None,
        })
        .collect();
    assert_eq!(vips.len(), 2);
}

#[test]
fn cookies_are_demanded_above_the_threshold_and_honoured() {
    let ea = Endpoint::new(
        EndpointConfig::default(),
        vec![client_conn()],
        Box::new(SeededRandom::new(80)),
    );
    let eb = Endpoint::new(
        EndpointConfig {
            cookie_threshold: 0,
            ..EndpointConfig::default()
        },
        vec![gateway_conn()],
        Box::new(SeededRandom::new(81)),
    );
    let mut net = Net::new(ea, eb);
    establish(&mut net);
    assert_eq!(net.b.counters().cookies_sent, 1);
    // INIT, COOKIE, INIT with cookie, response, AUTH, response.
    assert_eq!(exchanges(&net).len(), 6);
    assert_paired(&live(&net.ev_a), &live(&net.ev_b));
}

/// An IKE_SA_INIT request as a spoofing flooder would send it: valid, from a
/// source address that will never answer.
fn flood_request(i: u32) -> (SocketAddr, Vec<u8>) {
    // Build it with a throwaway endpoint so it is a real, well-formed request.
    let mut c = client_conn();
    let src = SocketAddr::new(IpAddr::from([198, 18, (i >> 8) as u8, i as u8]), 500);
    c.local_addrs = vec![src];
    let mut e = Endpoint::new(
        EndpointConfig::default(),
        vec![c],
        Box::new(SeededRandom::new(1000 + u64::from(i))),
    );
    e.initiate(0, 0, None).unwrap();
    let t = e.poll_transmit().unwrap();
    (src, t.data)
}

#[test]
fn a_spoofed_init_flood_gets_cookies_and_the_real_client_still_connects() {
    let ea = Endpoint::new(
        EndpointConfig::default(),
        vec![client_conn()],
        Box::new(SeededRandom::new(90)),
    );
    let eb = Endpoint::new(
        EndpointConfig {
            cookie_threshold: 50,
            ..EndpointConfig::default()
        },
        vec![gateway_conn()],
        Box::new(SeededRandom::new(91)),
    );
    let mut net = Net::new(ea, eb);
    let gw = sa("10.0.0.2:500");
    for i in 0..2000 {
        let (src, data) = flood_request(i);
        let now = net.now;
        net.b.handle_datagram(now, gw, src, &data);
    }
    // Half-open state stopped at the threshold; the rest got stateless cookies.
    assert_eq!(net.b.half_open(), 50);
    assert_eq!(net.b.counters().cookies_sent, 1950);
    while net.b.poll_transmit().is_some() {}
    establish(&mut net);
    assert_paired(&live(&net.ev_a), &live(&net.ev_b));
    // The half-open ones time out.
    net.run_for(40 * S);
    assert_eq!(net.b.half_open(), 0);
    assert_eq!(net.b.sa_count(), 1);
    assert_eq!(net.b.counters().half_open_expired, 50);
}

#[test]
fn hostile_datagrams_are_counted_and_change_nothing() {
    let mut net = endpoints(client_conn(), gateway_conn(), 100);
    let sa_a = establish(&mut net);
    let before_a = live(&net.ev_a);
    let gw = sa("10.0.0.2:500");
    let cl = sa("10.0.0.1:500");
    // Take a real request from A to tamper with.
    let now = net.now;
    net.a.dpd(now, sa_a);
    let req = net.a.poll_transmit().unwrap();
    let c0 = net.b.counters();
    // Garbage and truncations.
    net.b.handle_datagram(now, gw, cl, &[]);
    net.b.handle_datagram(now, gw, cl, &[0u8; 27]);
    for cut in [28, 29, 40, req.data.len() - 1] {
        net.b.handle_datagram(now, gw, cl, &req.data[..cut]);
    }
    // Flipped bits in the ciphertext and in the ICV.
    for at in [40, req.data.len() - 1] {
        let mut d = req.data.clone();
        d[at] ^= 0x40;
        net.b.handle_datagram(now, gw, cl, &d);
    }
    // Unknown SPI.
    let mut d = req.data.clone();
    d[0] ^= 1;
    net.b.handle_datagram(now, gw, cl, &d);
    // Message ID far out of window.
    let mut d = req.data.clone();
    d[20..24].copy_from_slice(&1000u32.to_be_bytes());
    net.b.handle_datagram(now, gw, cl, &d);
    // A response nobody asked for.
    let mut d = req.data.clone();
    d[19] |= 0x20;
    net.b.handle_datagram(now, gw, cl, &d);
    let c1 = net.b.counters();
    assert!(c1.malformed > c0.malformed, "{c1:?}");
    assert!(c1.decrypt_failed >= c0.decrypt_failed + 2, "{c1:?}");
    assert!(c1.unknown_spi > c0.unknown_spi);
    assert!(c1.msgid_out_of_window > c0.msgid_out_of_window);
    assert!(c1.unexpected_response > c0.unexpected_response);
    assert_eq!(c1.tx, c0.tx, "nothing is answered");
    // The real request still works, and a replay of it gets the cached response.
    net.b.handle_datagram(now, gw, cl, &req.data);
    net.b.handle_datagram(now, gw, cl, &req.data);
    assert_eq!(net.b.counters().resent_responses, c0.resent_responses + 1);
    net.run_for(2 * S);
    assert_eq!(live(&net.ev_a), before_a);
    assert_eq!(net.a.established(), 1);
    assert_eq!(net.b.established(), 1);
}

/// A link that corrupts, truncates, duplicates and drops: the SA still comes up
/// (retransmissions get through) or fails cleanly, never panics, and both ends end
/// with matching children or none.
#[test]
fn a_hostile_link_never_breaks_either_end() {
    for seed in 0..40u64 {
        let mut net = endpoints(client_conn(), gateway_conn(), 200 + seed);
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut r2 = rnd;
        net.rewrite = Some(Box::new(move |_, t| {
            let r = r2();
            match r % 8 {
                0 if !t.data.is_empty() => {
                    let i = (r >> 8) as usize % t.data.len();
                    t.data[i] ^= 1 << ((r >> 40) % 8);
                }
                1 => {
                    let n = (r >> 8) as usize % (t.data.len() + 1);
                    t.data.truncate(n);
                }
                _ => {}
            }
        }));
        net.filter = Some(Box::new(move |_, _, _| rnd() % 5 != 0));
        net.a.initiate(net.now, 0, None).unwrap();
        net.run_for(120 * S);
        let up_a = ike_up(&net.ev_a);
        let (la, lb) = (live(&net.ev_a), live(&net.ev_b));
        if up_a == 1 && ike_down(&net.ev_a).is_empty() && ike_up(&net.ev_b) == 1 {
            assert_paired(&la, &lb);
        } else {
            assert!(la.len() <= 1 && lb.len() <= 1);
        }
    }
}

/// A child rekey that falls due while the IKE SA is being rekeyed waits in the queue,
/// goes to the new IKE SA with the child, and is sent as soon as that SA exists, not
/// at the next timer (which could be after the child's hard lifetime).
#[test]
fn a_child_rekey_queued_behind_an_ike_rekey_is_sent_on_the_new_sa() {
    for (side, seed) in [(Side::A, 71), (Side::B, 72)] {
        let mut net = endpoints(client_conn(), gateway_conn(), seed);
        let sa_a = establish(&mut net);
        let sa = match side {
            Side::A => sa_a,
            Side::B => net.b.sa_ids()[0],
        };
        let cid = net.ep(side).children(sa)[0];
        let now = net.now;
        assert!(net.ep(side).rekey_ike(now, sa));
        assert!(net.ep(side).rekey_child(now, sa, cid));
        // Two round trips of 10 ms: the IKE rekey, then the child's.
        assert!(
            net.run_until(100 * MS, |n| {
                let ev = match side {
                    Side::A => &n.ev_a,
                    Side::B => &n.ev_b,
                };
                child_ups(ev).iter().any(|c| c.replaces == Some(cid))
            }),
            "{side:?}: the child was not rekeyed: {:?}",
            net.ev_a
        );
        net.run_for(2 * S);
        assert_eq!(net.a.sa_count(), 1);
        assert_eq!(net.b.sa_count(), 1);
        assert_paired(&live(&net.ev_a), &live(&net.ev_b));
        assert_eq!(live(&net.ev_a).len(), 1);
    }
}

/// A client that lost its state connects again with INITIAL_CONTACT: the gateway
/// drops the stale IKE SA and its children at once (RFC 7296 2.4), rather than at
/// DPD, and a second IKE SA of a live client (no INITIAL_CONTACT) leaves the first.
#[test]
fn initial_contact_drops_the_stale_sa_of_a_restarted_peer() {
    let mut net = endpoints(client_conn(), gateway_conn(), 81);
    establish(&mut net);
    let stale = net.b.sa_ids();
    assert_eq!(stale.len(), 1);
    let stale_child = live(&net.ev_b)[0].spi_in;
    // The client restarts: a new endpoint, no memory of the old SA.
    net.a = Endpoint::new(
        EndpointConfig::default(),
        vec![client_conn()],
        Box::new(SeededRandom::new(82)),
    );
    net.ev_a.clear();
    net.a.initiate(net.now, 0, None).expect("initiate");
    assert!(net.run_until(S, |n| ike_up(&n.ev_a) == 1 && ike_up(&n.ev_b) == 2));
    assert_eq!(net.b.sa_count(), 1, "{:?}", net.ev_b);
    assert_ne!(net.b.sa_ids(), stale);
    assert_eq!(net.b.counters().initial_contact_dropped, 1);
    assert_eq!(ike_down(&net.ev_b), vec![DownReason::Replaced]);
    assert!(downs(&net.ev_b).contains(&stale_child));
    assert_paired(&live(&net.ev_a), &live(&net.ev_b));
    // The same client adding a second IKE SA while the first lives: no
    // INITIAL_CONTACT, both stay.
    net.a.initiate(net.now, 0, None).expect("initiate");
    assert!(net.run_until(S, |n| ike_up(&n.ev_a) == 2 && ike_up(&n.ev_b) == 3));
    net.run_for(100 * MS);
    assert_eq!(net.b.sa_count(), 2);
    assert_eq!(net.b.counters().initial_contact_dropped, 1);
}

/// (message ID, response) of an IKE datagram.
fn ike_msg(t: &Transmit) -> Option<(u32, bool)> {
    let p = header::Packet::new_checked(&t.data[..]).ok()?;
    let h = HeaderRepr::parse(&p).ok()?;
    Some((h.message_id, h.response))
}

#[test]
fn a_response_sharing_its_id_with_our_unanswered_request_is_sent_again_once_that_is_answered() {
    // Some peers (strongSwan) drop any message whose ID is that of the request they
    // are still processing, responses included. Here the link drops A's response to
    // B's request when it leaves while A's request with the same ID is unanswered.
    let mut net = endpoints(client_conn(), gateway_conn(), 31);
    let sa_a = establish(&mut net);
    let sa_b = net.b.sa_ids()[0];
    let last_req = |net: &Net, side: Side| {
        net.wire
            .iter()
            .filter(|(s, _)| *s == side)
            .filter_map(|(_, t)| ike_msg(t))
            .filter(|(_, resp)| !resp)
            .map(|(id, _)| id)
            .max()
    };
    // B's next request ID catches up with A's.
    let a_next = last_req(&net, Side::A).unwrap() + 1;
    while last_req(&net, Side::B).map_or(0, |i| i + 1) < a_next {
        let now = net.now;
        assert!(net.b.dpd(now, sa_b));
        net.run_for(100 * MS);
    }
    assert_eq!(last_req(&net, Side::B).map_or(0, |i| i + 1), a_next);
    let unanswered: Rc<RefCell<Vec<u32>>> = Rc::default();
    let dropped = Rc::new(Cell::new(0));
    let (u, d) = (unanswered.clone(), dropped.clone());
    net.filter = Some(Box::new(move |from, t, _| {
        let Some((id, resp)) = ike_msg(t) else {
            return true;
        };
        match (from, resp) {
            (Side::A, false) => u.borrow_mut().push(id),
            (Side::B, true) => u.borrow_mut().retain(|x| *x != id),
            (Side::A, true) if d.get() == 0 && u.borrow().contains(&id) => {
                d.set(1);
                return false;
            }
            _ => {}
        }
        true
    }));
    let before = (net.a.counters(), net.b.counters());
    let now = net.now;
    assert!(net.a.dpd(now, sa_a));
    assert!(net.b.dpd(now, sa_b));
    net.run_for(500 * MS);
    assert_eq!(dropped.get(), 1, "the exchanges did not cross");
    let (a, b) = (net.a.counters(), net.b.counters());
    assert_eq!(a.resent_responses, before.0.resent_responses + 1);
    // B had its answer without retransmitting (its timeout is 1 s).
    assert_eq!(b.retransmits, before.1.retransmits);
    assert_eq!(net.b.established(), 1);
}
