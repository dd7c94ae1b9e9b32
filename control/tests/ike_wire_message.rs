//! Whole IKEv2 messages (RFC 7296 3.1): real IKE_SA_INIT requests from two other
//! implementations, a hand-built one through the builder, header errors, and a
//! proptest feeding random and mutated bytes to the parser.

use mobiked_control::ike::wire::header::{self, HeaderRepr};
use mobiked_control::ike::wire::ke::{DhGroup, KeRepr};
use mobiked_control::ike::wire::nonce::NonceRepr;
use mobiked_control::ike::wire::notify::{NotifyRepr, NotifyType};
use mobiked_control::ike::wire::sa::{
    Attribute, Proposal, SaRepr, Transform, TransformId, TransformType,
};
use mobiked_control::ike::wire::{
    ExchangeType, Message, Payload, PayloadType, ProtocolId, WireError, MAX_PAYLOADS,
};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// IKE_SA_INIT request sent by strongSwan's charon (default proposals, 904 bytes),
/// transcribed from the charon debug log line "octets = message + nonce +
/// prf(Sk_px, IDx') => 968 bytes" (the first 904 bytes are the message) that is
/// quoted in a public C# IKEv2 project's test file (GitHub code-search index file id
/// 37829465131, log dated "Aug 8 14:21:58", host "Gertrud").
const STRONGSWAN_SA_INIT: &str = "
    d8f57b325df25efe0000000000000000212022080000000000000388220002c8020001440101002303000
    00c0100000c800e00800300000c0100000c800e00c00300000c0100000c800e01000300000c0100000d800
    e00800300000c0100000d800e00c00300000c0100000d800e01000300000c01000017800e00800300000c0
    1000017800e00c00300000c01000017800e0100030000080100000303000008030000
    0c030000080300000d030000080300000e0300000803000005030000080300000803000008030000020300
    000802000004030000080200000803000008020000050300000802000006030000080200000703000008020
    0000203000008040000
    1f030000080400002003000008040000130300000804000014030000080400001503000008040000
    1c030000080400001d030000080400001e030000080400000f030000080400001003000008040000110300
    0008040000120000000804
    00000e00000180020100260300000c01000010800e00800300000c01000010800e00c00300000c0100001080
    0e01000300000c01000014800e00800300000c01000014800e00c00300000c01000014800e010003000008
    0100001c0300000c0100000e800e00800300000c0100000e800e00c00300000c0100000e800e01000300000c
    0100000f800e00800300000c0100000f800e00c00300000c0100000f800e01000300000c01000012800e0080
    0300000c01000012800e00c00300000c01000012800e01000300000c01000013800e00800300000c01000013
    800e00c00300000c01000013800e01000300000802000004030000080200000803000008020000050300000802
    0000060300000802000007030000080200000203000008040000
    1f030000080400002003000008040000130300000804000014030000080400001503000008040000
    1c030000080400001d030000080400001e030000080400000f030000080400001003000008040000110300
    00080400001200000008040000
    0e28000028001f0000c777dc28179697d8bdaaa85d7b2f38ff98b5a4640a2f776d6e52afb6ac4ed97d29000024
    9519afb4c2ba4a00661d6edd2b0fb3b8ae3058344e0f7916837185a4a3d5b1f3
    2900001c00004004fceaacdcaa63433b85fe0bd027f5189eb0aa48d1
    2900001c0000400534d6a9a8624844c39085b5297feb94e73ff0b46b
    290000080000402e
    290000100000402f0002000300040005
    0000000800004016";

/// IKE_SA_INIT request whose vendor IDs are Microsoft's (a Windows client): AES-GCM-16
/// 256, PRF HMAC-SHA2-256, group 19, four V payloads. Hex published in a public
/// TypeScript IKEv2 parser's round-trip test (GitHub code-search index file id
/// 37952714344).
const WINDOWS_SA_INIT: &str = "89922c915f35570e000000000000000021202208000000000000012c2200002800000024010100030300000c01000014800e0100030000080200000500000008040000132800004800130000db253178440ce776a794133cb8b69e5eb074733536570c64d7b630549c899c0712d828b37168500885e051024578afc75c101f73b8943cad62d74a30f2be1fca2b00002c09cb538b2c3dbd4d0bb0eec8d318cb801a9b4715b207828d9b5ff1f4ec64ed58863707bcf14ccf052b000014eb4c1b788afd4a9cb7730a68d56c53212b000014c61baca1f1a60cc108000000000000002b0000184048b7d56ebce88525e7de7f00d6c2d3c0000000290000144048b7d56ebce88525e7de7f00d6c2d3290000080000402e2900000800004016000000100000402f0001000200030004";

fn notify_types(m: &Message) -> Vec<NotifyType> {
    m.payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n.notify_type),
            _ => None,
        })
        .collect()
}

#[test]
fn strongswan_ike_sa_init() {
    let bytes = hex(STRONGSWAN_SA_INIT);
    assert_eq!(bytes.len(), 904);
    let m = Message::parse(&bytes).unwrap();
    let h = m.header;
    assert_eq!(h.spi_i, 0xd8f5_7b32_5df2_5efe);
    assert_eq!(h.spi_r, 0);
    assert_eq!(h.exchange_type, ExchangeType::IKE_SA_INIT);
    assert!(h.initiator && !h.response && !h.higher_version);
    assert_eq!((h.message_id, h.length), (0, 904));
    let types: Vec<_> = m.payloads.iter().map(Payload::ty).collect();
    assert_eq!(
        types,
        [
            PayloadType::SA,
            PayloadType::KE,
            PayloadType::NONCE,
            PayloadType::NOTIFY,
            PayloadType::NOTIFY,
            PayloadType::NOTIFY,
            PayloadType::NOTIFY,
            PayloadType::NOTIFY,
        ]
    );
    assert_eq!(
        notify_types(&m),
        [
            NotifyType::NAT_DETECTION_SOURCE_IP,
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            NotifyType::REDIRECT_SUPPORTED,
        ]
    );
    let Payload::Sa(sa) = &m.payloads[0] else {
        panic!("SA first")
    };
    // Two proposals: classic ciphers with integrity (35 transforms), then AEAD (38).
    assert_eq!(sa.proposals.len(), 2);
    assert_eq!(sa.proposals[0].transforms.len(), 35);
    assert_eq!(sa.proposals[1].transforms.len(), 38);
    assert_eq!(sa.proposals[1].number, 2);
    assert!(sa.proposals.iter().all(|p| p.protocol == ProtocolId::IKE));
    assert!(sa.proposals[1].transforms.iter().any(|t| {
        t.transform_type == TransformType::ENCR
            && t.id == TransformId::ENCR_AES_GCM_16
            && t.key_length() == Some(128)
    }));
    assert!(sa.proposals[0].transforms.contains(&Transform::new(
        TransformType::INTEG,
        TransformId::INTEG_HMAC_SHA2_256_128
    )));
    let Payload::Ke(ke) = &m.payloads[1] else {
        panic!("KE second")
    };
    assert_eq!((ke.group, ke.data.len()), (DhGroup::CURVE25519, 32));
    let Payload::Nonce(n) = &m.payloads[2] else {
        panic!("nonce third")
    };
    assert_eq!(n.nonce.len(), 32);
    // The builder gives back the very same bytes.
    assert_eq!(m.to_vec().unwrap(), bytes);
    truncations(&bytes);
}

#[test]
fn windows_ike_sa_init() {
    let bytes = hex(WINDOWS_SA_INIT);
    assert_eq!(bytes.len(), 300);
    let m = Message::parse(&bytes).unwrap();
    let vendors = m
        .payloads
        .iter()
        .filter(|p| p.ty() == PayloadType::VENDOR)
        .count();
    assert_eq!(vendors, 4);
    let Payload::Ke(ke) = &m.payloads[1] else {
        panic!("KE second")
    };
    assert_eq!((ke.group, ke.data.len()), (DhGroup::ECP_256, 64));
    assert_eq!(m.to_vec().unwrap(), bytes);
    truncations(&bytes);
}

/// Every prefix of a message is rejected with a named error (the header's Length
/// then exceeds the datagram), and so is every prefix with Length patched to match.
fn truncations(bytes: &[u8]) {
    for n in 0..bytes.len() {
        let e = Message::parse(&bytes[..n]).unwrap_err();
        let want = if n < 28 {
            WireError::HeaderTruncated
        } else {
            WireError::BadMessageLength
        };
        assert_eq!(e, want, "{n}");
        if n >= 28 {
            let mut b = bytes[..n].to_vec();
            b[24..28].copy_from_slice(&(n as u32).to_be_bytes());
            let e = Message::parse(&b).unwrap_err();
            assert!(
                matches!(
                    e,
                    WireError::PayloadHeaderTruncated | WireError::BadPayloadLength(_)
                ),
                "{n}: {e:?}"
            );
        }
    }
}

#[test]
fn builder_emits_hand_checked_ike_sa_init() {
    let m = Message {
        header: HeaderRepr {
            spi_i: 0x0102_0304_0506_0708,
            spi_r: 0,
            next_payload: PayloadType::NONE, // filled in by emit
            minor_version: 0,
            exchange_type: ExchangeType::IKE_SA_INIT,
            initiator: true,
            higher_version: false,
            response: false,
            message_id: 0,
            length: 0, // filled in by emit
        },
        payloads: vec![
            Payload::Sa(SaRepr {
                proposals: vec![Proposal {
                    number: 1,
                    protocol: ProtocolId::IKE,
                    spi: vec![],
                    transforms: vec![
                        Transform {
                            transform_type: TransformType::ENCR,
                            id: TransformId::ENCR_AES_GCM_16,
                            attributes: vec![Attribute::key_length(128)],
                        },
                        Transform::new(TransformType::PRF, TransformId::PRF_HMAC_SHA2_256),
                        Transform::new(TransformType::DH, TransformId::DH_CURVE25519),
                    ],
                }],
            }),
            Payload::Ke(KeRepr {
                group: DhGroup::CURVE25519,
                data: (0x00..0x20).collect(),
            }),
            Payload::Nonce(NonceRepr {
                nonce: (0x20..0x40).collect(),
            }),
            Payload::Notify(NotifyRepr::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                &[0x11; 20],
            )),
            Payload::Notify(NotifyRepr::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                &[0x22; 20],
            )),
            Payload::Notify(NotifyRepr::new(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                &[],
            )),
        ],
    };
    // RFC 7296 3.1-3.10 layouts; lengths: 28 + 40 + 40 + 36 + 28 + 28 + 8 = 208.
    let want = hex(&format!(
        "0102030405060708 0000000000000000 21 20 22 08 00000000 000000d0
         22000028 00000024 01010003 0300000c 01000014 800e0080 03000008 02000005 00000008 0400001f
         28000028 001f0000 {}
         29000024 {}
         2900001c 00004004 {}
         2900001c 00004005 {}
         00000008 0000402e",
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
        "11".repeat(20),
        "22".repeat(20),
    ));
    let bytes = m.to_vec().unwrap();
    assert_eq!(bytes, want);
    let back = Message::parse(&bytes).unwrap();
    assert_eq!(back.payloads, m.payloads);
    assert_eq!(back.header.next_payload, PayloadType::SA);
    assert_eq!(back.header.length, 208);
}

#[test]
fn header_errors_and_length_rule() {
    let good = hex(WINDOWS_SA_INIT);
    // Major version 1 (RFC 7296 2.5): named, and the SPIs remain readable.
    let mut b = good.clone();
    b[17] = 0x10;
    assert_eq!(
        Message::parse(&b),
        Err(WireError::UnsupportedMajorVersion(1))
    );
    let p = header::Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.spi_i(), 0x8992_2c91_5f35_570e);
    // Minor version is ignored and kept.
    let mut b = good.clone();
    b[17] = 0x21;
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.header.minor_version, 1);
    assert_eq!(m.to_vec().unwrap(), b);
    // Length below the header.
    let mut b = good.clone();
    b[24..28].copy_from_slice(&27u32.to_be_bytes());
    assert_eq!(Message::parse(&b), Err(WireError::BadMessageLength));
    // Bytes beyond Length are not part of the message.
    let mut b = good.clone();
    b.extend([0xff; 9]);
    assert_eq!(Message::parse(&b).unwrap(), Message::parse(&good).unwrap());
    // Length shorter than the payloads: the chain overruns it.
    let mut b = good.clone();
    b[24..28].copy_from_slice(&299u32.to_be_bytes());
    assert!(matches!(
        Message::parse(&b),
        Err(WireError::BadPayloadLength(_))
    ));
}

/// Re-emitting a parsed message and parsing again gives the same message (Length
/// and the first Next Payload change when unknown payloads were skipped).
fn stable(m: &Message) {
    let again = Message::parse(&m.to_vec().unwrap()).expect("re-emitted message parses");
    assert_eq!(again.payloads, m.payloads);
    let first = m.payloads.first().map_or(PayloadType::NONE, Payload::ty);
    assert_eq!(
        again.header,
        HeaderRepr {
            length: again.header.length,
            next_payload: first,
            ..m.header
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        if let Ok(m) = Message::parse(&bytes) {
            prop_assert!(m.payloads.len() <= MAX_PAYLOADS);
            stable(&m);
        }
    }

    /// A valid header in front of random payload bytes, so the walker and every
    /// payload parser see input.
    #[test]
    fn random_chain_never_panics(
        first in prop::sample::select(vec![33u8, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 53, 0xf0]),
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut b = hex(&WINDOWS_SA_INIT[..56]);
        b[16] = first;
        b.extend(&body);
        let len = b.len() as u32;
        b[24..28].copy_from_slice(&len.to_be_bytes());
        if let Ok(m) = Message::parse(&b) {
            prop_assert!(m.payloads.len() <= MAX_PAYLOADS);
            stable(&m);
        }
    }

    /// A real message with a few bytes changed.
    #[test]
    fn mutated_capture_never_panics(
        edits in proptest::collection::vec((0usize..904, any::<u8>()), 1..6),
    ) {
        let mut b = hex(STRONGSWAN_SA_INIT);
        for (at, v) in edits {
            b[at] = v;
        }
        if let Ok(m) = Message::parse(&b) {
            stable(&m);
        }
    }
}
