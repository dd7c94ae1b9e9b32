//! Unauthenticated answers sent outside any IKE SA's state (RFC 7296 1.5, 2.5, 2.6):
//! an IKE_SA_INIT refused (COOKIE, INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN,
//! UNSUPPORTED_CRITICAL_PAYLOAD) and a message of a major version above ours
//! (INVALID_MAJOR_VERSION).
//!
//! Each is a response to a request: the IKE SPIs, the Message ID and the exchange
//! type are those of the request, the Response flag is set, the version is ours
//! (2.0) and the body is one Notify payload. Only requests are answered: a response
//! to a response could loop between two ends.

use super::super::wire::header::{self, HeaderRepr};
use super::super::wire::message::Message;
use super::super::wire::notify::{NotifyRepr, NotifyType};
use super::super::wire::payload::{Payload, PayloadType};
use super::super::wire::ExchangeType;

/// The answer to the request with header `h` carrying only `n`, or `None` if
/// it does not encode (it always does for the notifies used here).
pub(crate) fn response(h: &StatelessHeader, n: NotifyRepr) -> Option<Vec<u8>> {
    Message {
        header: HeaderRepr {
            spi_i: h.spi_i,
            spi_r: h.spi_r,
            next_payload: PayloadType::NONE,
            minor_version: 0,
            exchange_type: h.exchange_type,
            // The I flag names the original initiator of the IKE SA: not us, if the
            // request came from it.
            initiator: !h.initiator,
            higher_version: false,
            response: true,
            message_id: h.message_id,
            length: 0,
        },
        payloads: vec![Payload::Notify(n)],
    }
    .to_vec()
    .ok()
}

/// What an answer copies from the request's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatelessHeader {
    pub spi_i: u64,
    pub spi_r: u64,
    pub exchange_type: ExchangeType,
    pub initiator: bool,
    pub message_id: u32,
}

impl From<&HeaderRepr> for StatelessHeader {
    fn from(h: &HeaderRepr) -> Self {
        StatelessHeader {
            spi_i: h.spi_i,
            spi_r: h.spi_r,
            exchange_type: h.exchange_type,
            initiator: h.initiator,
            message_id: h.message_id,
        }
    }
}

/// RFC 7296 2.5: a request of a major version above 2 is dropped and SHOULD be
/// answered with INVALID_MAJOR_VERSION, unauthenticated (1.5). Returns the answer
/// for such a request, `None` for anything else (a response, version 1 or below:
/// IKEv1 is another protocol and gets nothing).
pub(crate) fn invalid_major_version<T: AsRef<[u8]>>(p: &header::Packet<T>) -> Option<Vec<u8>> {
    if p.major_version() <= 2 || p.flags() & header::FLAG_RESPONSE != 0 {
        return None;
    }
    let h = StatelessHeader {
        spi_i: p.spi_i(),
        spi_r: p.spi_r(),
        exchange_type: p.exchange_type(),
        initiator: p.flags() & header::FLAG_INITIATOR != 0,
        message_id: p.message_id(),
    };
    response(&h, NotifyRepr::new(NotifyType::INVALID_MAJOR_VERSION, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: u8, flags: u8) -> Vec<u8> {
        let mut d = vec![0u8; 28];
        d[..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
        d[16] = 0; // next payload
        d[17] = version << 4;
        d[18] = 34; // IKE_SA_INIT
        d[19] = flags;
        d[20..24].copy_from_slice(&7u32.to_be_bytes());
        d[24..28].copy_from_slice(&28u32.to_be_bytes());
        d
    }

    #[test]
    fn higher_major_version_request_is_answered_with_our_version() {
        let req = request(3, header::FLAG_INITIATOR);
        let p = header::Packet::new_checked(&req[..]).unwrap();
        let ans = invalid_major_version(&p).expect("an answer");
        let m = Message::parse(&ans).unwrap();
        assert_eq!(m.header.spi_i, 0x1122_3344_5566_7788);
        assert_eq!(m.header.spi_r, 0);
        assert_eq!(m.header.message_id, 7);
        assert_eq!(m.header.exchange_type, ExchangeType::IKE_SA_INIT);
        assert!(m.header.response && !m.header.initiator);
        assert_eq!(ans[17], 0x20, "version 2.0");
        match m.payloads.as_slice() {
            [Payload::Notify(n)] => assert_eq!(n.notify_type, NotifyType::INVALID_MAJOR_VERSION),
            other => panic!("unexpected payloads {other:?}"),
        }
    }

    #[test]
    fn responses_and_older_versions_get_nothing() {
        for (v, f) in [
            (3, header::FLAG_RESPONSE),
            (1, 0),
            (0, header::FLAG_INITIATOR),
        ] {
            let req = request(v, f);
            let p = header::Packet::new_checked(&req[..]).unwrap();
            assert!(
                invalid_major_version(&p).is_none(),
                "version {v} flags {f:#x}"
            );
        }
    }
}
