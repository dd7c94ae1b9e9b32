//! Byte-array tests for every IKEv2 payload (RFC 7296 3.3-3.16, RFC 7383 2.5): parse,
//! emit, round trip, and every truncation yields a named error.

use mobiked_control::ike::wire::auth::{AuthMethod, AuthRepr};
use mobiked_control::ike::wire::cert::{CertEncoding, CertRepr};
use mobiked_control::ike::wire::cp::{CfgAttr, CfgAttrType, CfgType, CpRepr};
use mobiked_control::ike::wire::delete::DeleteRepr;
use mobiked_control::ike::wire::eap::{EapCode, EapRepr};
use mobiked_control::ike::wire::id::{IdRepr, IdType};
use mobiked_control::ike::wire::ke::{DhGroup, KeRepr};
use mobiked_control::ike::wire::nonce::NonceRepr;
use mobiked_control::ike::wire::notify::{NotifyRepr, NotifyType};
use mobiked_control::ike::wire::sa::{
    Attribute, AttributeType, AttributeValue, Proposal, SaRepr, Transform, TransformId,
    TransformType,
};
use mobiked_control::ike::wire::sk::{SkRepr, SkfRepr};
use mobiked_control::ike::wire::ts::{TrafficSelector, TsRepr, TsType};
use mobiked_control::ike::wire::vendor::VendorRepr;
use mobiked_control::ike::wire::{
    emit_payloads, parse_payloads, payloads_buffer_len, EmitError, Payload, PayloadType,
    ProtocolId, WireError, MAX_PAYLOADS,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A generic payload header (RFC 7296 3.2) with the given Next Payload, then `body`.
fn wrap(next: PayloadType, body: &[u8]) -> Vec<u8> {
    let mut v = vec![next.0, 0];
    v.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// Parses `body` as a lone payload of type `ty`, checks it equals `want`, that
/// emitting `want` gives the same bytes, and that every truncation of the payload is
/// a named error.
fn check(ty: PayloadType, next: PayloadType, body: &[u8], want: Payload) {
    let bytes = wrap(next, body);
    let got = parse_payloads(ty, &bytes).expect("parses");
    assert_eq!(got, vec![want.clone()]);
    let list = [want];
    let mut out = vec![0u8; payloads_buffer_len(&list)];
    assert_eq!(emit_payloads(&list, &mut out), Ok(ty));
    assert_eq!(out, bytes, "emit gives the same bytes");
    for n in 0..bytes.len() {
        let e = parse_payloads(ty, &bytes[..n]).expect_err("truncated");
        assert!(
            matches!(
                e,
                WireError::PayloadHeaderTruncated | WireError::BadPayloadLength(_)
            ),
            "{n}: {e:?}"
        );
    }
}

/// Parses a body (generic header consistent with it) and returns the result.
fn parse_body(ty: PayloadType, body: &[u8]) -> Result<Vec<Payload>, WireError> {
    parse_payloads(ty, &wrap(PayloadType::NONE, body))
}

/// Every truncation of a body below `fixed` bytes is `err`; longer ones never panic
/// and never parse to the original.
fn body_truncations(ty: PayloadType, body: &[u8], fixed: usize, err: WireError) {
    let full = parse_body(ty, body).unwrap();
    for n in 0..body.len() {
        let r = parse_body(ty, &body[..n]);
        if n < fixed {
            assert_eq!(r, Err(err), "{n}");
        } else {
            assert_ne!(r.as_ref().ok(), Some(&full), "{n}");
        }
    }
}

const SA_IKE: &str = "00000024 01010003
    0300000c 01000014 800e0080
    03000008 02000005
    00000008 0400001f";

fn sa_ike() -> Proposal {
    Proposal {
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
    }
}

#[test]
fn sa_one_ike_proposal() {
    let body = hex(SA_IKE);
    let want = SaRepr {
        proposals: vec![sa_ike()],
    };
    assert_eq!(want.proposals[0].transforms[0].key_length(), Some(128));
    check(PayloadType::SA, PayloadType::NONE, &body, Payload::Sa(want));
    body_truncations(
        PayloadType::SA,
        &body,
        1,
        WireError::BodyTruncated(PayloadType::SA),
    );
}

#[test]
fn sa_two_proposals_with_spi_and_unknown_transform() {
    let body = hex(
        "02000024 01010003 0300000c 01000014 800e0080 03000008 02000005 00000008 0400001f
         02000020 02030402 deadbeef 0300000c 01000014 800e0100 00000008 05000000
         00000018 03010001 00000010 f000abcd 00630004 01020304",
    );
    let esp = Proposal {
        number: 2,
        protocol: ProtocolId::ESP,
        spi: vec![0xde, 0xad, 0xbe, 0xef],
        transforms: vec![
            Transform {
                transform_type: TransformType::ENCR,
                id: TransformId::ENCR_AES_GCM_16,
                attributes: vec![Attribute::key_length(256)],
            },
            Transform::new(TransformType::ESN, TransformId::ESN_NO),
        ],
    };
    let odd = Proposal {
        number: 3,
        protocol: ProtocolId::IKE,
        spi: vec![],
        transforms: vec![Transform {
            transform_type: TransformType(0xf0),
            id: TransformId(0xabcd),
            attributes: vec![Attribute {
                attr_type: AttributeType(0x63),
                value: AttributeValue::Tlv(vec![1, 2, 3, 4]),
            }],
        }],
    };
    check(
        PayloadType::SA,
        PayloadType::NONE,
        &body,
        Payload::Sa(SaRepr {
            proposals: vec![sa_ike(), esp, odd],
        }),
    );
}

#[test]
fn sa_malformed() {
    let bad = |s: &str| parse_body(PayloadType::SA, &hex(s)).unwrap_err();
    // First proposal says "last" but another follows.
    assert_eq!(
        bad("00000010 01010001 00000008 0400001f 00000010 02010001 00000008 0400001f"),
        WireError::BadProposalLast
    );
    // Last proposal says "more".
    assert_eq!(
        bad("02000010 01010001 00000008 0400001f"),
        WireError::BadProposalLast
    );
    // Four transforms announced, one present.
    assert_eq!(
        bad("00000010 01010004 00000008 0400001f"),
        WireError::TransformCountMismatch
    );
    // Transform says "more" but is last.
    assert_eq!(
        bad("00000010 01010001 03000008 0400001f"),
        WireError::BadTransformLast
    );
    // Transform length beyond the proposal.
    assert_eq!(
        bad("00000010 01010001 00000009 0400001f"),
        WireError::BadTransformLength
    );
    // Proposal length below its header, and beyond the payload.
    assert_eq!(bad("00000004 01010000"), WireError::BadProposalLength);
    assert_eq!(bad("00000040 01010000"), WireError::BadProposalLength);
    // SPI size beyond the proposal.
    assert_eq!(bad("00000008 01030400"), WireError::BadProposalLength);
    // TLV attribute overruns its transform.
    assert_eq!(
        bad("00000014 01010001 0000000c 01000014 000e0008"),
        WireError::BadAttributeLength
    );
    // Half an attribute header.
    assert_eq!(
        bad("00000012 01010001 0000000a 01000014 800e"),
        WireError::BadAttributeLength
    );
}

#[test]
fn ke() {
    let mut body = hex("001f0000");
    body.extend(0..32u8);
    check(
        PayloadType::KE,
        PayloadType::NONE,
        &body,
        Payload::Ke(KeRepr {
            group: DhGroup::CURVE25519,
            data: (0..32).collect(),
        }),
    );
    body_truncations(
        PayloadType::KE,
        &body,
        4,
        WireError::BodyTruncated(PayloadType::KE),
    );
}

#[test]
fn id_fqdn_ipv4_ipv6_rfc822_keyid() {
    let body = [&hex("02000000")[..], b"moon.strongswan.org"].concat();
    let want = IdRepr::fqdn("moon.strongswan.org");
    assert_eq!(want.as_str(), Some("moon.strongswan.org"));
    check(
        PayloadType::IDI,
        PayloadType::NONE,
        &body,
        Payload::Idi(want),
    );
    body_truncations(
        PayloadType::IDI,
        &body,
        4,
        WireError::BodyTruncated(PayloadType::IDI),
    );

    let v4 = hex("01000000 c0a80001");
    let want = IdRepr::ip(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)));
    assert_eq!(
        want.as_ip(),
        Some(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)))
    );
    check(PayloadType::IDR, PayloadType::NONE, &v4, Payload::Idr(want));
    assert_eq!(
        parse_body(PayloadType::IDR, &v4[..7]),
        Err(WireError::BadIdLength)
    );

    let v6 = hex("05000000 20010db8000000000000000000000001");
    let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
    check(
        PayloadType::IDR,
        PayloadType::NONE,
        &v6,
        Payload::Idr(IdRepr::ip(IpAddr::V6(a))),
    );
    assert_eq!(
        parse_body(PayloadType::IDR, &v6[..19]),
        Err(WireError::BadIdLength)
    );

    let mail = [&hex("03000000")[..], b"carol@strongswan.org"].concat();
    check(
        PayloadType::IDI,
        PayloadType::NONE,
        &mail,
        Payload::Idi(IdRepr::rfc822("carol@strongswan.org")),
    );
    let key = hex("0b000000 0102030405");
    let want = IdRepr::key_id(&[1, 2, 3, 4, 5]);
    assert_eq!(want.id_type, IdType::KEY_ID);
    check(
        PayloadType::IDI,
        PayloadType::NONE,
        &key,
        Payload::Idi(want),
    );
}

#[test]
fn cert_and_certreq() {
    let body = hex("04 308201aa30820150a003020102");
    let want = CertRepr {
        encoding: CertEncoding::X509_SIGNATURE,
        data: body[1..].to_vec(),
    };
    check(
        PayloadType::CERT,
        PayloadType::NONE,
        &body,
        Payload::Cert(want),
    );
    let req = hex("04 0123456789abcdef0123456789abcdef01234567");
    let want = CertRepr {
        encoding: CertEncoding::X509_SIGNATURE,
        data: req[1..].to_vec(),
    };
    check(
        PayloadType::CERTREQ,
        PayloadType::NONE,
        &req,
        Payload::CertReq(want),
    );
    body_truncations(
        PayloadType::CERT,
        &body,
        1,
        WireError::BodyTruncated(PayloadType::CERT),
    );
}

#[test]
fn auth() {
    let mut body = hex("02000000");
    body.extend([0xa5; 32]);
    check(
        PayloadType::AUTH,
        PayloadType::NONE,
        &body,
        Payload::Auth(AuthRepr {
            method: AuthMethod::SHARED_KEY_MIC,
            data: vec![0xa5; 32],
        }),
    );
    body_truncations(
        PayloadType::AUTH,
        &body,
        4,
        WireError::BodyTruncated(PayloadType::AUTH),
    );
}

#[test]
fn nonce_sizes() {
    let body: Vec<u8> = (0..32).collect();
    check(
        PayloadType::NONCE,
        PayloadType::NONE,
        &body,
        Payload::Nonce(NonceRepr {
            nonce: body.clone(),
        }),
    );
    // RFC 7296 3.9: 16..=256 bytes.
    for (n, ok) in [
        (0, false),
        (15, false),
        (16, true),
        (256, true),
        (257, false),
    ] {
        let r = parse_body(PayloadType::NONCE, &vec![7; n]);
        assert_eq!(r.is_ok(), ok, "{n}");
        if !ok {
            assert_eq!(r, Err(WireError::BadNonceLength));
        }
    }
}

#[test]
fn notify() {
    let mut body = hex("00004004");
    body.extend([0x11; 20]);
    check(
        PayloadType::NOTIFY,
        PayloadType::NONE,
        &body,
        Payload::Notify(NotifyRepr::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            &[0x11; 20],
        )),
    );
    body_truncations(
        PayloadType::NOTIFY,
        &body,
        4,
        WireError::BodyTruncated(PayloadType::NOTIFY),
    );

    let rekey = hex("03044009 11223344");
    check(
        PayloadType::NOTIFY,
        PayloadType::NONE,
        &rekey,
        Payload::Notify(NotifyRepr {
            protocol: ProtocolId::ESP,
            spi: vec![0x11, 0x22, 0x33, 0x44],
            notify_type: NotifyType::REKEY_SA,
            data: vec![],
        }),
    );
    assert_eq!(
        parse_body(PayloadType::NOTIFY, &rekey[..6]),
        Err(WireError::BodyTruncated(PayloadType::NOTIFY))
    );

    // MOBIKE (RFC 4555 4): the numbers on the wire.
    let mobike = [
        (NotifyType::MOBIKE_SUPPORTED, "0000400c"),
        (NotifyType::ADDITIONAL_IP4_ADDRESS, "0000400d c0a80002"),
        (
            NotifyType::ADDITIONAL_IP6_ADDRESS,
            "0000400e 20010db8000000000000000000000002",
        ),
        (NotifyType::NO_ADDITIONAL_ADDRESSES, "0000400f"),
        (NotifyType::UPDATE_SA_ADDRESSES, "00004010"),
        (NotifyType::COOKIE2, "00004011 0102030405060708"),
        (
            NotifyType::NO_NATS_ALLOWED,
            "00004012 c0a80001c0a8000201f401f4",
        ),
        (NotifyType::UNACCEPTABLE_ADDRESSES, "00000028"),
        (NotifyType::UNEXPECTED_NAT_DETECTED, "00000029"),
    ];
    for (ty, h) in mobike {
        let b = hex(h);
        check(
            PayloadType::NOTIFY,
            PayloadType::NONE,
            &b,
            Payload::Notify(NotifyRepr::new(ty, &b[4..])),
        );
    }
    // An unknown type survives the round trip.
    let b = hex("00007fff abcd");
    check(
        PayloadType::NOTIFY,
        PayloadType::NONE,
        &b,
        Payload::Notify(NotifyRepr::new(NotifyType(0x7fff), &[0xab, 0xcd])),
    );

    let n = NotifyRepr::invalid_ke_payload(DhGroup::ECP_256);
    assert_eq!(n.data, [0, 19]);
    assert_eq!(n.requested_group(), Some(DhGroup::ECP_256));
    let n = NotifyRepr::unsupported_critical_payload(PayloadType(0xf0));
    assert_eq!((n.notify_type.0, n.data.as_slice()), (1, &[0xf0][..]));
    let a = IpAddr::V6("2001:db8::2".parse().unwrap());
    let n = NotifyRepr::additional_address(a);
    assert_eq!(n.notify_type, NotifyType::ADDITIONAL_IP6_ADDRESS);
    assert_eq!(n.address(), Some(a));
    let a = IpAddr::V4(Ipv4Addr::new(192, 168, 0, 2));
    assert_eq!(NotifyRepr::additional_address(a).address(), Some(a));
    assert_eq!(
        NotifyRepr::new(NotifyType::ADDITIONAL_IP4_ADDRESS, &[1, 2, 3]).address(),
        None
    );

    assert!(NotifyType::INVALID_KE_PAYLOAD.is_error());
    assert!(NotifyType::UNEXPECTED_NAT_DETECTED.is_error());
    assert!(NotifyType(16383).is_error());
    assert!(NotifyType::INITIAL_CONTACT.is_status());
    assert!(NotifyType::COOKIE.is_status());
    assert_eq!(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED.0, 16430);
    assert_eq!(NotifyType::SIGNATURE_HASH_ALGORITHMS.0, 16431);
}

#[test]
fn delete() {
    let body = hex("03040002 aabbccdd 11223344");
    let want = DeleteRepr::esp(&[0xaabbccdd, 0x11223344]);
    check(
        PayloadType::DELETE,
        PayloadType::NONE,
        &body,
        Payload::Delete(want),
    );
    check(
        PayloadType::DELETE,
        PayloadType::NONE,
        &hex("01000000"),
        Payload::Delete(DeleteRepr::ike()),
    );
    for n in 0..body.len() {
        let r = parse_body(PayloadType::DELETE, &body[..n]);
        let want = if n < 4 {
            WireError::BodyTruncated(PayloadType::DELETE)
        } else {
            WireError::BadDeleteLength
        };
        assert_eq!(r, Err(want), "{n}");
    }
}

#[test]
fn vendor() {
    let body = hex("882fe56d6fd20dbc2251613b2ebe5beb");
    check(
        PayloadType::VENDOR,
        PayloadType::NONE,
        &body,
        Payload::Vendor(VendorRepr {
            vendor_id: body.clone(),
        }),
    );
}

#[test]
fn traffic_selectors() {
    let body = hex("02000000
         07000010 0000ffff 0a000000 0a0000ff
         08110028 01f401f4 20010db8000000000000000000000001 20010db80000000000000000000000ff");
    let want = TsRepr {
        selectors: vec![
            TrafficSelector::Ipv4 {
                ip_proto: 0,
                start_port: 0,
                end_port: 0xffff,
                start: Ipv4Addr::new(10, 0, 0, 0),
                end: Ipv4Addr::new(10, 0, 0, 255),
            },
            TrafficSelector::Ipv6 {
                ip_proto: 17,
                start_port: 500,
                end_port: 500,
                start: "2001:db8::1".parse().unwrap(),
                end: "2001:db8::ff".parse().unwrap(),
            },
        ],
    };
    check(
        PayloadType::TSI,
        PayloadType::NONE,
        &body,
        Payload::Tsi(want.clone()),
    );
    check(
        PayloadType::TSR,
        PayloadType::NONE,
        &body,
        Payload::Tsr(want),
    );
    body_truncations(
        PayloadType::TSI,
        &body,
        4,
        WireError::BodyTruncated(PayloadType::TSI),
    );
    let bad = |s: &str| parse_body(PayloadType::TSI, &hex(s)).unwrap_err();
    assert_eq!(
        bad("02000000 07000010 0000ffff 0a000000 0a0000ff"),
        WireError::SelectorCountMismatch
    );
    assert_eq!(
        bad("01000000 07000014 0000ffff 0a000000 0a0000ff 00000000"),
        WireError::BadSelectorLength
    );
    assert_eq!(bad("01000000 09000002"), WireError::BadSelectorLength);
    // An unknown selector type keeps its bytes.
    let odd = hex("01000000 09070008 aabbccdd");
    check(
        PayloadType::TSI,
        PayloadType::NONE,
        &odd,
        Payload::Tsi(TsRepr {
            selectors: vec![TrafficSelector::Unknown {
                ts_type: TsType(9),
                ip_proto: 7,
                data: vec![0xaa, 0xbb, 0xcc, 0xdd],
            }],
        }),
    );
}

#[test]
fn configuration() {
    let req = hex("01000000 00010000 00030000 00080000");
    let attr = |t: CfgAttrType, v: &[u8]| CfgAttr {
        attr_type: t,
        value: v.to_vec(),
    };
    check(
        PayloadType::CP,
        PayloadType::NONE,
        &req,
        Payload::Cp(CpRepr {
            cfg_type: CfgType::REQUEST,
            attributes: vec![
                attr(CfgAttrType::INTERNAL_IP4_ADDRESS, &[]),
                attr(CfgAttrType::INTERNAL_IP4_DNS, &[]),
                attr(CfgAttrType::INTERNAL_IP6_ADDRESS, &[]),
            ],
        }),
    );
    let reply = hex(
        "02000000 00010004 0a000005 00080011 20010db8000000000000000000000005 40 00030004 08080808",
    );
    let mut v6 = hex("20010db8000000000000000000000005");
    v6.push(64);
    check(
        PayloadType::CP,
        PayloadType::NONE,
        &reply,
        Payload::Cp(CpRepr {
            cfg_type: CfgType::REPLY,
            attributes: vec![
                attr(CfgAttrType::INTERNAL_IP4_ADDRESS, &[10, 0, 0, 5]),
                attr(CfgAttrType::INTERNAL_IP6_ADDRESS, &v6),
                attr(CfgAttrType::INTERNAL_IP4_DNS, &[8, 8, 8, 8]),
            ],
        }),
    );
    for n in 0..reply.len() {
        let r = parse_body(PayloadType::CP, &reply[..n]);
        let ok = [4, 12, 33].contains(&n);
        if n < 4 {
            assert_eq!(r, Err(WireError::BodyTruncated(PayloadType::CP)));
        } else if !ok {
            assert_eq!(r, Err(WireError::BadCpAttributeLength), "{n}");
        }
    }
    check(
        PayloadType::CP,
        PayloadType::NONE,
        &hex("04000000"),
        Payload::Cp(CpRepr {
            cfg_type: CfgType::ACK,
            attributes: vec![],
        }),
    );
}

#[test]
fn eap() {
    let body = [&hex("0107000a 01")[..], b"hello"].concat();
    check(
        PayloadType::EAP,
        PayloadType::NONE,
        &body,
        Payload::Eap(EapRepr {
            code: EapCode::REQUEST,
            identifier: 7,
            data: [&[1u8][..], b"hello"].concat(),
        }),
    );
    check(
        PayloadType::EAP,
        PayloadType::NONE,
        &hex("03070004"),
        Payload::Eap(EapRepr {
            code: EapCode::SUCCESS,
            identifier: 7,
            data: vec![],
        }),
    );
    for n in 0..body.len() {
        let want = if n < 4 {
            WireError::BodyTruncated(PayloadType::EAP)
        } else {
            WireError::BadEapLength
        };
        assert_eq!(parse_body(PayloadType::EAP, &body[..n]), Err(want));
    }
}

#[test]
fn sk_exposes_body_and_first_inner() {
    let body: Vec<u8> = (0..48).collect();
    check(
        PayloadType::SK,
        PayloadType::IDI,
        &body,
        Payload::Sk(SkRepr {
            first_inner: PayloadType::IDI,
            body: body.clone(),
        }),
    );
}

#[test]
fn skf() {
    let body = hex("00010003 0102030405060708");
    check(
        PayloadType::SKF,
        PayloadType::IDI,
        &body,
        Payload::Skf(SkfRepr {
            first_inner: PayloadType::IDI,
            fragment_number: 1,
            total_fragments: 3,
            body: (1..=8).collect(),
        }),
    );
    body_truncations(
        PayloadType::SKF,
        &body,
        4,
        WireError::BodyTruncated(PayloadType::SKF),
    );
    // RFC 7383 2.5: numbering starts at 1 and stops at the total.
    assert_eq!(
        parse_body(PayloadType::SKF, &hex("00000003")),
        Err(WireError::BadFragmentNumber)
    );
    assert_eq!(
        parse_body(PayloadType::SKF, &hex("00040003")),
        Err(WireError::BadFragmentNumber)
    );
}

#[test]
fn chain_skips_unknown_and_rejects_unknown_critical() {
    let v = hex("882fe56d6fd20dbc2251613b2ebe5beb");
    // V -> unknown(0xf0, not critical) -> V
    let mut bytes = wrap(PayloadType(0xf0), &v);
    bytes.extend(wrap(PayloadType::VENDOR, &[1, 2, 3]));
    bytes.extend(wrap(PayloadType::NONE, &v));
    let got = parse_payloads(PayloadType::VENDOR, &bytes).unwrap();
    assert_eq!(got.len(), 2);
    // Same with the critical bit set on the unknown one (RFC 7296 2.5).
    bytes[v.len() + 4 + 1] = 0x80;
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &bytes),
        Err(WireError::UnsupportedCriticalPayload(PayloadType(0xf0)))
    );
    // The critical bit of a known payload is ignored.
    let mut known = wrap(PayloadType::NONE, &v);
    known[1] = 0x80;
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &known).unwrap().len(),
        1
    );
    // An unknown critical payload is emitted with its bit.
    let list = [Payload::Unknown {
        ty: PayloadType(0xf1),
        critical: true,
        body: vec![9],
    }];
    let mut out = vec![0; payloads_buffer_len(&list)];
    emit_payloads(&list, &mut out).unwrap();
    assert_eq!(out, hex("00800005 09"));
}

#[test]
fn chain_errors() {
    // Bytes after the last payload.
    let mut b = wrap(PayloadType::NONE, &[1]);
    b.push(0);
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &b),
        Err(WireError::TrailingBytes)
    );
    // SK followed by anything.
    let mut b = wrap(PayloadType::IDI, &[0; 16]);
    b.extend(wrap(PayloadType::NONE, &[]));
    assert_eq!(
        parse_payloads(PayloadType::SK, &b),
        Err(WireError::EncryptedNotLast)
    );
    // Payload length below the generic header.
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &hex("00000003")),
        Err(WireError::BadPayloadLength(PayloadType::VENDOR))
    );
    // MAX_PAYLOADS empty vendor payloads pass, one more does not.
    let chain = |n: usize| {
        let mut b = Vec::new();
        for i in 0..n {
            let next = if i + 1 == n {
                PayloadType::NONE
            } else {
                PayloadType::VENDOR
            };
            b.extend(wrap(next, &[]));
        }
        b
    };
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &chain(MAX_PAYLOADS))
            .unwrap()
            .len(),
        MAX_PAYLOADS
    );
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &chain(MAX_PAYLOADS + 1)),
        Err(WireError::TooManyPayloads)
    );
}

#[test]
fn builder_refuses_what_cannot_be_encoded() {
    let emit = |list: &[Payload]| {
        let mut out = vec![0u8; payloads_buffer_len(list)];
        emit_payloads(list, &mut out)
    };
    let v = |n: usize| {
        Payload::Vendor(VendorRepr {
            vendor_id: vec![0; n],
        })
    };
    assert_eq!(emit(&[v(65531)]).map(|_| ()), Ok(()));
    assert_eq!(
        emit(&[v(65532)]),
        Err(EmitError::PayloadTooLong(PayloadType::VENDOR))
    );
    let sk = Payload::Sk(SkRepr {
        first_inner: PayloadType::IDI,
        body: vec![0; 32],
    });
    assert_eq!(emit(&[sk.clone(), v(1)]), Err(EmitError::EncryptedNotLast));
    assert_eq!(emit(&[v(1), sk]), Ok(PayloadType::VENDOR));
    let mut n = NotifyRepr::new(NotifyType::REKEY_SA, &[]);
    n.spi = vec![0; 256];
    assert_eq!(emit(&[Payload::Notify(n)]), Err(EmitError::SpiTooLong));
    let mut d = DeleteRepr::esp(&[1, 2]);
    d.num_spis = 3;
    assert_eq!(
        emit(&[Payload::Delete(d)]),
        Err(EmitError::InconsistentDelete)
    );
    let sel = TrafficSelector::Unknown {
        ts_type: TsType(9),
        ip_proto: 0,
        data: vec![],
    };
    let ts = TsRepr {
        selectors: vec![sel; 256],
    };
    assert_eq!(emit(&[Payload::Tsi(ts)]), Err(EmitError::TooManySelectors));
    let mut p = sa_ike();
    p.transforms = vec![Transform::new(TransformType::ESN, TransformId::ESN_NO); 256];
    assert_eq!(
        emit(&[Payload::Sa(SaRepr { proposals: vec![p] })]),
        Err(EmitError::TooManyTransforms)
    );
    let mut out = [0u8; 3];
    assert_eq!(
        emit_payloads(&[v(0)], &mut out),
        Err(EmitError::BufferTooSmall)
    );
}
