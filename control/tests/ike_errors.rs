//! RFC 7296's unauthenticated error answers: a request the responder cannot process
//! is answered, not silently dropped, so the initiator learns why (2.5):
//! UNSUPPORTED_CRITICAL_PAYLOAD for an unknown payload with the critical bit set,
//! INVALID_MAJOR_VERSION for a later major version (1.5). Nothing else is answered
//! and no state is kept for either.

mod common;
use common::*;

use mobiked_control::ike::wire::message::Message;
use mobiked_control::ike::wire::notify::NotifyType;
use mobiked_control::ike::wire::payload::{Payload, PayloadType};

fn responder() -> Endpoint {
    Endpoint::new(
        EndpointConfig::default(),
        vec![gateway_conn()],
        Box::new(SeededRandom::new(7)),
    )
}

/// A real IKE_SA_INIT request from a client endpoint, as bytes.
fn init_request() -> Vec<u8> {
    let mut e = Endpoint::new(
        EndpointConfig::default(),
        vec![client_conn()],
        Box::new(SeededRandom::new(8)),
    );
    e.initiate(0, 0, None).unwrap();
    e.poll_transmit().unwrap().data
}

/// The single notify of an unencrypted answer, with its header.
fn answer(t: &Transmit) -> (HeaderRepr, NotifyType, Vec<u8>) {
    let m = Message::parse(&t.data).expect("the answer parses");
    match m.payloads.as_slice() {
        [Payload::Notify(n)] => (m.header, n.notify_type, n.data.clone()),
        other => panic!("expected one notify, got {other:?}"),
    }
}

const GW: &str = "10.0.0.2:500";
const CL: &str = "10.0.0.1:500";

#[test]
fn an_init_request_with_an_unknown_critical_payload_is_answered_with_its_type() {
    let mut m = Message::parse(&init_request()).unwrap();
    m.payloads.push(Payload::Unknown {
        ty: PayloadType(200),
        critical: true,
        body: vec![1, 2, 3, 4],
    });
    let req = m.to_vec().unwrap();
    let mut gw = responder();
    gw.handle_datagram(0, sa(GW), sa(CL), &req);
    let t = gw.poll_transmit().expect("an answer");
    assert_eq!((t.local, t.remote), (sa(GW), sa(CL)));
    let (h, ty, data) = answer(&t);
    assert_eq!(ty, NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD);
    assert_eq!(
        data,
        vec![200],
        "the payload type, one octet (RFC 7296 3.10.1)"
    );
    assert_eq!(h.spi_i, m.header.spi_i);
    assert_eq!(h.spi_r, 0);
    assert_eq!(h.message_id, 0);
    assert_eq!(h.exchange_type, ExchangeType::IKE_SA_INIT);
    assert!(h.response && !h.initiator);
    assert!(gw.poll_transmit().is_none());
    assert_eq!(gw.sa_count(), 0, "no state for a refused request");
    assert_eq!(gw.half_open(), 0);
    assert_eq!(gw.counters().unsupported_critical, 1);
}

#[test]
fn an_unknown_payload_without_the_critical_bit_is_skipped() {
    let mut m = Message::parse(&init_request()).unwrap();
    m.payloads.push(Payload::Unknown {
        ty: PayloadType(200),
        critical: false,
        body: vec![1, 2, 3, 4],
    });
    let mut gw = responder();
    gw.handle_datagram(0, sa(GW), sa(CL), &m.to_vec().unwrap());
    let t = gw.poll_transmit().expect("the normal answer");
    let r = Message::parse(&t.data).unwrap();
    assert!(r.payloads.iter().any(|p| matches!(p, Payload::Ke(_))));
    assert_eq!(gw.half_open(), 1);
    assert_eq!(gw.counters().unsupported_critical, 0);
}

#[test]
fn a_request_of_a_later_major_version_is_answered_with_invalid_major_version() {
    let mut gw = responder();
    for (major, exchange) in [(3u8, 34u8), (15, 37)] {
        let mut req = init_request();
        req[17] = major << 4;
        req[18] = exchange;
        req[20..24].copy_from_slice(&9u32.to_be_bytes());
        gw.handle_datagram(0, sa(GW), sa(CL), &req);
        let t = gw.poll_transmit().expect("an answer");
        let (h, ty, data) = answer(&t);
        assert_eq!(ty, NotifyType::INVALID_MAJOR_VERSION);
        assert!(data.is_empty());
        assert_eq!(t.data[17], 0x20, "answered as version 2.0");
        assert_eq!(h.exchange_type, ExchangeType(exchange));
        assert_eq!(h.message_id, 9);
        assert!(h.response);
    }
    assert_eq!(gw.counters().bad_version, 2);
    assert_eq!(gw.sa_count(), 0);
}

#[test]
fn version_one_and_responses_of_any_version_get_nothing() {
    let mut gw = responder();
    let req = init_request();
    for (version, flags) in [(0x10u8, 0x08u8), (0x30, 0x20), (0x30, 0x28)] {
        let mut d = req.clone();
        d[17] = version;
        d[19] = flags;
        gw.handle_datagram(0, sa(GW), sa(CL), &d);
    }
    assert!(gw.poll_transmit().is_none());
    assert_eq!(gw.counters().bad_version, 3);
    assert_eq!(gw.counters().tx, 0);
}
