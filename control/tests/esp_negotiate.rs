//! ESP proposal negotiation on the wire transforms (RFC 7296 2.7, 3.3): what we offer,
//! what a responder selects, what an initiator accepts back. Transform IDs: ENCR_AES_CBC
//! 12 and ENCR_AES_GCM_16 20 with the Key Length attribute, ENCR_CHACHA20_POLY1305 28
//! without (RFC 7634 3), AUTH_HMAC_SHA2_256_128 12, _384_192 13, _512_256 14.

use mobiked_control::ike::conn::EspProposal;
use mobiked_control::ike::crypto::{EspEncr, Integ};
use mobiked_control::ike::sa::negotiate::{accept_esp, esp_answer, esp_offer, select_esp};
use mobiked_control::ike::wire::sa::{Attribute, Proposal, Transform, TransformId, TransformType};
use mobiked_control::ike::wire::ProtocolId;
use shared::sa::{EspCipher, EspInteg};

const SPI: u32 = 0xc0de_0001;

fn t(ty: TransformType, id: u16) -> Transform {
    Transform::new(ty, TransformId(id))
}

fn encr(id: u16, bits: Option<u16>) -> Transform {
    let mut x = t(TransformType::ENCR, id);
    if let Some(b) = bits {
        x.attributes.push(Attribute::key_length(b));
    }
    x
}

fn integ(id: u16) -> Transform {
    t(TransformType::INTEG, id)
}

fn esn(on: bool) -> Transform {
    t(TransformType::ESN, on as u16)
}

fn proposal(transforms: Vec<Transform>) -> Proposal {
    Proposal {
        number: 1,
        protocol: ProtocolId::ESP,
        spi: SPI.to_be_bytes().to_vec(),
        transforms,
    }
}

/// (type, id, key length) of each transform.
fn shape(p: &Proposal) -> Vec<(u8, u16, Option<u16>)> {
    p.transforms
        .iter()
        .map(|x| (x.transform_type.0, x.id.0, x.key_length()))
        .collect()
}

#[test]
fn default_offer_is_aead_first_then_cbc_with_hmac_sha2() {
    let offer = esp_offer(&EspProposal::defaults(), SPI, false, None);
    assert_eq!(offer.len(), 2);
    assert_eq!(
        shape(&offer[0]),
        vec![
            (1, 20, Some(128)),
            (1, 20, Some(256)),
            (1, 28, None),
            (5, 0, None),
            (5, 1, None),
        ]
    );
    assert_eq!(
        shape(&offer[1]),
        vec![
            (1, 12, Some(128)),
            (1, 12, Some(256)),
            (3, 12, None),
            (3, 13, None),
            (3, 14, None),
            (5, 0, None),
            (5, 1, None),
        ]
    );
    // ChaCha20-Poly1305 carries no attribute at all (RFC 7634 3).
    assert!(offer[0].transforms[2].attributes.is_empty());
}

#[test]
fn transforms_parse_only_with_the_right_key_length_attribute() {
    assert_eq!(
        EspEncr::from_transform(&encr(28, None)),
        Some(EspEncr::ChaCha20Poly1305)
    );
    assert_eq!(EspEncr::from_transform(&encr(28, Some(256))), None);
    assert_eq!(
        EspEncr::from_transform(&encr(12, Some(128))),
        Some(EspEncr::AesCbc128)
    );
    assert_eq!(
        EspEncr::from_transform(&encr(12, Some(256))),
        Some(EspEncr::AesCbc256)
    );
    assert_eq!(EspEncr::from_transform(&encr(12, Some(192))), None);
    assert_eq!(EspEncr::from_transform(&encr(12, None)), None);
    for e in EspEncr::ALL {
        assert_eq!(EspEncr::from_transform(&e.transform()), Some(e));
    }
    assert_eq!(
        Integ::from_id(TransformId(12)),
        Some(Integ::HmacSha2_256_128)
    );
    assert_eq!(
        Integ::from_id(TransformId(13)),
        Some(Integ::HmacSha2_384_192)
    );
    assert_eq!(
        Integ::from_id(TransformId(14)),
        Some(Integ::HmacSha2_512_256)
    );
}

#[test]
fn the_responder_selects_what_windows_openiked_and_chacha_clients_propose() {
    let ours = EspProposal::defaults();
    let cases = [
        // Windows-style: AES-CBC-256 with HMAC-SHA-256-128.
        (
            vec![encr(12, Some(256)), integ(12), esn(false)],
            EspCipher::AesCbc256(EspInteg::HmacSha256_128),
        ),
        // OpenIKED-style: several of each in one proposal; our preference decides.
        (
            vec![
                encr(12, Some(256)),
                encr(12, Some(128)),
                integ(14),
                integ(13),
                esn(false),
            ],
            EspCipher::AesCbc128(EspInteg::HmacSha384_192),
        ),
        (vec![encr(28, None), esn(true)], EspCipher::ChaCha20Poly1305),
        // INTEG NONE with an AEAD is allowed (RFC 7296 3.3).
        (
            vec![encr(20, Some(256)), integ(0), esn(false)],
            EspCipher::AesGcm16_256,
        ),
    ];
    for (transforms, want) in cases {
        let theirs = [proposal(transforms)];
        let (_, suite, spi) =
            select_esp(&ours, &theirs, None, true).unwrap_or_else(|| panic!("{want} refused"));
        assert_eq!(suite.cipher, want);
        assert_eq!(spi, SPI);
        // The answer carries exactly the chosen transforms, INTEG for CBC only.
        let answer = esp_answer(1, 7, &suite);
        let integs: Vec<u16> = answer
            .transforms
            .iter()
            .filter(|x| x.transform_type == TransformType::INTEG)
            .map(|x| x.id.0)
            .collect();
        match want.integ() {
            Some(i) => assert_eq!(integs, vec![Integ::from_esp(i).id().0]),
            None => assert!(integs.is_empty()),
        }
        // And our own initiator logic accepts that answer.
        let (back, _) = accept_esp(&EspProposal::defaults(), &answer, None).unwrap();
        assert_eq!(back.cipher, want);
    }
}

#[test]
fn the_responder_refuses_aead_with_integrity_and_cbc_without() {
    let ours = EspProposal::defaults();
    for transforms in [
        vec![encr(20, Some(128)), integ(12), esn(false)],
        vec![encr(28, None), integ(14), esn(false)],
        vec![encr(12, Some(128)), esn(false)],
        vec![encr(12, Some(128)), integ(0), esn(false)],
        // Only integrity algorithms we do not implement (HMAC-SHA1-96).
        vec![encr(12, Some(128)), integ(2), esn(false)],
        // ChaCha20-Poly1305 with a key length attribute is not RFC 7634's transform.
        vec![encr(28, Some(256)), esn(false)],
    ] {
        let theirs = [proposal(transforms.clone())];
        assert!(
            select_esp(&ours, &theirs, None, true).is_none(),
            "{:?}",
            shape(&theirs[0])
        );
    }
}

#[test]
fn the_initiator_refuses_answers_that_break_the_rules_or_were_not_offered() {
    let ours = vec![EspProposal::parse("aes128-sha256").unwrap()];
    let ok = proposal(vec![encr(12, Some(128)), integ(12), esn(false)]);
    assert_eq!(
        accept_esp(&ours, &ok, None).map(|(s, _)| s.cipher),
        Some(EspCipher::AesCbc128(EspInteg::HmacSha256_128))
    );
    for bad in [
        // Not offered: another HMAC, another key size.
        vec![encr(12, Some(128)), integ(13), esn(false)],
        vec![encr(12, Some(256)), integ(12), esn(false)],
        // CBC without integrity, or with NONE.
        vec![encr(12, Some(128)), esn(false)],
        vec![encr(12, Some(128)), integ(0), esn(false)],
        // Two integrity algorithms: a responder chooses one (RFC 7296 2.7).
        vec![encr(12, Some(128)), integ(12), integ(13), esn(false)],
        // An AEAD answer with integrity.
        vec![encr(20, Some(128)), integ(12), esn(false)],
    ] {
        let p = proposal(bad);
        assert!(accept_esp(&ours, &p, None).is_none(), "{:?}", shape(&p));
    }
    let chacha = vec![EspProposal::parse("chacha20poly1305").unwrap()];
    let p = proposal(vec![encr(28, None), esn(false)]);
    assert_eq!(
        accept_esp(&chacha, &p, None).map(|(s, _)| s.cipher),
        Some(EspCipher::ChaCha20Poly1305)
    );
    let p = proposal(vec![encr(28, None), integ(12), esn(false)]);
    assert!(accept_esp(&chacha, &p, None).is_none());
}

#[test]
fn proposal_strings_follow_strongswan_and_refuse_impossible_mixes() {
    let p = EspProposal::parse("aes256-sha384").unwrap();
    assert_eq!(p.encr, vec![EspEncr::AesCbc256]);
    assert_eq!(p.integ, vec![Integ::HmacSha2_384_192]);
    let p = EspProposal::parse("aes128-aes256-sha256-sha512-esn-noesn").unwrap();
    assert_eq!(p.encr, vec![EspEncr::AesCbc128, EspEncr::AesCbc256]);
    assert_eq!(
        p.integ,
        vec![Integ::HmacSha2_256_128, Integ::HmacSha2_512_256]
    );
    assert_eq!(p.esn, vec![true, false]);
    let p = EspProposal::parse("chacha20poly1305").unwrap();
    assert_eq!(p.encr, vec![EspEncr::ChaCha20Poly1305]);
    assert!(p.integ.is_empty());
    for (bad, says) in [
        ("aes128gcm16-sha256", "carries its own integrity"),
        ("chacha20poly1305-sha512", "carries its own integrity"),
        ("aes128", "needs an integrity algorithm"),
        ("aes128gcm16-aes128-sha256", "mixes AEAD and CBC"),
        ("aes128-sha1", "unknown ESP algorithm `sha1`"),
        ("aes192-sha256", "unknown ESP algorithm `aes192`"),
        ("sha256", "no ESP encryption algorithm"),
    ] {
        let e = EspProposal::parse(bad).unwrap_err();
        assert!(e.0.contains(says), "{bad}: {}", e.0);
    }
    // Unknown names list the valid ones.
    let e = EspProposal::parse("aes128-md5").unwrap_err();
    for name in ["aes128gcm16", "chacha20poly1305", "aes256", "sha384", "esn"] {
        assert!(e.0.contains(name), "{}", e.0);
    }
}
