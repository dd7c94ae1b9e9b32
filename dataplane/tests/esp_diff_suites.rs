//! ChaCha20-Poly1305 (RFC 7634) and AES-CBC + HMAC-SHA2 (RFC 3602, RFC 4868) against
//! independent implementations, both directions: RustCrypto `chacha20poly1305`, and
//! RustCrypto `cbc` + `aes` with `hmac` + `sha2`. Then hostile input for every transform
//! (GCM included): each tampered byte, truncation, misalignment and bad padding gives
//! its named error and counter, never a panic, and only an authenticated packet moves
//! the replay window.

use mobiked_dataplane as dataplane;

use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use dataplane::buf::PacketBuf;
use dataplane::esp::{self, cbc as esp_cbc, DecapError, NH_IPV4, NH_IPV6};
use dataplane::replay::{ReplayError, ReplayWindow};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use shared::counters::Counter;
use shared::sa::{EspCipher, EspInteg, EspKey};

/// The transforms this file checks against oracles (GCM has `esp_diff.rs`).
const SUITES: [EspCipher; 7] = [
    EspCipher::ChaCha20Poly1305,
    EspCipher::AesCbc128(EspInteg::HmacSha256_128),
    EspCipher::AesCbc128(EspInteg::HmacSha384_192),
    EspCipher::AesCbc128(EspInteg::HmacSha512_256),
    EspCipher::AesCbc256(EspInteg::HmacSha256_128),
    EspCipher::AesCbc256(EspInteg::HmacSha384_192),
    EspCipher::AesCbc256(EspInteg::HmacSha512_256),
];

fn hmac_full(integ: EspInteg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    macro_rules! mac {
        ($h:ty) => {{
            let mut m = <Hmac<$h> as Mac>::new_from_slice(key).unwrap();
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }};
    }
    match integ {
        EspInteg::HmacSha256_128 => mac!(sha2::Sha256),
        EspInteg::HmacSha384_192 => mac!(sha2::Sha384),
        EspInteg::HmacSha512_256 => mac!(sha2::Sha512),
    }
}

fn cbc_crypt(key: &[u8], iv: &[u8], buf: &mut [u8], encrypt: bool) {
    let len = buf.len();
    macro_rules! go {
        ($a:ty) => {
            if encrypt {
                cbc::Encryptor::<$a>::new_from_slices(key, iv)
                    .unwrap()
                    .encrypt_padded_mut::<NoPadding>(buf, len)
                    .unwrap();
            } else {
                cbc::Decryptor::<$a>::new_from_slices(key, iv)
                    .unwrap()
                    .decrypt_padded_mut::<NoPadding>(buf)
                    .unwrap();
            }
        };
    }
    if key.len() == 16 {
        go!(aes::Aes128)
    } else {
        go!(aes::Aes256)
    }
}

/// The oracle's ESP packet `SPI | seq_lo | IV | ciphertext | ICV` for `plain` (payload,
/// padding and trailer, as given: possibly invalid). `iv` is 8 bytes for ChaCha20-Poly1305,
/// 16 for CBC.
fn oracle_seal(
    cipher: EspCipher,
    keymat: &[u8],
    spi: u32,
    seq: u64,
    esn: bool,
    iv: &[u8],
    plain: &[u8],
) -> Vec<u8> {
    let mut pkt = spi.to_be_bytes().to_vec();
    pkt.extend_from_slice(&(seq as u32).to_be_bytes());
    pkt.extend_from_slice(iv);
    match cipher.integ() {
        None => {
            let (key, salt) = keymat.split_at(32);
            let mut nonce = salt.to_vec();
            nonce.extend_from_slice(iv);
            let c = chacha20poly1305::ChaCha20Poly1305::new_from_slice(key).unwrap();
            let ct = c
                .encrypt(
                    chacha20poly1305::Nonce::from_slice(&nonce),
                    Payload {
                        msg: plain,
                        aad: &aad(spi, seq, esn),
                    },
                )
                .unwrap();
            pkt.extend_from_slice(&ct);
        }
        Some(integ) => {
            let (key, ikey) = keymat.split_at(cipher.key_len());
            let mut ct = plain.to_vec();
            cbc_crypt(key, iv, &mut ct, true);
            pkt.extend_from_slice(&ct);
            let hi = ((seq >> 32) as u32).to_be_bytes();
            let tail: &[u8] = if esn { &hi } else { &[] };
            let icv = hmac_full(integ, ikey, &[&pkt, tail]);
            pkt.extend_from_slice(&icv[..integ.icv_len()]);
        }
    }
    pkt
}

/// The oracle's verification and decryption of a packet: the plaintext (payload, padding,
/// trailer), or None if the ICV does not verify.
fn oracle_open(
    cipher: EspCipher,
    keymat: &[u8],
    seq: u64,
    esn: bool,
    pkt: &[u8],
) -> Option<Vec<u8>> {
    let spi = u32::from_be_bytes(pkt[..4].try_into().unwrap());
    let iv = &pkt[8..8 + cipher.iv_len()];
    let body = &pkt[8 + cipher.iv_len()..];
    match cipher.integ() {
        None => {
            let (key, salt) = keymat.split_at(32);
            let mut nonce = salt.to_vec();
            nonce.extend_from_slice(iv);
            chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
                .unwrap()
                .decrypt(
                    chacha20poly1305::Nonce::from_slice(&nonce),
                    Payload {
                        msg: body,
                        aad: &aad(spi, seq, esn),
                    },
                )
                .ok()
        }
        Some(integ) => {
            let (key, ikey) = keymat.split_at(cipher.key_len());
            let (authed, icv) = pkt.split_at(pkt.len() - integ.icv_len());
            let hi = ((seq >> 32) as u32).to_be_bytes();
            let tail: &[u8] = if esn { &hi } else { &[] };
            if hmac_full(integ, ikey, &[authed, tail])[..integ.icv_len()] != *icv {
                return None;
            }
            let mut plain = authed[8 + 16..].to_vec();
            cbc_crypt(key, iv, &mut plain, false);
            Some(plain)
        }
    }
}

/// RFC 7634 2.1 (as RFC 4106 5): SPI || [seq_hi ||] seq_lo.
fn aad(spi: u32, seq: u64, esn: bool) -> Vec<u8> {
    let mut a = spi.to_be_bytes().to_vec();
    if esn {
        a.extend_from_slice(&((seq >> 32) as u32).to_be_bytes());
    }
    a.extend_from_slice(&(seq as u32).to_be_bytes());
    a
}

fn window_before(seq: u64, esn: bool) -> ReplayWindow {
    let mut w = ReplayWindow::new(64);
    w.reset(64, esn);
    if seq > 1 {
        w.update(seq - 1);
    }
    w
}

fn suite_strategy() -> impl Strategy<Value = EspCipher> {
    (0..SUITES.len()).prop_map(|i| SUITES[i])
}

fn seq_strategy() -> impl Strategy<Value = (u64, bool)> {
    prop_oneof![
        (1..=u64::from(u32::MAX)).prop_map(|s| (s, false)),
        (1..=u64::MAX - 1).prop_map(|s| (s, true)),
        ((1u64 << 32) - 5..(1u64 << 32) + 5).prop_map(|s| (s, true)),
    ]
}

/// `payload | 1, 2, .. pad | pad | nh`.
fn with_trailer(payload: &[u8], pad: usize, nh: u8) -> Vec<u8> {
    let mut p = payload.to_vec();
    p.extend((1..=pad).map(|i| i as u8));
    p.push(pad as u8);
    p.push(nh);
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn our_encap_opens_with_the_oracle(
        cipher in suite_strategy(),
        keymat in proptest::collection::vec(any::<u8>(), 96),
        spi in 1..=u32::MAX,
        (seq, esn) in seq_strategy(),
        nh in prop_oneof![Just(NH_IPV4), Just(NH_IPV6)],
        payload in proptest::collection::vec(any::<u8>(), 0..1600),
    ) {
        let keymat = &keymat[..cipher.keymat_len()];
        let key = EspKey::new(cipher, keymat).unwrap();
        let mut buf = PacketBuf::new();
        prop_assert!(buf.fill(&payload));
        esp::encap(&key, spi, seq, esn, nh, &mut buf).unwrap();
        let pkt = buf.data().to_vec();
        prop_assert!(pkt.len() <= payload.len() + esp::encap_overhead(cipher));
        prop_assert_eq!(esp::spi_of(&pkt), Some(spi));
        prop_assert_eq!(&pkt[4..8], &(seq as u32).to_be_bytes());
        let plain = oracle_open(cipher, keymat, seq, esn, &pkt).expect("the oracle verifies our ICV");
        // RFC 4303 2.4: payload | 1, 2, 3.. | pad length | next header, aligned.
        prop_assert_eq!(plain.len() % cipher.align(), 0);
        let pad = usize::from(plain[plain.len() - 2]);
        prop_assert!(pad < cipher.align());
        prop_assert_eq!(plain, with_trailer(&payload, pad, nh));
        if cipher.is_aead() {
            // RFC 7634 2: the explicit IV is the sequence number here.
            prop_assert_eq!(&pkt[8..16], &seq.to_be_bytes());
        }
        // And our own decap inverts it.
        let mut w = window_before(seq, esn);
        prop_assert_eq!(esp::decap(&key, esn, &mut w, &mut buf), Ok(nh));
        prop_assert_eq!(buf.data(), &payload[..]);
        prop_assert_eq!(w.highest(), seq);
    }

    #[test]
    fn oracle_packets_decap_and_reseal_identically(
        cipher in suite_strategy(),
        keymat in proptest::collection::vec(any::<u8>(), 96),
        spi in 1..=u32::MAX,
        (seq, esn) in seq_strategy(),
        iv in any::<[u8; 16]>(),
        nh in any::<u8>(),
        extra in 0usize..16,
        payload in proptest::collection::vec(any::<u8>(), 0..1400),
    ) {
        let keymat = &keymat[..cipher.keymat_len()];
        let key = EspKey::new(cipher, keymat).unwrap();
        // Any valid padding up to 255 bytes, not only the minimum (RFC 4303 2.4).
        let min = esp::pad_len(payload.len(), cipher.align());
        let pad = (min + extra * cipher.align()).min(255 - (255 - min) % cipher.align());
        let plain = with_trailer(&payload, pad, nh);
        let iv = &iv[..cipher.iv_len()];
        let pkt = oracle_seal(cipher, keymat, spi, seq, esn, iv, &plain);
        let mut buf = PacketBuf::new();
        prop_assert!(buf.fill(&pkt));
        let mut w = window_before(seq, esn);
        prop_assert_eq!(esp::decap(&key, esn, &mut w, &mut buf), Ok(nh));
        prop_assert_eq!(buf.data(), &payload[..]);
        // The lower-level seal reproduces the oracle's packet from the same IV.
        let mut again = vec![0u8; 8 + cipher.iv_len()];
        again.extend_from_slice(&plain);
        again.extend(vec![0u8; cipher.icv_len()]);
        match (key.as_aead(), key.as_cbc()) {
            (Some(k), _) => {
                esp::seal_with_iv(k, spi, seq, esn, iv.try_into().unwrap(), &mut again).unwrap()
            }
            (_, Some(k)) => {
                esp_cbc::seal_with_iv(k, spi, seq, esn, iv.try_into().unwrap(), &mut again).unwrap()
            }
            _ => unreachable!(),
        }
        prop_assert_eq!(again, pkt);
    }

    #[test]
    fn decap_never_panics_on_random_bytes(
        cipher in prop_oneof![Just(EspCipher::AesGcm16_256), suite_strategy()],
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        esn in any::<bool>(),
    ) {
        let key = EspKey::new(cipher, &vec![7u8; cipher.keymat_len()]).unwrap();
        let mut w = ReplayWindow::new(64);
        w.reset(64, esn);
        let mut buf = PacketBuf::new();
        prop_assert!(buf.fill(&bytes));
        let r = esp::decap(&key, esn, &mut w, &mut buf);
        prop_assert!(r.is_err());
        prop_assert_eq!(w.highest(), 0, "a forged packet moved the window");
    }
}

// ---------------------------------------------------------------------------------------
// Hostile input, every transform.
// ---------------------------------------------------------------------------------------

const SPI: u32 = 0x1234_5678;

fn all_suites() -> impl Iterator<Item = EspCipher> {
    EspCipher::ALL.into_iter()
}

fn keymat(cipher: EspCipher) -> Vec<u8> {
    (0..cipher.keymat_len() as u8)
        .map(|i| i.wrapping_mul(29) ^ 0x42)
        .collect()
}

fn key(cipher: EspCipher) -> EspKey {
    EspKey::new(cipher, &keymat(cipher)).unwrap()
}

fn good_packet(key: &EspKey, seq: u64, esn: bool, len: usize) -> Vec<u8> {
    let mut b = PacketBuf::new();
    let inner: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x45).collect();
    assert!(b.fill(&inner));
    esp::encap(key, SPI, seq, esn, NH_IPV4, &mut b).unwrap();
    b.data().to_vec()
}

fn decap_bytes(
    key: &EspKey,
    esn: bool,
    w: &mut ReplayWindow,
    pkt: &[u8],
) -> Result<u8, DecapError> {
    let mut b = PacketBuf::new();
    assert!(b.fill(pkt));
    esp::decap(key, esn, w, &mut b)
}

/// An oracle-made packet (GCM through ring's primitive, the others through the oracle)
/// around an arbitrary, possibly invalid, plaintext.
fn packet_with_plain(cipher: EspCipher, seq: u64, plain: &[u8]) -> Vec<u8> {
    let km = keymat(cipher);
    if cipher.integ().is_none() && cipher != EspCipher::ChaCha20Poly1305 {
        let k = key(cipher);
        let mut pkt = vec![0u8; 16];
        pkt.extend_from_slice(plain);
        pkt.extend_from_slice(&[0; 16]);
        esp::seal_with_iv(
            k.as_aead().unwrap(),
            SPI,
            seq,
            false,
            &seq.to_be_bytes(),
            &mut pkt,
        )
        .unwrap();
        return pkt;
    }
    let iv = [0x3c; 16];
    oracle_seal(cipher, &km, SPI, seq, false, &iv[..cipher.iv_len()], plain)
}

#[test]
fn every_tampered_byte_is_refused_with_a_named_counter() {
    for cipher in all_suites() {
        for esn in [false, true] {
            let k = key(cipher);
            let seq = if esn { (7 << 32) | 9 } else { 9 };
            let good = good_packet(&k, seq, esn, 61);
            for byte in 0..good.len() {
                for flip in [0x01, 0x80] {
                    let mut pkt = good.clone();
                    pkt[byte] ^= flip;
                    let mut w = window_before(seq, esn);
                    let r = decap_bytes(&k, esn, &mut w, &pkt);
                    let counter = r.map_err(|e| e.counter());
                    assert!(
                        matches!(
                            counter,
                            Err(Counter::DropAuthFail) | Err(Counter::DropReplay)
                        ),
                        "{cipher} esn {esn} byte {byte}: {r:?}"
                    );
                    assert_eq!(w.highest(), seq - 1, "{cipher}: window moved");
                }
            }
            // The untouched packet still passes: the loop above proved the check, not a key mix-up.
            let mut w = window_before(seq, esn);
            assert_eq!(decap_bytes(&k, esn, &mut w, &good), Ok(NH_IPV4), "{cipher}");
        }
    }
}

#[test]
fn truncated_and_extended_packets_fail_cleanly() {
    for cipher in all_suites() {
        let k = key(cipher);
        let good = good_packet(&k, 3, false, 40);
        for len in 0..good.len() {
            let mut w = window_before(3, false);
            let r = decap_bytes(&k, false, &mut w, &good[..len]);
            let want_runt = len < esp::min_packet_len(cipher);
            match r {
                Err(DecapError::Runt) => assert!(want_runt, "{cipher} len {len}"),
                Err(DecapError::AuthFail) | Err(DecapError::BadLength) => {
                    assert!(!want_runt, "{cipher} len {len}")
                }
                other => panic!("{cipher} len {len}: {other:?}"),
            }
            assert_eq!(w.highest(), 2, "{cipher} len {len}");
        }
        let mut longer = good.clone();
        longer.extend_from_slice(&[0; 16]);
        let mut w = window_before(3, false);
        assert_eq!(
            decap_bytes(&k, false, &mut w, &longer),
            Err(DecapError::AuthFail),
            "{cipher}"
        );
    }
    assert_eq!(DecapError::Runt.counter(), Counter::DropRunt);
}

#[test]
fn cbc_ciphertext_that_is_not_whole_blocks_is_bad_length_before_any_crypto() {
    for cipher in all_suites().filter(|c| !c.is_aead()) {
        let k = key(cipher);
        let good = good_packet(&k, 3, false, 40);
        let icv = cipher.icv_len();
        for cut in 1..16 {
            // Drop `cut` bytes of ciphertext, keep the ICV position at the end.
            let mut pkt = good[..good.len() - icv - cut].to_vec();
            pkt.extend_from_slice(&good[good.len() - icv..]);
            let mut w = window_before(3, false);
            assert_eq!(
                decap_bytes(&k, false, &mut w, &pkt),
                Err(DecapError::BadLength),
                "{cipher} cut {cut}"
            );
            assert_eq!(w.highest(), 2);
        }
    }
    assert_eq!(DecapError::BadLength.counter(), Counter::DropBadLength);
}

#[test]
fn bad_padding_is_refused_after_authentication() {
    for cipher in all_suites() {
        let k = key(cipher);
        let align = cipher.align();
        // Builds an aligned plaintext ending in `tail` (pad bytes, pad length, next header).
        let aligned = |tail: &[u8]| -> Vec<u8> {
            let mut p = vec![0xaa; (align - tail.len() % align) % align];
            p.extend_from_slice(tail);
            p
        };
        let cases: [(Vec<u8>, Result<u8, DecapError>); 5] = [
            // Pad length larger than the plaintext.
            (aligned(&[200, 4]), Err(DecapError::BadPadding)),
            // Wrong pad bytes.
            (aligned(&[1, 3, 2, 4]), Err(DecapError::BadPadding)),
            (aligned(&[0, 0, 2, 4]), Err(DecapError::BadPadding)),
            // An empty payload with correct padding is fine.
            (
                {
                    let pad = esp::pad_len(0, align);
                    with_trailer(&[], pad, 59)
                },
                Ok(59),
            ),
            // Maximum padding that aligns, correct bytes.
            (
                {
                    let pad = 255 - (255 + 2) % align;
                    with_trailer(&[], pad, 41)
                },
                Ok(41),
            ),
        ];
        let mut w = window_before(20, false);
        for (i, (plain, want)) in cases.iter().enumerate() {
            assert_eq!(plain.len() % align, 0, "{cipher} case {i}: test setup");
            let seq = 20 + i as u64;
            let pkt = packet_with_plain(cipher, seq, plain);
            assert_eq!(
                decap_bytes(&k, false, &mut w, &pkt),
                *want,
                "{cipher} case {i}"
            );
            // The ICV verified, so the sequence number is consumed (RFC 4303 3.4.3).
            assert_eq!(w.highest(), seq, "{cipher} case {i}");
        }
    }
    assert_eq!(DecapError::BadPadding.counter(), Counter::DropBadPadding);
}

#[test]
fn replays_and_wrong_keys_per_suite() {
    for cipher in all_suites() {
        let k = key(cipher);
        let mut w = ReplayWindow::new(64);
        w.reset(64, false);
        let pkt = good_packet(&k, 100, false, 30);
        assert_eq!(decap_bytes(&k, false, &mut w, &pkt), Ok(NH_IPV4));
        assert_eq!(
            decap_bytes(&k, false, &mut w, &pkt),
            Err(DecapError::Replay(ReplayError::Duplicate)),
            "{cipher}"
        );
        assert_eq!(
            decap_bytes(&k, false, &mut w, &good_packet(&k, 36, false, 30)),
            Err(DecapError::Replay(ReplayError::TooOld)),
            "{cipher}"
        );
        // Another SA's key of the same transform: the ICV does not verify.
        let mut other = keymat(cipher);
        let last = other.len() - 1;
        other[last] ^= 1;
        let other = EspKey::new(cipher, &other).unwrap();
        let mut w = window_before(101, false);
        assert_eq!(
            decap_bytes(&other, false, &mut w, &good_packet(&k, 101, false, 30)),
            Err(DecapError::AuthFail),
            "{cipher}"
        );
        // ESN on one side only: the high half is authenticated, so it must not verify.
        let seq = (3 << 32) | 5;
        let mut w = window_before(seq, true);
        let pkt = good_packet(&k, seq, false, 30);
        assert_eq!(
            decap_bytes(&k, true, &mut w, &pkt),
            Err(DecapError::AuthFail),
            "{cipher}"
        );
    }
}

#[test]
fn encap_without_room_leaves_the_packet_alone() {
    for cipher in all_suites() {
        let k = key(cipher);
        let mut b = PacketBuf::new();
        let (raw, _, _) = b.raw_mut();
        let total = raw.len();
        // Exactly the tail room the largest padding needs is missing one byte.
        let len = 16 * 8 - 2 + 1; // pad_len = align - 1 for CBC, 3 for AEAD
        let pad = esp::pad_len(len, cipher.align());
        let need = pad + 2 + cipher.icv_len();
        assert!(b.set_window(total - need + 1 - len, total - need + 1));
        b.data_mut().fill(0x5a);
        let before = b.len();
        assert_eq!(
            esp::encap(&k, SPI, 1, false, NH_IPV4, &mut b),
            Err(esp::EncapError::NoRoom),
            "{cipher}"
        );
        assert_eq!(b.len(), before);
        assert!(b.data().iter().all(|&x| x == 0x5a), "{cipher}");
        // One byte more room: it fits exactly.
        let mut b = PacketBuf::new();
        assert!(b.set_window(total - need - len, total - need));
        assert_eq!(
            esp::encap(&k, SPI, 1, false, NH_IPV4, &mut b),
            Ok(()),
            "{cipher}"
        );
        assert_eq!(b.headroom() + b.len(), total, "{cipher}");
        // No head room for header and IV.
        let mut b = PacketBuf::new();
        assert!(b.set_window(8 + cipher.iv_len() - 1, 8 + cipher.iv_len() + 9));
        assert_eq!(
            esp::encap(&k, SPI, 1, false, NH_IPV4, &mut b),
            Err(esp::EncapError::NoRoom),
            "{cipher}"
        );
    }
}

#[test]
fn cbc_seal_refuses_a_plaintext_that_is_not_whole_blocks() {
    let k = key(EspCipher::AesCbc128(EspInteg::HmacSha256_128));
    let mut pkt = vec![0u8; 24 + 17 + 16];
    assert_eq!(
        esp_cbc::seal_with_iv(k.as_cbc().unwrap(), SPI, 1, false, &[0; 16], &mut pkt),
        Err(esp::EncapError::Unaligned)
    );
    let mut short = vec![0u8; 24 + 15];
    assert_eq!(
        esp_cbc::seal_with_iv(k.as_cbc().unwrap(), SPI, 1, false, &[0; 16], &mut short),
        Err(esp::EncapError::NoRoom)
    );
}
