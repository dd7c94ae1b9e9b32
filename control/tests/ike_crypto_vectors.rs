//! Known answers and differential checks for the IKEv2 crypto that complement
//! tests/ike_crypto.rs: the RFC 4231 cases RFC 4868 leaves out (short and
//! longer-than-block keys, truncation), RFC 4868 AUTH256-4, every single-bit flip
//! of sealed and hand-built SK messages (with an unencrypted Notify before SK),
//! ring's HMAC and RustCrypto's AES-GCM as independent references for the key
//! schedule and the SK payload, and the child SA keys of real strongSwan exchanges
//! checked by decrypting the ESP packets charon sent.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use mobiked_control::ike::crypto::dh::KeyShare;
use mobiked_control::ike::crypto::keys::{psk_auth, skeyseed, ChildKeys, IkeKeys};
use mobiked_control::ike::crypto::random::SeededRandom;
use mobiked_control::ike::crypto::sk::{aes_cbc_decrypt, open_message, seal_message, SkKeys};
use mobiked_control::ike::crypto::{CryptoError, DhGroup, Encr, EspSuite, IkeSuite, Integ, Prf};
use mobiked_control::ike::wire::header::Packet;
use mobiked_control::ike::wire::{ExchangeType, HeaderRepr, PayloadIter, PayloadType, HEADER_LEN};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// HMAC straight from ring, without going through `Prf` or `Integ`.
fn hmac(prf: Prf, key: &[u8], data: &[u8]) -> Vec<u8> {
    let alg = match prf {
        Prf::HmacSha2_256 => ring::hmac::HMAC_SHA256,
        Prf::HmacSha2_384 => ring::hmac::HMAC_SHA384,
        Prf::HmacSha2_512 => ring::hmac::HMAC_SHA512,
    };
    ring::hmac::sign(&ring::hmac::Key::new(alg, key), data)
        .as_ref()
        .to_vec()
}

/// The PRF with the same hash as an integrity algorithm.
fn hash_of(i: Integ) -> Prf {
    match i {
        Integ::HmacSha2_256_128 => Prf::HmacSha2_256,
        Integ::HmacSha2_384_192 => Prf::HmacSha2_384,
        Integ::HmacSha2_512_256 => Prf::HmacSha2_512,
    }
}

/// prf+ (RFC 7296 2.13) over ring's HMAC: T1 = prf(K, S | 0x01),
/// Tn = prf(K, Tn-1 | S | n).
fn prf_plus_ring(prf: Prf, key: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut t = Vec::new();
    for n in 1..=255u8 {
        if out.len() >= len {
            break;
        }
        let input = [&t[..], seed, &[n]].concat();
        t = hmac(prf, key, &input);
        out.extend_from_slice(&t);
    }
    assert!(out.len() >= len, "more than 255 blocks");
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------
// HMAC-SHA2: RFC 4231 4.3, 4.6-4.8 and RFC 4868 2.7.2.1 AUTH256-4
// ---------------------------------------------------------------------------

/// The 131-octet key of RFC 4231 test cases 6 and 7, longer than the block of
/// every SHA-2 variant, so HMAC must hash it first.
fn rfc4231_long_key() -> Vec<u8> {
    vec![0xaa; 131]
}

#[test]
fn rfc4231_prf_vectors() {
    // (key, data, HMAC-SHA-256, HMAC-SHA-384, HMAC-SHA-512).
    let cases = [
        // 4.3 Test Case 2: a 4-octet key ("Jefe"), shorter than any output.
        (
            hex("4a656665"),
            b"what do ya want for nothing?".to_vec(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e
             8e2240ca5e69e2c78b3239ecfab21649",
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        ),
        // 4.7 Test Case 6: a key longer than the block.
        (
            rfc4231_long_key(),
            hex(
                "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a
                 65204b6579202d2048617368204b6579204669727374",
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6
             0c2ef6ab4030fe8296248df163f44952",
            "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352
             6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
        ),
        // 4.8 Test Case 7: a key and data both longer than the block.
        (
            rfc4231_long_key(),
            hex(
                "5468697320697320612074657374207573696e672061206c6172676572207468
                 616e20626c6f636b2d73697a65206b657920616e642061206c61726765722074
                 68616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565
                 647320746f20626520686173686564206265666f7265206265696e6720757365
                 642062792074686520484d414320616c676f726974686d2e",
            ),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5
             a678cc31e799176d3860e6110c46523e",
            "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944
             b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
        ),
    ];
    for (n, (key, data, s256, s384, s512)) in cases.iter().enumerate() {
        for (prf, want) in [
            (Prf::HmacSha2_256, s256),
            (Prf::HmacSha2_384, s384),
            (Prf::HmacSha2_512, s512),
        ] {
            let want = hex(want);
            assert_eq!(prf.compute(key, &[data]), want, "case {n} {prf:?}");
            // The same bytes fed in pieces (as prf+ and AUTH do).
            let (a, b) = data.split_at(data.len() / 2);
            assert_eq!(prf.compute(key, &[a, b]), want, "case {n} {prf:?} split");
        }
    }
}

#[test]
fn rfc4231_truncation_matches_the_integ_prefix() {
    // 4.6 Test Case 5: the first 128 bits of HMAC-SHA-2 with a 20-octet key.
    // HMAC-SHA-256-128 is exactly that truncation (RFC 4868 2.3); the 384 and
    // 512 ICVs (192 and 256 bits) must start with it.
    let key = hex("0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c");
    let data = b"Test With Truncation";
    for (integ, want) in [
        (Integ::HmacSha2_256_128, "a3b6167473100ee06e0c796c2955552b"),
        (Integ::HmacSha2_384_192, "3abf34c3503b2a23a46efc619baef897"),
        (Integ::HmacSha2_512_256, "415fad6271580a531d4179bc891d87a6"),
    ] {
        let want = hex(want);
        let icv = integ.compute(&key, &[data]);
        assert_eq!(icv.len(), integ.icv_len());
        assert_eq!(&icv[..16], &want[..], "{integ:?}");
        assert!(integ.verify(&key, &[data], &icv));
        // The 128-bit prefix alone is not an ICV for the longer algorithms.
        assert_eq!(
            integ.verify(&key, &[data], &want),
            integ == Integ::HmacSha2_256_128,
            "{integ:?}"
        );
    }
}

#[test]
fn rfc4868_auth256_4() {
    // RFC 4868 2.7.2.1 Test Case AUTH256-4: a 32-octet key 0x01..0x20 and 50
    // octets of 0xcd; the full PRF output and the 128-bit ICV.
    let key: Vec<u8> = (1..=32).collect();
    let data = [0xcdu8; 50];
    let full = hex("372efcf9b40b35c2115b1346903d2ef42fced46f0846e7257bb156d3d7b30d3f");
    let icv = hex("372efcf9b40b35c2115b1346903d2ef4");
    assert_eq!(Prf::HmacSha2_256.compute(&key, &[&data]), full);
    let integ = Integ::HmacSha2_256_128;
    assert_eq!(integ.compute(&key, &[&data]), icv);
    assert!(integ.verify(&key, &[&data], &icv));
    // Every one of the 128 single-bit changes of the ICV is refused.
    for bit in 0..icv.len() * 8 {
        let mut bad = icv.clone();
        bad[bit / 8] ^= 0x80 >> (bit % 8);
        assert!(!integ.verify(&key, &[&data], &bad), "bit {bit}");
    }
    // So is the right ICV over data with one bit changed, or under another key.
    let mut d = data;
    d[49] ^= 1;
    assert!(!integ.verify(&key, &[&d], &icv));
    let mut k = key.clone();
    k[0] ^= 1;
    assert!(!integ.verify(&k, &[&data], &icv));
}

// ---------------------------------------------------------------------------
// prf+ at its edges (RFC 7296 2.13)
// ---------------------------------------------------------------------------

#[test]
fn prf_plus_against_ring_at_block_edges() {
    // A 300-octet key (longer than the block) and a seed cut at odd places.
    let key: Vec<u8> = (0..300u32).map(|i| (i * 13) as u8).collect();
    let parts: [&[u8]; 4] = [b"Ni", b"", b"Nr|", &[0, 1, 2, 3, 4, 5, 6, 7]];
    let seed = parts.concat();
    for prf in Prf::ALL {
        let b = prf.out_len();
        for len in [
            0,
            1,
            b - 1,
            b,
            b + 1,
            2 * b,
            3 * b - 5,
            254 * b + 1,
            255 * b,
        ] {
            let got = prf.plus(&key, &parts, len).unwrap();
            assert_eq!(got, prf_plus_ring(prf, &key, &seed, len), "{prf:?} {len}");
        }
        assert_eq!(
            prf.plus(&key, &parts, 255 * b + 1),
            Err(CryptoError::PrfPlusTooLong)
        );
        assert_eq!(
            prf.plus(&key, &parts, 256 * b),
            Err(CryptoError::PrfPlusTooLong)
        );
    }
}

// ---------------------------------------------------------------------------
// Key exchange: shares that must be refused
// ---------------------------------------------------------------------------

#[test]
fn ke_shares_of_other_groups_are_refused() {
    // A public value of one group offered to another (RFC 7296 3.4: the length
    // is fixed by the group) is refused before any point decoding.
    let mut rng = SeededRandom::new(77);
    let shares: Vec<KeyShare> = DhGroup::ALL
        .iter()
        .map(|g| KeyShare::generate(*g, &mut rng))
        .collect();
    for a in &shares {
        for b in &shares {
            let r = a.agree(b.public());
            if a.group() == b.group() {
                assert!(r.is_ok(), "{:?}", a.group());
            } else {
                assert_eq!(
                    r.unwrap_err(),
                    CryptoError::KeShareLength,
                    "{:?} <- {:?}",
                    a.group(),
                    b.group()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The SK payload: hand-built messages with a Notify before SK, bit flips,
// RustCrypto AES-GCM and ring HMAC as references
// ---------------------------------------------------------------------------

const NOTIFY_BODY: [u8; 4] = [0, 0, 0x40, 0x0c]; // MOBIKE_SUPPORTED, no SPI

fn header_bytes(next: PayloadType, total: usize) -> Vec<u8> {
    let h = HeaderRepr {
        spi_i: 0xa1a2a3a4a5a6a7a8,
        spi_r: 0xb1b2b3b4b5b6b7b8,
        next_payload: next,
        length: total as u32,
        minor_version: 0,
        exchange_type: ExchangeType::INFORMATIONAL,
        initiator: false,
        higher_version: false,
        response: true,
        message_id: 7,
    };
    let mut b = vec![0u8; HEADER_LEN];
    h.emit(&mut Packet::new_unchecked(&mut b[..]));
    b
}

/// Header, then an unencrypted Notify, then the SK generic header; returns the
/// bytes up to (not including) the IV.
fn head_with_notify(total: usize, sk_len: usize, first_inner: PayloadType) -> Vec<u8> {
    let mut m = header_bytes(PayloadType::NOTIFY, total);
    m.extend_from_slice(&[PayloadType::SK.0, 0, 0, 8]);
    m.extend_from_slice(&NOTIFY_BODY);
    m.extend_from_slice(&[first_inner.0, 0]);
    m.extend_from_slice(&(sk_len as u16).to_be_bytes());
    m
}

/// Offset of the SK generic header in a message built by [`head_with_notify`].
const SK_AT_NOTIFY: usize = HEADER_LEN + 8;

/// A CBC message with a Notify before SK, built by hand; the ICV computed with
/// `Integ::compute` over header through ciphertext (RFC 7296 3.14). The padding
/// octets are non-zero: their values are not checked.
fn cbc_with_notify(integ: Integ, sk_e: &[u8], sk_a: &[u8], inner: &[u8]) -> Vec<u8> {
    let iv: Vec<u8> = (0..16).map(|i| 0x30 + i as u8).collect();
    let pad = (16 - (inner.len() + 1) % 16) % 16;
    let mut pt = inner.to_vec();
    pt.extend((0..pad).map(|i| 0xf0 | i as u8));
    pt.push(pad as u8);
    assert_eq!(pt.len() % 16, 0);
    let mut ct = pt;
    mobiked_control::ike::crypto::sk::aes_cbc_encrypt(sk_e, &iv, &mut ct).unwrap();
    let sk_len = 4 + 16 + ct.len() + integ.icv_len();
    let total = SK_AT_NOTIFY + sk_len;
    let mut m = head_with_notify(total, sk_len, PayloadType::DELETE);
    m.extend_from_slice(&iv);
    m.extend_from_slice(&ct);
    let icv = integ.compute(sk_a, &[&m]);
    m.extend_from_slice(&icv);
    assert_eq!(m.len(), total);
    m
}

/// A GCM message with a Notify before SK, sealed by RustCrypto: AAD from the IKE
/// header through the SK generic header (RFC 5282 5.1), nonce salt | IV (RFC 5282
/// 4), and `pad` octets of padding before the pad length.
fn gcm_with_notify(encr: Encr, sk_e: &[u8], iv: [u8; 8], inner: &[u8], pad: u8) -> Vec<u8> {
    let mut pt = inner.to_vec();
    pt.extend_from_slice(&vec![0x5a; pad as usize]);
    pt.push(pad);
    let sk_len = 4 + 8 + pt.len() + 16;
    let total = SK_AT_NOTIFY + sk_len;
    let mut m = head_with_notify(total, sk_len, PayloadType::DELETE);
    let ct = gcm(encr, sk_e, &iv, &m, &pt, true).unwrap();
    m.extend_from_slice(&iv);
    m.extend_from_slice(&ct);
    assert_eq!(m.len(), total);
    m
}

/// RustCrypto AES-GCM with an IKE SK_e (key | 4-octet salt).
fn gcm(encr: Encr, sk_e: &[u8], iv: &[u8], aad: &[u8], msg: &[u8], seal: bool) -> Option<Vec<u8>> {
    let (key, salt) = sk_e.split_at(sk_e.len() - 4);
    let nonce = [salt, iv].concat();
    let nonce = aes_gcm::Nonce::from_slice(&nonce);
    let p = Payload { msg, aad };
    match (encr, seal) {
        (Encr::AesGcm16_128, true) => aes_gcm::Aes128Gcm::new_from_slice(key)
            .unwrap()
            .encrypt(nonce, p)
            .ok(),
        (Encr::AesGcm16_128, false) => aes_gcm::Aes128Gcm::new_from_slice(key)
            .unwrap()
            .decrypt(nonce, p)
            .ok(),
        (Encr::AesGcm16_256, true) => aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .encrypt(nonce, p)
            .ok(),
        (Encr::AesGcm16_256, false) => aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .decrypt(nonce, p)
            .ok(),
        _ => panic!("{encr:?} is not GCM"),
    }
}

fn sk_suites() -> Vec<(Encr, Option<Integ>)> {
    let mut v = Vec::new();
    for e in Encr::ALL {
        if e.is_aead() {
            v.push((e, None));
        } else {
            v.extend(Integ::ALL.into_iter().map(|i| (e, Some(i))));
        }
    }
    v
}

fn key_bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| {
            seed.wrapping_mul(31)
                .wrapping_add((i as u8).wrapping_mul(7))
        })
        .collect()
}

/// Flips every bit of `msg` in turn: each change must make `open_message` fail,
/// and with `SkIntegrity` unless the octet is one of `framing` (lengths and Next
/// Payload fields, which break the parse before the check, and the major
/// version, which the header parse refuses). No octet of these messages lies
/// outside the ICV or AEAD tag: the ICV covers everything before it, the tag
/// is checked as part of decryption.
fn every_bit_flip_fails(keys: &SkKeys, msg: &[u8], framing: &[usize], what: &str) {
    for i in 0..msg.len() {
        for bit in 0..8 {
            let mut m = msg.to_vec();
            m[i] ^= 1 << bit;
            let r = open_message(keys, &m);
            let e = r.expect_err(&format!("{what}: octet {i} bit {bit} opened"));
            let major_version = i == 17 && bit >= 4;
            if !framing.contains(&i) && !major_version {
                assert_eq!(e, CryptoError::SkIntegrity, "{what}: octet {i} bit {bit}");
            }
        }
    }
}

#[test]
fn sealed_messages_refuse_every_single_bit_flip() {
    let mut rng = SeededRandom::new(21);
    // Next Payload and Length of the IKE header, Length of the SK payload.
    let framing = [16, 24, 25, 26, 27, HEADER_LEN + 2, HEADER_LEN + 3];
    for (encr, integ) in sk_suites() {
        let sk_e = key_bytes(encr.keymat_len(), 1);
        let sk_a = key_bytes(integ.map_or(0, |i| i.key_len()), 2);
        let keys = SkKeys::new(encr, integ, &sk_e, &sk_a).unwrap();
        let h = HeaderRepr::parse(
            &Packet::new_checked(&header_bytes(PayloadType::NONE, 28)[..]).unwrap(),
        )
        .unwrap();
        for len in [0usize, 15, 33] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x99).collect();
            let msg = seal_message(&keys, &mut rng, &h, PayloadType::NOTIFY, &pt).unwrap();
            assert_eq!(open_message(&keys, &msg).unwrap().plaintext, pt);
            every_bit_flip_fails(&keys, &msg, &framing, &format!("{encr:?} {integ:?} {len}"));
        }
    }
}

#[test]
fn cbc_with_a_notify_before_sk_opens_and_resists_bit_flips() {
    let inner = b"\x00\x00\x00\x0c\x01\x08\x00\x01 delete me";
    // Next Payload and Length of the header, Next Payload and Length of the
    // Notify, Length of SK.
    let framing = [
        16,
        24,
        25,
        26,
        27,
        HEADER_LEN,
        HEADER_LEN + 2,
        HEADER_LEN + 3,
        SK_AT_NOTIFY + 2,
        SK_AT_NOTIFY + 3,
    ];
    for encr in [Encr::AesCbc128, Encr::AesCbc256] {
        for integ in Integ::ALL {
            let sk_e = key_bytes(encr.keymat_len(), 3);
            let sk_a = key_bytes(integ.key_len(), 4);
            let keys = SkKeys::new(encr, Some(integ), &sk_e, &sk_a).unwrap();
            for cut in [0, 1, 11, inner.len()] {
                let m = cbc_with_notify(integ, &sk_e, &sk_a, &inner[..cut]);
                let o = open_message(&keys, &m).unwrap();
                assert_eq!(o.plaintext, &inner[..cut], "{encr:?} {integ:?} {cut}");
                assert_eq!(o.first_inner, PayloadType::DELETE);
                assert_eq!(o.header.next_payload, PayloadType::NOTIFY);
                assert_eq!(o.header.exchange_type, ExchangeType::INFORMATIONAL);
            }
            let m = cbc_with_notify(integ, &sk_e, &sk_a, inner);
            every_bit_flip_fails(&keys, &m, &framing, &format!("{encr:?} {integ:?}"));
            // The same message with the ICV taken over SK alone (leaving out the
            // header and the Notify) is refused: the ICV must cover both.
            let icv_at = m.len() - integ.icv_len();
            let mut wrong = m.clone();
            let icv = integ.compute(&sk_a, &[&m[SK_AT_NOTIFY..icv_at]]);
            wrong[icv_at..].copy_from_slice(&icv);
            assert_eq!(
                open_message(&keys, &wrong).unwrap_err(),
                CryptoError::SkIntegrity
            );
        }
    }
}

#[test]
fn gcm_with_a_notify_before_sk_from_rustcrypto() {
    let inner = b"\x00\x00\x00\x08\x03\x04\x00\x00";
    let framing = [
        16,
        24,
        25,
        26,
        27,
        HEADER_LEN,
        HEADER_LEN + 2,
        HEADER_LEN + 3,
        SK_AT_NOTIFY + 2,
        SK_AT_NOTIFY + 3,
    ];
    for encr in [Encr::AesGcm16_128, Encr::AesGcm16_256] {
        let sk_e = key_bytes(encr.keymat_len(), 5);
        let keys = SkKeys::new(encr, None, &sk_e, &[]).unwrap();
        for pad in [0u8, 1, 3, 16] {
            let m = gcm_with_notify(encr, &sk_e, *b"IV-octet", inner, pad);
            let o = open_message(&keys, &m).unwrap();
            assert_eq!(o.plaintext, inner, "{encr:?} pad {pad}");
            assert_eq!(o.first_inner, PayloadType::DELETE);
        }
        let m = gcm_with_notify(encr, &sk_e, *b"IV-octet", inner, 2);
        every_bit_flip_fails(&keys, &m, &framing, &format!("{encr:?}"));
        // Sealed with the AAD stopping before the Notify: refused.
        let pt = [&inner[..], &[0]].concat();
        let total = SK_AT_NOTIFY + 4 + 8 + pt.len() + 16;
        let mut bad = head_with_notify(total, total - SK_AT_NOTIFY, PayloadType::DELETE);
        let ct = gcm(encr, &sk_e, b"IV-octet", &bad[SK_AT_NOTIFY..], &pt, true).unwrap();
        bad.extend_from_slice(b"IV-octet");
        bad.extend_from_slice(&ct);
        assert_eq!(bad.len(), total);
        assert_eq!(
            open_message(&keys, &bad).unwrap_err(),
            CryptoError::SkIntegrity
        );
    }
}

#[test]
fn sealed_gcm_decrypts_with_rustcrypto() {
    let mut rng = SeededRandom::new(22);
    let h =
        HeaderRepr::parse(&Packet::new_checked(&header_bytes(PayloadType::NONE, 28)[..]).unwrap())
            .unwrap();
    for encr in [Encr::AesGcm16_128, Encr::AesGcm16_256] {
        let sk_e = key_bytes(encr.keymat_len(), 6);
        let keys = SkKeys::new(encr, None, &sk_e, &[]).unwrap();
        for len in [0usize, 1, 15, 16, 17, 300] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 3) as u8).collect();
            let m = seal_message(&keys, &mut rng, &h, PayloadType::IDR, &pt).unwrap();
            let iv_at = HEADER_LEN + 4;
            let inner = gcm(
                encr,
                &sk_e,
                &m[iv_at..iv_at + 8],
                &m[..iv_at],
                &m[iv_at + 8..],
                false,
            )
            .expect("RustCrypto refused our SK payload");
            // Plaintext, no padding, pad length 0 (RFC 5282 3).
            assert_eq!(inner.len(), len + 1);
            assert_eq!(&inner[..len], &pt[..]);
            assert_eq!(inner[len], 0);
            // The IV is the explicit 8 octets and differs between messages.
            let m2 = seal_message(&keys, &mut rng, &h, PayloadType::IDR, &pt).unwrap();
            assert_ne!(m[iv_at..iv_at + 8], m2[iv_at..iv_at + 8]);
        }
    }
}

#[test]
fn sealed_cbc_icv_and_padding_checked_with_ring() {
    let mut rng = SeededRandom::new(23);
    let h =
        HeaderRepr::parse(&Packet::new_checked(&header_bytes(PayloadType::NONE, 28)[..]).unwrap())
            .unwrap();
    for encr in [Encr::AesCbc128, Encr::AesCbc256] {
        for integ in Integ::ALL {
            let sk_e = key_bytes(encr.keymat_len(), 7);
            let sk_a = key_bytes(integ.key_len(), 8);
            let keys = SkKeys::new(encr, Some(integ), &sk_e, &sk_a).unwrap();
            for len in [0usize, 1, 14, 15, 16, 31, 47, 200] {
                let pt: Vec<u8> = (0..len).map(|i| (i * 5) as u8).collect();
                let m = seal_message(&keys, &mut rng, &h, PayloadType::IDI, &pt).unwrap();
                let icv_at = m.len() - integ.icv_len();
                // ICV = first half of HMAC over header .. ciphertext (RFC 7296
                // 3.14, RFC 4868 2.3).
                let full = hmac(hash_of(integ), &sk_a, &m[..icv_at]);
                assert_eq!(&m[icv_at..], &full[..integ.icv_len()]);
                // Minimal padding: plaintext | padding | pad length fills whole
                // blocks with fewer than 16 octets of padding.
                let iv_at = HEADER_LEN + 4;
                let mut ct = m[iv_at + 16..icv_at].to_vec();
                assert_eq!(ct.len() % 16, 0);
                aes_cbc_decrypt(&sk_e, &m[iv_at..iv_at + 16], &mut ct).unwrap();
                let pad = *ct.last().unwrap() as usize;
                assert!(pad < 16, "{encr:?} {integ:?} {len}: pad {pad}");
                assert_eq!(ct.len(), len + pad + 1);
                assert_eq!(&ct[..len], &pt[..]);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Key derivation against ring's HMAC (RFC 7296 2.14, 2.15, 2.17, 2.18)
// ---------------------------------------------------------------------------

fn ike_suites() -> Vec<IkeSuite> {
    let mut v = Vec::new();
    for (encr, integ) in sk_suites() {
        for prf in Prf::ALL {
            v.push(IkeSuite {
                encr,
                integ,
                prf,
                dh: DhGroup::Ecp384,
            });
        }
    }
    v
}

/// SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr cut from a prf+ stream.
fn split7(s: &IkeSuite, stream: &[u8]) -> [Vec<u8>; 7] {
    let p = s.prf.out_len();
    let a = s.integ.map_or(0, |i| i.key_len());
    let e = s.encr.keymat_len();
    assert_eq!(stream.len(), 3 * p + 2 * a + 2 * e);
    let mut at = 0;
    [p, a, a, e, e, p, p].map(|n| {
        let v = stream[at..at + n].to_vec();
        at += n;
        v
    })
}

fn keys7(k: &IkeKeys) -> [Vec<u8>; 7] {
    [
        k.sk_d.clone(),
        k.sk_ai().to_vec(),
        k.sk_ar().to_vec(),
        k.sk_ei().to_vec(),
        k.sk_er().to_vec(),
        k.sk_pi().to_vec(),
        k.sk_pr().to_vec(),
    ]
}

#[test]
fn ike_keys_match_ring_for_every_suite() {
    // Nonces of different lengths, up to the maximum of 256 octets (RFC 7296
    // 3.9), so Ni | Nr is longer than any HMAC block and is hashed as a key.
    let g_ir = KeyShare::from_private(DhGroup::Ecp384, &[0x11; 48])
        .unwrap()
        .agree(
            KeyShare::from_private(DhGroup::Ecp384, &[0x22; 48])
                .unwrap()
                .public(),
        )
        .unwrap();
    let g_ir = g_ir.as_bytes();
    assert_eq!(g_ir.len(), 48);
    for (ni_len, nr_len) in [(16usize, 16usize), (32, 256), (256, 256)] {
        let ni = key_bytes(ni_len, 9);
        let nr = key_bytes(nr_len, 10);
        let (spi_i, spi_r) = (0xfedcba9876543210u64, 0x0000000000000001u64);
        for s in ike_suites() {
            let k = IkeKeys::derive(&s, g_ir, &ni, &nr, spi_i, spi_r).unwrap();
            let seed = hmac(s.prf, &[&ni[..], &nr].concat(), g_ir);
            assert_eq!(skeyseed(s.prf, &ni, &nr, g_ir), seed);
            let stream = prf_plus_ring(
                s.prf,
                &seed,
                &[&ni[..], &nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat(),
                3 * s.prf.out_len()
                    + 2 * s.integ.map_or(0, |i| i.key_len())
                    + 2 * s.encr.keymat_len(),
            );
            assert_eq!(keys7(&k), split7(&s, &stream), "{s:?} {ni_len}/{nr_len}");
            // GCM: SK_e carries the 4-octet salt (RFC 5282 7.1) and there is no
            // SK_a.
            if s.encr.is_aead() {
                assert_eq!(
                    k.sk_ei().len(),
                    if s.encr == Encr::AesGcm16_128 { 20 } else { 36 }
                );
                assert!(k.sk_ai().is_empty() && k.sk_ar().is_empty());
            }
        }
    }
}

#[test]
fn rekeyed_ike_keys_match_ring_for_every_prf_pair() {
    let ni = key_bytes(32, 11);
    let nr = key_bytes(40, 12);
    let g_ir = key_bytes(32, 13);
    for old in Prf::ALL {
        let old_sk_d = key_bytes(old.out_len(), 14);
        for s in ike_suites() {
            let k = IkeKeys::derive_rekey(&s, old, &old_sk_d, &g_ir, &ni, &nr, 3, 4).unwrap();
            // RFC 7296 2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) with
            // the old SA's PRF; the split uses the new suite and the new SPIs.
            let seed = hmac(old, &old_sk_d, &[&g_ir[..], &ni, &nr].concat());
            let stream = prf_plus_ring(
                s.prf,
                &seed,
                &[&ni[..], &nr, &3u64.to_be_bytes(), &4u64.to_be_bytes()].concat(),
                3 * s.prf.out_len()
                    + 2 * s.integ.map_or(0, |i| i.key_len())
                    + 2 * s.encr.keymat_len(),
            );
            assert_eq!(keys7(&k), split7(&s, &stream), "{old:?} -> {s:?}");
        }
    }
}

#[test]
fn child_keys_match_ring() {
    let ni = key_bytes(24, 15);
    let nr = key_bytes(56, 16);
    let g = key_bytes(48, 17);
    for prf in Prf::ALL {
        let sk_d = key_bytes(prf.out_len(), 18);
        for cipher in shared::sa::EspCipher::ALL {
            for pfs in [None, Some(&g[..])] {
                let suite = EspSuite {
                    cipher,
                    esn: true,
                    dh: pfs.map(|_| DhGroup::Ecp384),
                };
                let c = ChildKeys::derive(&suite, prf, &sk_d, pfs, &ni, &nr).unwrap();
                let n = cipher.keymat_len();
                // RFC 4106 8.1, RFC 7634 2: key || salt; RFC 7296 2.17 with RFC 3602 and
                // RFC 4868 2.1.1: AES key || HMAC key as long as the hash.
                use shared::sa::{EspCipher as C, EspInteg as I};
                let want = match cipher {
                    C::AesGcm16_128 => 20,
                    C::AesGcm16_256 | C::ChaCha20Poly1305 => 36,
                    C::AesCbc128(I::HmacSha256_128) => 48,
                    C::AesCbc128(I::HmacSha384_192) | C::AesCbc256(I::HmacSha256_128) => 64,
                    C::AesCbc128(I::HmacSha512_256) | C::AesCbc256(I::HmacSha384_192) => 80,
                    C::AesCbc256(I::HmacSha512_256) => 96,
                };
                assert_eq!(n, want, "{cipher}");
                // RFC 7296 2.17: KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr), the
                // initiator-to-responder keys first.
                let seed = [pfs.unwrap_or_default(), &ni[..], &nr].concat();
                let km = prf_plus_ring(prf, &sk_d, &seed, 2 * n);
                assert_eq!(c.i_to_r, km[..n], "{prf:?} {cipher} {}", pfs.is_some());
                assert_eq!(c.r_to_i, km[n..], "{prf:?} {cipher} {}", pfs.is_some());
            }
        }
    }
}

#[test]
fn psk_auth_matches_ring() {
    // RFC 7296 2.15: AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"),
    // <InitiatorSignedOctets>), the octets being the message, the peer's nonce
    // and prf(SK_p, RestOfIDPayload). PSKs shorter and longer than the block.
    let message = key_bytes(333, 19);
    let nonce = key_bytes(32, 20);
    let id = [&[1u8, 0, 0, 0][..], &[192, 0, 2, 1]].concat(); // ID_IPV4_ADDR
    for prf in Prf::ALL {
        let sk_p = key_bytes(prf.out_len(), 21);
        for psk in [b"x".to_vec(), key_bytes(64, 22), key_bytes(200, 23)] {
            let pad = hmac(prf, &psk, b"Key Pad for IKEv2");
            let maced = hmac(prf, &sk_p, &id);
            let want = hmac(prf, &pad, &[&message[..], &nonce, &maced].concat());
            assert_eq!(psk_auth(prf, &psk, &message, &nonce, &sk_p, &id), want);
            assert_eq!(want.len(), prf.out_len());
        }
    }
}

// ---------------------------------------------------------------------------
// Real strongSwan exchanges: keys, IKE_AUTH, AUTH, child SA keys, ESP packets
// ---------------------------------------------------------------------------

/// The directories where captures of charon <-> charon exchanges live.
const SWAN_DIRS: [&str; 2] = ["tests/data/swan", "tests/data/strongswan"];

fn swan_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for d in SWAN_DIRS {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(d);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        files.extend(
            rd.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "kat")),
        );
    }
    files.sort();
    files
}

fn kat(path: &std::path::Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{path:?}: no '=' in {l}"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

fn by_name<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str, v: &str) -> T {
    *all.iter()
        .find(|x| name(**x) == v)
        .unwrap_or_else(|| panic!("unknown algorithm {v}"))
}

/// The body of the first payload of type `ty` in a decrypted chain.
fn inner(first: PayloadType, plaintext: &[u8], ty: PayloadType) -> Vec<u8> {
    PayloadIter::new(first, plaintext)
        .map(|r| r.unwrap())
        .find(|r| r.ty == ty)
        .unwrap_or_else(|| panic!("no payload {ty:?}"))
        .body
        .to_vec()
}

/// Decrypts one ESP packet (SPI onward, RFC 4303 2, RFC 4106 3) with RustCrypto
/// under a child key (key | salt), checks its SPI, trailer and padding (RFC 4303
/// 2.4: 1, 2, 3, ...), and returns the inner packet.
fn esp_open(key_salt: &[u8], spi: &[u8], packet: &[u8]) -> Vec<u8> {
    assert_eq!(&packet[..4], spi, "SPI");
    let encr = if key_salt.len() == 20 {
        Encr::AesGcm16_128
    } else {
        Encr::AesGcm16_256
    };
    // RFC 4106 5: without ESN the AAD is SPI | 32-bit sequence number.
    let pt = gcm(
        encr,
        key_salt,
        &packet[8..16],
        &packet[..8],
        &packet[16..],
        false,
    )
    .expect("ESP packet does not decrypt under the derived child key");
    let next_header = pt[pt.len() - 1];
    let pad = pt[pt.len() - 2] as usize;
    let body = &pt[..pt.len() - 2 - pad];
    let padding = &pt[body.len()..pt.len() - 2];
    assert!(padding
        .iter()
        .enumerate()
        .all(|(i, b)| *b as usize == i + 1));
    // Tunnel mode: an IPv4 or IPv6 packet inside.
    match next_header {
        4 => assert_eq!(body[0] >> 4, 4),
        41 => assert_eq!(body[0] >> 4, 6),
        other => panic!("next header {other}"),
    }
    body.to_vec()
}

fn check_swan(path: &std::path::Path) {
    let kv = kat(path);
    let s = |k: &str| {
        kv.get(k)
            .unwrap_or_else(|| panic!("{path:?}: no {k}"))
            .clone()
    };
    let b = |k: &str| hex(&s(k));
    let spi = |k: &str| u64::from_str_radix(&s(k), 16).unwrap();
    let integ = match s("integ").as_str() {
        "none" | "" => None,
        v => Some(by_name(&Integ::ALL, Integ::name, v)),
    };
    let suite = IkeSuite {
        encr: by_name(&Encr::ALL, Encr::name, &s("encr")),
        integ,
        prf: by_name(&Prf::ALL, Prf::name, &s("prf")),
        dh: by_name(&DhGroup::ALL, DhGroup::name, &s("dh")),
    };
    let (ni, nr, g_ir) = (b("ni"), b("nr"), b("g_ir"));
    assert_eq!(
        g_ir.len(),
        if suite.dh == DhGroup::Ecp384 { 48 } else { 32 },
        "{path:?} g^ir length"
    );
    assert_eq!(
        skeyseed(suite.prf, &ni, &nr, &g_ir),
        b("skeyseed"),
        "{path:?}"
    );
    let k = IkeKeys::derive(&suite, &g_ir, &ni, &nr, spi("spi_i"), spi("spi_r")).unwrap();
    let names = ["sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr"];
    for (name, got) in names.iter().zip(keys7(&k)) {
        assert_eq!(got, b(name), "{path:?} {name}");
    }

    // IKE_AUTH request under SK_ei/SK_ai, response under SK_er/SK_ar.
    let in_i = SkKeys::new(suite.encr, suite.integ, k.sk_ei(), k.sk_ai()).unwrap();
    let in_r = SkKeys::new(suite.encr, suite.integ, k.sk_er(), k.sk_ar()).unwrap();
    let req = open_message(&in_i, &b("auth_req")).unwrap();
    let resp = open_message(&in_r, &b("auth_resp")).unwrap();
    assert_eq!(
        open_message(&in_r, &b("auth_req")).unwrap_err(),
        CryptoError::SkIntegrity
    );
    for (o, response) in [(&req, false), (&resp, true)] {
        assert_eq!(o.header.exchange_type, ExchangeType::IKE_AUTH);
        assert_eq!(o.header.response, response);
        assert_eq!(o.header.message_id, 1);
    }
    // AUTH (RFC 7296 2.15): the initiator signs its IKE_SA_INIT request, Nr and
    // prf(SK_pi, IDi'); the responder its response, Ni and prf(SK_pr, IDr').
    let psk = b("psk");
    for (o, signed, nonce, sk_p, id_ty, id_key) in [
        (
            &req,
            b("init_req"),
            &nr,
            k.sk_pi(),
            PayloadType::IDI,
            "id_i",
        ),
        (
            &resp,
            b("init_resp"),
            &ni,
            k.sk_pr(),
            PayloadType::IDR,
            "id_r",
        ),
    ] {
        let id = inner(o.first_inner, &o.plaintext, id_ty);
        assert_eq!(id, b(id_key), "{path:?} {id_key}");
        let auth = inner(o.first_inner, &o.plaintext, PayloadType::AUTH);
        assert_eq!(
            auth[0], 2,
            "{path:?}: not Shared Key Message Integrity Code"
        );
        let want = psk_auth(suite.prf, &psk, &signed, nonce, sk_p, &id);
        assert_eq!(auth[4..], want[..], "{path:?} {id_ty:?} AUTH");
    }

    // The child SA created with IKE_AUTH: KEYMAT from SK_d, Ni, Nr (no PFS).
    let esp = shared::sa::EspCipher::from_name(&s("esp"))
        .unwrap_or_else(|| panic!("{path:?}: unknown ESP transform {}", s("esp")));
    let child = ChildKeys::derive(
        &EspSuite {
            cipher: esp,
            esn: false,
            dh: None,
        },
        suite.prf,
        &k.sk_d,
        None,
        &ni,
        &nr,
    )
    .unwrap();
    assert_eq!(child.i_to_r, b("child_i_to_r"), "{path:?}");
    assert_eq!(child.r_to_i, b("child_r_to_i"), "{path:?}");
    // The packets charon sent decrypt under our keys: initiator to responder
    // carries the responder's inbound SPI, and back.
    let up = esp_open(&child.i_to_r, &b("child_spi_r"), &b("esp_packet_i_to_r"));
    let down = esp_open(&child.r_to_i, &b("child_spi_i"), &b("esp_packet_r_to_i"));
    assert!(!up.is_empty() && !down.is_empty());
    // And not under the other direction's key.
    let p = b("esp_packet_i_to_r");
    let other = if esp == shared::sa::EspCipher::AesGcm16_128 {
        Encr::AesGcm16_128
    } else {
        Encr::AesGcm16_256
    };
    assert!(gcm(other, &child.r_to_i, &p[8..16], &p[..8], &p[16..], false).is_none());
}

/// Runs over every capture found; requires at least one when
/// MOBIKED_REQUIRE_SWAN_KAT=1.
#[test]
fn strongswan_captures_child_keys_and_esp() {
    let files = swan_files();
    if std::env::var("MOBIKED_REQUIRE_SWAN_KAT").as_deref() == Ok("1") {
        assert!(!files.is_empty(), "no .kat files under {SWAN_DIRS:?}");
    }
    for f in &files {
        check_swan(f);
    }
}
