//! ESP against RustCrypto `aes-gcm` (an independent AES-GCM) on random packets, both key
//! sizes, ESN on and off; and malformed input, each giving its named error.

use mobiked_dataplane as dataplane;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use dataplane::buf::{PacketBuf, MAX_FRAME};
use dataplane::esp::{self, DecapError, EncapError, NH_IPV4, NH_IPV6};
use dataplane::replay::{ReplayError, ReplayWindow};
use proptest::prelude::*;
use shared::counters::Counter;
use shared::sa::{EspCipher, EspKey};

/// seal?, IV, AAD, message -> output (None when the oracle refuses to open).
type Oracle = Box<dyn Fn(bool, [u8; 8], &[u8], &[u8]) -> Option<Vec<u8>>>;

/// Oracle AEAD over the raw key and salt.
fn oracle(keymat: &[u8]) -> Oracle {
    let (key, salt) = keymat.split_at(keymat.len() - 4);
    let salt: [u8; 4] = salt.try_into().unwrap();
    let nonce = move |iv: [u8; 8]| {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&salt);
        n[4..].copy_from_slice(&iv);
        n
    };
    macro_rules! with {
        ($t:ty) => {{
            let c = <$t>::new_from_slice(key).unwrap();
            Box::new(move |seal: bool, iv: [u8; 8], aad: &[u8], msg: &[u8]| {
                let n = nonce(iv);
                let p = Payload { msg, aad };
                if seal {
                    c.encrypt(Nonce::from_slice(&n), p).ok()
                } else {
                    c.decrypt(Nonce::from_slice(&n), p).ok()
                }
            })
        }};
    }
    if key.len() == 16 {
        with!(Aes128Gcm)
    } else {
        with!(Aes256Gcm)
    }
}

fn aad(spi: u32, seq: u64, esn: bool) -> Vec<u8> {
    let mut a = spi.to_be_bytes().to_vec();
    if esn {
        a.extend_from_slice(&((seq >> 32) as u32).to_be_bytes());
    }
    a.extend_from_slice(&(seq as u32).to_be_bytes());
    a
}

fn cipher_for(keymat: &[u8]) -> EspCipher {
    if keymat.len() == 20 {
        EspCipher::AesGcm16_128
    } else {
        EspCipher::AesGcm16_256
    }
}

fn window_before(seq: u64, esn: bool) -> ReplayWindow {
    let mut w = ReplayWindow::new(64);
    w.reset(64, esn);
    if seq > 1 {
        w.update(seq - 1);
    }
    w
}

/// An ESP packet built entirely by the oracle with the given plaintext (trailer included).
fn oracle_packet(
    keymat: &[u8],
    spi: u32,
    seq: u64,
    esn: bool,
    iv: [u8; 8],
    plain: &[u8],
) -> Vec<u8> {
    let ct = oracle(keymat)(true, iv, &aad(spi, seq, esn), plain).unwrap();
    let mut pkt = spi.to_be_bytes().to_vec();
    pkt.extend_from_slice(&(seq as u32).to_be_bytes());
    pkt.extend_from_slice(&iv);
    pkt.extend_from_slice(&ct);
    pkt
}

fn keymat_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 20),
        proptest::collection::vec(any::<u8>(), 36)
    ]
}

fn seq_strategy() -> impl Strategy<Value = (u64, bool)> {
    prop_oneof![
        (1..=u64::from(u32::MAX)).prop_map(|s| (s, false)),
        (1..=u64::MAX).prop_map(|s| (s, true)),
        // Around the 2^32 boundary with ESN.
        ((1u64 << 32) - 5..(1u64 << 32) + 5).prop_map(|s| (s, true)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn our_encap_opens_with_aes_gcm(
        keymat in keymat_strategy(),
        spi in 1..=u32::MAX,
        (seq, esn) in seq_strategy(),
        nh in prop_oneof![Just(NH_IPV4), Just(NH_IPV6)],
        payload in proptest::collection::vec(any::<u8>(), 0..1600),
    ) {
        let key = EspKey::new(cipher_for(&keymat), &keymat).unwrap();
        let mut buf = PacketBuf::new();
        prop_assert!(buf.fill(&payload));
        esp::encap(&key, spi, seq, esn, nh, &mut buf).unwrap();
        let pkt = buf.data();
        prop_assert!(pkt.len() <= payload.len() + esp::encap_overhead(key.cipher()));
        prop_assert_eq!(esp::spi_of(pkt), Some(spi));
        prop_assert_eq!(&pkt[4..8], &(seq as u32).to_be_bytes());
        prop_assert_eq!(&pkt[8..16], &seq.to_be_bytes());
        let plain = oracle(&keymat)(false, seq.to_be_bytes(), &aad(spi, seq, esn), &pkt[16..])
            .expect("aes-gcm verifies our ICV");
        // RFC 4303 2.4: payload | 1, 2, 3.. | pad length | next header, 4-octet aligned.
        prop_assert_eq!(plain.len() % 4, 0);
        prop_assert_eq!(&plain[..payload.len()], &payload[..]);
        let pad = usize::from(plain[plain.len() - 2]);
        prop_assert!(pad < 4);
        prop_assert_eq!(payload.len() + pad + 2, plain.len());
        for (i, b) in plain[payload.len()..payload.len() + pad].iter().enumerate() {
            prop_assert_eq!(usize::from(*b), i + 1);
        }
        prop_assert_eq!(plain[plain.len() - 1], nh);
        // And our own decap inverts it.
        let mut w = window_before(seq, esn);
        prop_assert_eq!(esp::decap(&key, esn, &mut w, &mut buf), Ok(nh));
        prop_assert_eq!(buf.data(), &payload[..]);
        prop_assert_eq!(w.highest(), seq);
    }

    #[test]
    fn aes_gcm_packets_decap(
        keymat in keymat_strategy(),
        spi in 1..=u32::MAX,
        (seq, esn) in seq_strategy(),
        iv in any::<[u8; 8]>(),
        nh in any::<u8>(),
        pad in 0usize..=255,
        payload in proptest::collection::vec(any::<u8>(), 0..1400),
    ) {
        let key = EspKey::new(cipher_for(&keymat), &keymat).unwrap();
        let mut plain = payload.clone();
        plain.extend((1..=pad).map(|i| i as u8));
        plain.push(pad as u8);
        plain.push(nh);
        let pkt = oracle_packet(&keymat, spi, seq, esn, iv, &plain);
        let mut buf = PacketBuf::new();
        prop_assert!(buf.fill(&pkt));
        let mut w = window_before(seq, esn);
        prop_assert_eq!(esp::decap(&key, esn, &mut w, &mut buf), Ok(nh));
        prop_assert_eq!(buf.data(), &payload[..]);
        // The lower-level seal reproduces the oracle's packet from the same IV.
        let mut again = vec![0u8; 16];
        again.extend_from_slice(&plain);
        again.extend_from_slice(&[0; 16]);
        esp::seal_with_iv(key.as_aead().unwrap(), spi, seq, esn, &iv, &mut again).unwrap();
        prop_assert_eq!(again, pkt);
    }

    #[test]
    fn decap_never_panics_on_random_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        esn in any::<bool>(),
    ) {
        let key = EspKey::new(EspCipher::AesGcm16_128, &[7u8; 20]).unwrap();
        let mut w = ReplayWindow::new(64);
        w.reset(64, esn);
        let mut buf = PacketBuf::new();
        prop_assert!(buf.fill(&bytes));
        let r = esp::decap(&key, esn, &mut w, &mut buf);
        prop_assert!(r.is_err());
        prop_assert_eq!(w.highest(), 0, "a forged packet moved the window");
        let _ = esp::check_trailer(&bytes);
        let _ = esp::spi_of(&bytes);
    }
}

const KEYMAT: [u8; 20] = [0x42; 20];
const SPI: u32 = 0x1234_5678;

fn key() -> EspKey {
    EspKey::new(EspCipher::AesGcm16_128, &KEYMAT).unwrap()
}

/// Oracle packet with an arbitrary (possibly invalid) plaintext.
fn packet_with_plain(seq: u64, plain: &[u8]) -> PacketBuf {
    let pkt = oracle_packet(&KEYMAT, SPI, seq, false, seq.to_be_bytes(), plain);
    let mut b = PacketBuf::new();
    assert!(b.fill(&pkt));
    b
}

fn good_packet(seq: u64) -> PacketBuf {
    let mut b = PacketBuf::new();
    assert!(b.fill(&[0x45; 30]));
    esp::encap(&key(), SPI, seq, false, NH_IPV4, &mut b).unwrap();
    b
}

#[test]
fn short_packets_are_runts() {
    let k = key();
    let full = good_packet(1);
    for len in [0, 1, 7, 8, 15, 16, esp::MIN_PACKET_LEN - 1] {
        let mut w = window_before(1, false);
        let mut b = PacketBuf::new();
        assert!(b.fill(&full.data()[..len.min(full.len())]));
        assert_eq!(
            esp::decap(&k, false, &mut w, &mut b),
            Err(DecapError::Runt),
            "len {len}"
        );
    }
    assert_eq!(esp::spi_of(&[1, 2, 3]), None);
    assert_eq!(DecapError::Runt.counter(), Counter::DropRunt);
}

#[test]
fn bad_icv_is_auth_fail_and_leaves_window() {
    let k = key();
    for byte in [16, 40, 60] {
        let mut b = good_packet(5);
        let n = b.len();
        b.data_mut()[byte.min(n - 1)] ^= 0x80;
        let mut w = window_before(5, false);
        assert_eq!(
            esp::decap(&k, false, &mut w, &mut b),
            Err(DecapError::AuthFail)
        );
        assert_eq!(w.highest(), 4);
    }
    // Wrong key.
    let other = EspKey::new(EspCipher::AesGcm16_128, &[0x43; 20]).unwrap();
    let mut b = good_packet(5);
    let mut w = window_before(5, false);
    assert_eq!(
        esp::decap(&other, false, &mut w, &mut b),
        Err(DecapError::AuthFail)
    );
    assert_eq!(DecapError::AuthFail.counter(), Counter::DropAuthFail);
}

#[test]
fn padding_errors() {
    let k = key();
    // Pad length larger than the plaintext.
    let mut b = packet_with_plain(9, &[0xaa, 0xbb, 9, 4]);
    let mut w = window_before(9, false);
    assert_eq!(
        esp::decap(&k, false, &mut w, &mut b),
        Err(DecapError::BadPadding)
    );
    // The ICV verified, so the sequence number is consumed (RFC 4303 3.4.3).
    assert_eq!(w.highest(), 9);
    // Wrong pad bytes.
    let mut b = packet_with_plain(10, &[0xaa, 0xbb, 2, 1, 2, 4]);
    assert_eq!(
        esp::decap(&k, false, &mut w, &mut b),
        Err(DecapError::BadPadding)
    );
    let mut b = packet_with_plain(11, &[0xaa, 0, 0, 2, 4]);
    assert_eq!(
        esp::decap(&k, false, &mut w, &mut b),
        Err(DecapError::BadPadding)
    );
    // Only the trailer, pad length 0: an empty payload is fine.
    let mut b = packet_with_plain(12, &[0, 59]);
    assert_eq!(esp::decap(&k, false, &mut w, &mut b), Ok(59));
    assert!(b.is_empty());
    // Maximum padding, correct bytes.
    let mut plain: Vec<u8> = (1..=255).collect();
    plain.extend_from_slice(&[255, 41]);
    let mut b = packet_with_plain(13, &plain);
    assert_eq!(esp::decap(&k, false, &mut w, &mut b), Ok(41));
    assert!(b.is_empty());
    // Direct trailer checks.
    assert_eq!(esp::check_trailer(&[]), Err(DecapError::Runt));
    assert_eq!(esp::check_trailer(&[4]), Err(DecapError::Runt));
    assert_eq!(esp::check_trailer(&[1, 4]), Err(DecapError::BadPadding));
    assert_eq!(esp::check_trailer(&[9, 1, 1, 4]), Ok((1, 4)));
    assert_eq!(DecapError::BadPadding.counter(), Counter::DropBadPadding);
}

#[test]
fn replays_zero_and_too_old() {
    let k = key();
    let mut w = ReplayWindow::new(64);
    w.reset(64, false);
    let mut b = good_packet(100);
    assert_eq!(esp::decap(&k, false, &mut w, &mut b), Ok(NH_IPV4));
    let mut b = good_packet(100);
    assert_eq!(
        esp::decap(&k, false, &mut w, &mut b),
        Err(DecapError::Replay(ReplayError::Duplicate))
    );
    let mut b = good_packet(36);
    assert_eq!(
        esp::decap(&k, false, &mut w, &mut b),
        Err(DecapError::Replay(ReplayError::TooOld))
    );
    let mut b = good_packet(37);
    assert_eq!(esp::decap(&k, false, &mut w, &mut b), Ok(NH_IPV4));
    let mut b = packet_with_plain(0, &[0, 4]);
    assert_eq!(
        esp::decap(&k, false, &mut w, &mut b),
        Err(DecapError::Replay(ReplayError::Zero))
    );
    assert_eq!(
        DecapError::Replay(ReplayError::Duplicate).counter(),
        Counter::DropReplay
    );
}

#[test]
fn over_long_and_random_full_frames_fail_cleanly() {
    let k = key();
    let mut w = window_before(1, false);
    let mut b = PacketBuf::new();
    let junk: Vec<u8> = (0..MAX_FRAME).map(|i| (i * 7 + 1) as u8).collect();
    assert!(b.fill(&junk));
    assert_eq!(
        esp::decap(&k, false, &mut w, &mut b),
        Err(DecapError::AuthFail)
    );
}

#[test]
fn encap_without_room_leaves_the_packet_alone() {
    let k = key();
    // No tail room: data runs to the end of the allocation.
    let mut b = PacketBuf::new();
    let (raw, _, _) = b.raw_mut();
    let total = raw.len();
    assert!(b.set_window(200, total));
    b.data_mut().fill(0x5a);
    assert_eq!(
        esp::encap(&k, SPI, 1, false, NH_IPV4, &mut b),
        Err(EncapError::NoRoom)
    );
    assert_eq!(b.len(), total - 200);
    assert!(b.data().iter().all(|&x| x == 0x5a));
    // No head room.
    let mut b = PacketBuf::new();
    assert!(b.set_window(0, 10));
    assert_eq!(
        esp::encap(&k, SPI, 1, false, NH_IPV4, &mut b),
        Err(EncapError::NoRoom)
    );
    assert_eq!(b.len(), 10);
    // Exactly enough tail room for 2 pad bytes + trailer + ICV.
    let mut b = PacketBuf::new();
    assert!(b.set_window(100, total - 20));
    assert_eq!(esp::pad_len(b.len(), 4), 2, "test setup");
    assert_eq!(esp::encap(&k, SPI, 1, false, NH_IPV4, &mut b), Ok(()));
    assert_eq!(b.headroom() + b.len(), total);
    assert_eq!(EncapError::NoRoom.counter(), Counter::DropNoTailroom);
    assert_eq!(
        esp::encap_overhead(EspCipher::AesGcm16_128),
        8 + 8 + 3 + 2 + 16
    );
    // Over every transform: AES-CBC's IV and padding, HMAC-SHA-512-256's ICV.
    assert_eq!(esp::encap_overhead_max(), 8 + 16 + 15 + 2 + 32);
}
