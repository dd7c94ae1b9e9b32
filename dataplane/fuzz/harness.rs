// Fuzz harnesses, shared by the cargo-fuzz targets and by `tests/fuzz_corpus.rs`, which
// replays the committed corpus on stable. Each asserts invariants beyond "no panic".
//
// decap input: [selector][8-byte highest sequence number seen][ESP packet]
//   selector bits 0-1: key, bit 2: ESN, bits 3-4: window size (0, 32, 1024, MAX_WINDOW),
//   bits 5-7: transform: 0 AES-GCM-16 (the draft-mcgrew-gcm-test-01 keys below, by
//   bits 0-1), 1 ChaCha20-Poly1305 (the RFC 7634 A key), 2-7 AES-CBC with HMAC-SHA2
//   (`CBC_SUITES`; AES-128 with the RFC 3602 4 keys, by bit 0).
// parse_outer input: [layer: 0 Ethernet, 1 Ip, 2 Datagram][frame]

use dataplane::buf::{PacketBuf, MAX_FRAME};
use dataplane::esp::{self, DecapError};
use dataplane::io::Layer;
use dataplane::replay::{ReplayWindow, MAX_WINDOW};
use dataplane::{ip, natt};
use shared::path::Encap;
use shared::sa::{EspCipher, EspInteg, EspKey};

/// Key || salt of four draft-mcgrew-gcm-test-01 vectors, so the corpus's valid packets
/// get past the ICV.
const FUZZ_KEYS: [(EspCipher, &str); 4] = [
    (
        EspCipher::AesGcm16_128,
        "4c80cdefbb5d10da906ac73c3613a6342e443b68",
    ),
    (
        EspCipher::AesGcm16_128,
        "feffe9928665731c6d6a8f9467308308cafebabe",
    ),
    (
        EspCipher::AesGcm16_256,
        "abbccddef00112233445566778899aababbccddef00112233445566778899aab11223344",
    ),
    (
        EspCipher::AesGcm16_256,
        "abbccddef00112233445566778899aababbccddef00112233445566778899aab73616c74",
    ),
];

/// The transforms of selector values 2-7 (bits 5-7).
const CBC_SUITES: [EspCipher; 6] = [
    EspCipher::AesCbc128(EspInteg::HmacSha256_128),
    EspCipher::AesCbc128(EspInteg::HmacSha384_192),
    EspCipher::AesCbc128(EspInteg::HmacSha512_256),
    EspCipher::AesCbc256(EspInteg::HmacSha256_128),
    EspCipher::AesCbc256(EspInteg::HmacSha384_192),
    EspCipher::AesCbc256(EspInteg::HmacSha512_256),
];

/// RFC 7634 A: key || salt.
const CHACHA_KEY: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3";

/// AES-CBC encryption keys: RFC 3602 4 cases 5/6 and 7/8 for AES-128; two fixed keys
/// for AES-256.
const CBC_KEYS_128: [&str; 2] = [
    "90d382b410eeba7ad938c46cec1a82bf",
    "0123456789abcdef0123456789abcdef",
];
const CBC_KEYS_256: [&str; 2] = [
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
];

/// The integrity key of the CBC transforms: bytes 0x5c ^ i.
fn fuzz_integ_key(len: usize) -> Vec<u8> {
    (0..len as u8).map(|i| i ^ 0x5c).collect()
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|j| u8::from_str_radix(&hex[j..j + 2], 16).unwrap())
        .collect()
}

fn fuzz_key(sel: u8) -> EspKey {
    let i = usize::from(sel & 3);
    match sel >> 5 {
        0 => {
            let (cipher, hex) = FUZZ_KEYS[i % FUZZ_KEYS.len()];
            EspKey::new(cipher, &unhex(hex)).unwrap()
        }
        1 => EspKey::new(EspCipher::ChaCha20Poly1305, &unhex(CHACHA_KEY)).unwrap(),
        n => {
            let cipher = CBC_SUITES[usize::from(n - 2)];
            let mut keymat = match cipher {
                EspCipher::AesCbc128(_) => unhex(CBC_KEYS_128[i & 1]),
                _ => unhex(CBC_KEYS_256[i & 1]),
            };
            keymat.extend(fuzz_integ_key(cipher.integ_key_len()));
            EspKey::new(cipher, &keymat).unwrap()
        }
    }
}

/// What one decap input did; `Ok` carries the next header.
pub fn fuzz_decap(data: &[u8]) -> Result<u8, DecapError> {
    let Some((&sel, rest)) = data.split_first() else {
        return Err(DecapError::Runt);
    };
    let Some((top, pkt)) = rest.split_first_chunk::<8>() else {
        return Err(DecapError::Runt);
    };
    let _ = esp::check_trailer(pkt);
    let _ = natt::classify(pkt);
    if pkt.len() > MAX_FRAME {
        return Err(DecapError::Runt);
    }
    let key = fuzz_key(sel);
    let esn = sel & 4 != 0;
    let size = [0, 32, 1024, MAX_WINDOW][usize::from(sel >> 3 & 3)];
    let mut window = ReplayWindow::new(MAX_WINDOW);
    window.reset(size, esn);
    let top = u64::from_be_bytes(*top);
    if top != 0 {
        window.update(top);
    }
    let mut buf = PacketBuf::new();
    assert!(buf.fill(pkt));
    let before = window.highest();
    let r = esp::decap(&key, esn, &mut window, &mut buf);
    match r {
        Ok(nh) => {
            assert!(buf.len() + esp::MIN_PACKET_LEN <= pkt.len());
            assert!(window.highest() >= before);
            // Re-encapsulating the inner packet and opening it again gives it back.
            let seq = window.infer(u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]));
            let inner = buf.data().to_vec();
            let spi = esp::spi_of(pkt).unwrap();
            esp::encap(&key, spi, seq, esn, nh, &mut buf).unwrap();
            let mut fresh = ReplayWindow::new(32);
            fresh.reset(0, esn);
            fresh.update(seq);
            assert_eq!(esp::decap(&key, esn, &mut fresh, &mut buf), Ok(nh));
            assert_eq!(buf.data(), &inner[..]);
        }
        Err(
            DecapError::Runt
            | DecapError::AuthFail
            | DecapError::Replay(_)
            | DecapError::BadLength,
        ) => {
            // RFC 4303 3.4.3: only an authenticated packet moves the window.
            assert_eq!(window.highest(), before);
        }
        Err(DecapError::BadPadding) => {}
    }
    r
}

/// What one parse_outer input did.
pub fn fuzz_parse_outer(data: &[u8]) -> Result<ip::Outer, ip::IpError> {
    let Some((&sel, frame)) = data.split_first() else {
        return Err(ip::IpError::Runt);
    };
    let layer = match sel % 3 {
        0 => Layer::Ethernet,
        1 => Layer::Ip,
        _ => Layer::Datagram,
    };
    if let Ok(info) = ip::inner_info(frame) {
        assert!(info.total_len <= frame.len());
    }
    if frame.len() <= MAX_FRAME {
        let mut buf = PacketBuf::new();
        assert!(buf.fill(frame));
        if ip::strip_ethernet(&mut buf).is_ok() {
            assert!(buf.len() < frame.len());
        }
    }
    let r = ip::parse_outer(frame, layer);
    if let Ok(o) = &r {
        assert!(o.payload.start <= o.payload.end && o.payload.end <= frame.len());
        let payload = &frame[o.payload.clone()];
        if o.encap == Encap::Udp {
            let _ = natt::classify(payload);
        }
        // A parsed IP/UDP packet rebuilt from its fields parses to the same thing.
        if layer == Layer::Ip && o.encap == Encap::Udp && payload.len() <= 1500 {
            let mut buf = PacketBuf::new();
            ip::build_udp_packet(&mut buf, o.src, o.dst, payload.len(), |p| {
                p.copy_from_slice(payload)
            })
            .unwrap();
            let again = ip::parse_outer(buf.data(), Layer::Ip).unwrap();
            assert_eq!((again.src, again.dst, again.encap), (o.src, o.dst, o.encap));
            assert_eq!(&buf.data()[again.payload], payload);
        }
    }
    r
}
