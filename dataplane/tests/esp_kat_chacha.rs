//! Known answer: the ESP example of RFC 7634 Appendix A (ChaCha20-Poly1305 in ESP), byte
//! for byte through our encapsulation (padding, trailer, header, IV, AEAD, ICV) and back
//! through decapsulation.

use mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::esp::{self, DecapError, NH_IPV4};
use dataplane::replay::{ReplayError, ReplayWindow};
use shared::sa::{EspCipher, EspKey};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| (b as char).to_digit(16).expect("hex digit") as u8)
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd hex length in {s}");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// RFC 7634 A: KEYMAT = the 32-byte key || the 4-byte salt.
const KEYMAT: &str = "808182838485868788898a8b8c8d8e8f 909192939495969798999a9b9c9d9e9f a0a1a2a3";
const SPI: u32 = 0x0102_0304;
const SEQ: u64 = 5;
const IV: &str = "1011121314151617";
/// The inner packet: an ICMP echo request from 198.51.100.5 to 192.0.2.5.
const INNER: &str = "45000054a6f200004001e778c6336405c0000205 08005b7a3a080000553bec1000073627\
                     08090a0b0c0d0e0f101112131415161718191a1b 1c1d1e1f202122232425262728292a2b\
                     2c2d2e2f3031323334353637";
/// The ESP payload: the inner packet, pad 01 02, pad length 2, next header 4.
const PLAINTEXT_TAIL: &str = "01020204";
/// The packet: SPI | sequence number | IV | ciphertext | tag.
const PACKET: &str = "0102030400000005 1011121314151617\
    24039428b97f417e3c13753a4f05087b 67c352e6a7fab1b982d466ef407ae5c6\
    14ee8099d52844eb61aa95dfab4c02f7 2aa71e7c4c4f64c9befe2facc638e8f3\
    cbec163fac469b502773f6fb94e664da 9165b82829f641e0\
    76aaa8266b7fb0f7b11b369907e1ad43";

fn key() -> EspKey {
    EspKey::new(EspCipher::ChaCha20Poly1305, &hex(KEYMAT)).unwrap()
}

fn iv() -> [u8; 8] {
    hex(IV).try_into().unwrap()
}

#[test]
fn encap_produces_the_published_packet() {
    let key = key();
    let mut buf = PacketBuf::new();
    assert!(buf.fill(&hex(INNER)));
    esp::encap_with_iv(
        key.as_aead().unwrap(),
        SPI,
        SEQ,
        false,
        NH_IPV4,
        &iv(),
        &mut buf,
    )
    .unwrap();
    assert_eq!(buf.data(), &hex(PACKET)[..]);
}

#[test]
fn seal_with_iv_over_the_published_plaintext() {
    let key = key();
    let mut plain = hex(INNER);
    plain.extend(hex(PLAINTEXT_TAIL));
    let mut pkt = vec![0u8; 16];
    pkt.extend_from_slice(&plain);
    pkt.extend_from_slice(&[0; 16]);
    esp::seal_with_iv(key.as_aead().unwrap(), SPI, SEQ, false, &iv(), &mut pkt).unwrap();
    assert_eq!(pkt, hex(PACKET));
    // And open_in_place gives the plaintext back.
    let n = esp::open_in_place(key.as_aead().unwrap(), SEQ, false, &mut pkt).unwrap();
    assert_eq!(&pkt[16..16 + n], &plain[..]);
}

#[test]
fn decap_returns_the_inner_packet_then_refuses_the_replay() {
    let key = key();
    let mut w = ReplayWindow::new(64);
    w.reset(64, false);
    w.update(SEQ - 1);
    let mut buf = PacketBuf::new();
    assert!(buf.fill(&hex(PACKET)));
    assert_eq!(esp::decap(&key, false, &mut w, &mut buf), Ok(NH_IPV4));
    assert_eq!(buf.data(), &hex(INNER)[..]);
    assert_eq!(w.highest(), SEQ);
    let mut again = PacketBuf::new();
    assert!(again.fill(&hex(PACKET)));
    assert_eq!(
        esp::decap(&key, false, &mut w, &mut again),
        Err(DecapError::Replay(ReplayError::Duplicate))
    );
}

#[test]
fn the_vector_fails_under_esn_a_wrong_salt_and_every_flipped_bit() {
    let key = key();
    // RFC 7634 2.1: with ESN the AAD carries the high half too.
    let mut pkt = hex(PACKET);
    assert_eq!(
        esp::open_in_place(key.as_aead().unwrap(), SEQ, true, &mut pkt),
        Err(DecapError::AuthFail)
    );
    let mut keymat = hex(KEYMAT);
    keymat[35] ^= 1;
    let salted = EspKey::new(EspCipher::ChaCha20Poly1305, &keymat).unwrap();
    let mut pkt = hex(PACKET);
    assert_eq!(
        esp::open_in_place(salted.as_aead().unwrap(), SEQ, false, &mut pkt),
        Err(DecapError::AuthFail)
    );
    let good = hex(PACKET);
    for byte in 0..good.len() {
        let mut w = ReplayWindow::new(64);
        w.reset(64, false);
        w.update(SEQ - 1);
        let mut pkt = good.clone();
        pkt[byte] ^= 0x80;
        let mut buf = PacketBuf::new();
        assert!(buf.fill(&pkt));
        let r = esp::decap(&key, false, &mut w, &mut buf);
        assert!(
            matches!(r, Err(DecapError::AuthFail) | Err(DecapError::Replay(_))),
            "byte {byte}: {r:?}"
        );
        assert_eq!(w.highest(), SEQ - 1, "window moved on a forged packet");
    }
}
