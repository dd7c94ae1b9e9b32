//! Writes the seed corpus of the IKE fuzz targets from real exchanges between two
//! endpoints (deterministic seeds), so every seed named `valid-*` is a message the
//! code must accept. Run from control/fuzz: `cargo run --bin gen_corpus`.

include!("harness.rs");

use mobiked_control::ike::wire::header::HeaderRepr;
use mobiked_control::ike::wire::notify::{NotifyRepr, NotifyType};
use mobiked_control::ike::wire::{emit_payloads, payloads_buffer_len, ExchangeType, Payload, PayloadType};

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = std::path::Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn main() {
    // ike_message: every datagram of a full exchange, plus the stateless answers.
    let mut a = Endpoint::new(
        EndpointConfig::default(),
        vec![fuzz_conn("a.fuzz", "b.fuzz", true)],
        Box::new(SeededRandom::new(1)),
    );
    let mut b = Endpoint::new(
        EndpointConfig {
            cookie_threshold: 0,
            ..EndpointConfig::default()
        },
        vec![fuzz_conn("b.fuzz", "a.fuzz", false)],
        Box::new(SeededRandom::new(2)),
    );
    let mut all = Vec::new();
    let now = 3_000_000_000;
    a.initiate(now, 0, None).unwrap();
    for _ in 0..6 {
        while let Some(t) = a.poll_transmit() {
            all.push(t.data.clone());
            b.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while let Some(t) = b.poll_transmit() {
            all.push(t.data.clone());
            a.handle_datagram(now, t.remote, t.local, &t.data);
        }
    }
    assert_eq!(a.established(), 1);
    let sa_a = a.sa_ids()[0];
    a.dpd(now, sa_a);
    a.create_child(now + 1, sa_a);
    for _ in 0..4 {
        while let Some(t) = a.poll_transmit() {
            all.push(t.data.clone());
            b.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while let Some(t) = b.poll_transmit() {
            all.push(t.data.clone());
            a.handle_datagram(now, t.remote, t.local, &t.data);
        }
    }
    let mut c = fuzz_conn("c.fuzz", "b.fuzz", true);
    c.ike_proposals = vec![mobiked_control::ike::conn::IkeProposal::parse("aes128-sha256-prfsha256-ecp256").unwrap()];
    let mut e = Endpoint::new(EndpointConfig::default(), vec![c], Box::new(SeededRandom::new(9)));
    e.initiate(now, 0, None).unwrap();
    all.push(e.poll_transmit().unwrap().data);
    for (i, d) in all.iter().enumerate() {
        write("ike_message", &format!("valid-{i:02}"), d);
    }
    write("ike_message", "short", &all[0][..20]);

    // ike_sk_open: one sealed message per cipher/integrity selector.
    let inner = [
        Payload::Notify(NotifyRepr::new(NotifyType::COOKIE2, &[7; 16])),
        Payload::Notify(NotifyRepr::new(NotifyType::UPDATE_SA_ADDRESSES, &[])),
    ];
    let mut pt = vec![0u8; payloads_buffer_len(&inner)];
    let first = emit_payloads(&inner, &mut pt).unwrap();
    for sel in [0u8, 1, 2, 6, 10, 3, 7, 11] {
        let keys = fuzz_sk_keys(sel);
        let h = HeaderRepr {
            spi_i: 0x0102030405060708,
            spi_r: 0x1112131415161718,
            next_payload: PayloadType::NONE,
            minor_version: 0,
            exchange_type: ExchangeType::INFORMATIONAL,
            initiator: true,
            higher_version: false,
            response: false,
            message_id: 3,
            length: 0,
        };
        let mut rng = SeededRandom::new(u64::from(sel));
        let d = seal_message(&keys, &mut rng, &h, first, &pt).unwrap();
        let mut seed = vec![sel];
        seed.extend_from_slice(&d);
        write("ike_sk_open", &format!("valid-sel{sel:02}"), &seed);
    }

    // ike_endpoint: a liveness check from the real initiator, once and retransmitted.
    let (mut a, _b) = fuzz_established_pair();
    let sa_a = a.sa_ids()[0];
    a.dpd(now, sa_a);
    let dpd = a.poll_transmit().unwrap().data;
    let frame = |flags: u8, d: &[u8]| {
        let mut f = vec![flags];
        f.extend_from_slice(&(d.len() as u16).to_be_bytes());
        f.extend_from_slice(d);
        f
    };
    write("ike_endpoint", "valid-dpd", &frame(0, &dpd));
    let mut twice = frame(0, &dpd);
    twice.extend(frame(0, &dpd));
    write("ike_endpoint", "valid-dpd-retransmitted", &twice);
    let mut flipped = dpd.clone();
    let n = flipped.len();
    flipped[n - 3] ^= 0x10;
    write("ike_endpoint", "dpd-tampered", &frame(0, &flipped));
    write("ike_endpoint", "init-request", &frame(0, &all[all.len() - 1]));
    write("ike_endpoint", "spis-forced", &frame(3, &[0u8; 60]));
    println!("corpus written");
}
