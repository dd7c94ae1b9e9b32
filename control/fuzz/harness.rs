// Fuzz harnesses for the IKE control plane, shared by the cargo-fuzz targets and by
// `tests/fuzz_corpus.rs`, which replays the committed corpus on stable. Each asserts
// invariants beyond "no panic".
//
// ike_message input: one datagram. What parses must emit and parse back to the same.
// ike_sk_open input: [selector][datagram]; selector bits 0-1 pick the cipher (GCM-128,
//   GCM-256, CBC-128, CBC-256), bits 2-3 the integrity algorithm for CBC. Fixed keys, so
//   the corpus's sealed seeds get past the ICV. What opens must re-seal and open again
//   to the same plaintext.
// ike_endpoint input: datagrams, each [flags][len hi][len lo][bytes], fed to the
//   responder of an IKE SA established just before over an in-memory link. flags bit 0:
//   overwrite the SPIs with the SA's (to reach decryption), bit 1: set the message ID
//   to the next one expected, bit 2: mark it a response. Forged input cannot
//   authenticate, so the SA and its child must stand unchanged.

use mobiked_control::ike::conn::{Conn, Identity, Selector};
use mobiked_control::ike::crypto::random::SeededRandom;
use mobiked_control::ike::crypto::sk::{open_message, seal_message, SkKeys};
use mobiked_control::ike::crypto::{Encr, Integ};
use mobiked_control::ike::sa::{Endpoint, EndpointConfig};
use mobiked_control::ike::wire::{parse_payloads, Message};

pub fn fuzz_ike_message(data: &[u8]) -> Result<usize, String> {
    let m = Message::parse(data).map_err(|e| format!("{e:?}"))?;
    let v = m.to_vec().map_err(|e| format!("emit: {e:?}"))?;
    let again = Message::parse(&v).unwrap_or_else(|e| panic!("re-parse of our own emit: {e:?}"));
    // Next Payload and Length are derived on emit (skipped unknown payloads change
    // them); everything else must survive.
    assert_eq!(again.payloads, m.payloads, "parse(emit(m)) lost payloads");
    let norm = |h: &mobiked_control::ike::wire::HeaderRepr| mobiked_control::ike::wire::HeaderRepr {
        next_payload: mobiked_control::ike::wire::PayloadType::NONE,
        length: 0,
        ..*h
    };
    assert_eq!(norm(&again.header), norm(&m.header), "parse(emit(m)) changed the header");
    assert_eq!(again.to_vec().ok(), Some(v), "emit is not stable");
    Ok(m.payloads.len())
}

/// The fixed SK keys of selector `sel`.
pub fn fuzz_sk_keys(sel: u8) -> SkKeys {
    let encr = Encr::ALL[usize::from(sel & 3)];
    let integ = (!encr.is_aead()).then(|| Integ::ALL[usize::from((sel >> 2) & 3) % 3]);
    let ke: Vec<u8> = (0..encr.keymat_len()).map(|i| i as u8).collect();
    let ka: Vec<u8> = integ
        .map(|i| (0..i.key_len()).map(|k| 0x80 | k as u8).collect())
        .unwrap_or_default();
    SkKeys::new(encr, integ, &ke, &ka).expect("fixed keys have the right lengths")
}

pub fn fuzz_ike_sk_open(data: &[u8]) -> Result<usize, String> {
    let (&sel, dgram) = data.split_first().ok_or("empty")?;
    let keys = fuzz_sk_keys(sel);
    let o = open_message(&keys, dgram).map_err(|e| format!("{e:?}"))?;
    let n = parse_payloads(o.first_inner, &o.plaintext).map_or(0, |p| p.len());
    let mut rng = SeededRandom::new(u64::from(sel));
    let resealed = seal_message(&keys, &mut rng, &o.header, o.first_inner, &o.plaintext)
        .expect("re-seal of an opened message");
    let back = open_message(&keys, &resealed).expect("open of our own seal");
    assert_eq!(back.plaintext, o.plaintext);
    assert_eq!(back.first_inner, o.first_inner);
    Ok(n)
}

fn fuzz_conn(name: &str, peer: &str, initiator: bool) -> Conn {
    let mut c = Conn::new(name, Identity::parse(name).unwrap(), b"fuzz shared secret");
    if initiator {
        c.peer_addrs = vec!["10.0.0.2:500".parse().unwrap()];
        c.local_addrs = vec!["10.0.0.1:500".parse().unwrap()];
    }
    c.remote_id = Some(Identity::parse(peer).unwrap());
    c.local_ts = vec![Selector::parse(if initiator { "10.1.0.0/24" } else { "10.2.0.0/24" }).unwrap()].into();
    c.remote_ts = vec![Selector::parse(if initiator { "10.2.0.0/24" } else { "10.1.0.0/24" }).unwrap()].into();
    c
}

/// An initiator and a responder with one IKE SA and one child between them.
pub fn fuzz_established_pair() -> (Endpoint, Endpoint) {
    let mut a = Endpoint::new(
        EndpointConfig::default(),
        vec![fuzz_conn("a.fuzz", "b.fuzz", true)],
        Box::new(SeededRandom::new(1)),
    );
    let mut b = Endpoint::new(
        EndpointConfig::default(),
        vec![fuzz_conn("b.fuzz", "a.fuzz", false)],
        Box::new(SeededRandom::new(2)),
    );
    let now = 1_000_000_000;
    a.initiate(now, 0, None).expect("initiate");
    for _ in 0..8 {
        while let Some(t) = a.poll_transmit() {
            b.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_datagram(now, t.remote, t.local, &t.data);
        }
    }
    assert_eq!((a.established(), b.established()), (1, 1));
    while a.poll_event().is_some() {}
    while b.poll_event().is_some() {}
    (a, b)
}

pub fn fuzz_ike_endpoint(data: &[u8]) -> Result<usize, String> {
    let (a, mut b) = fuzz_established_pair();
    let sa = b.sa_ids()[0];
    let spi_i = a.sa_ids()[0];
    let children = b.child_count();
    let mut rest = data;
    let mut fed = 0;
    let now = 2_000_000_000;
    while let [flags, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (d, next) = tail.split_at(len);
        rest = next;
        let mut d = d.to_vec();
        if flags & 1 != 0 && d.len() >= 16 {
            // The responder's SPI is b's handle; the initiator's is a's.
            d[..8].copy_from_slice(&spi_i.to_be_bytes());
            d[8..16].copy_from_slice(&sa.to_be_bytes());
        }
        if flags & 2 != 0 && d.len() >= 24 {
            d[20..24].copy_from_slice(&0u32.to_be_bytes());
        }
        if flags & 4 != 0 && d.len() >= 20 {
            d[19] |= 0x20;
        }
        b.handle_datagram(now, "10.0.0.2:500".parse().unwrap(), "10.0.0.1:500".parse().unwrap(), &d);
        fed += 1;
        while b.poll_transmit().is_some() {}
        while b.poll_event().is_some() {}
    }
    b.handle_timeout(now);
    assert_eq!(b.established(), 1, "a forged datagram changed the SA");
    assert!(b.sa_ids().contains(&sa));
    assert_eq!(b.child_count(), children, "a forged datagram changed the children");
    Ok(fed)
}
