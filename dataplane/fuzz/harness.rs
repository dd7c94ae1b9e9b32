// Fuzz harnesses, shared by the cargo-fuzz targets and by `tests/fuzz_corpus.rs`, which
// replays the committed corpus on stable. Each asserts invariants beyond "no panic".
//
// decap input: [selector][8-byte highest sequence number seen][ESP packet]
//   selector bits 0-1: key (the draft-mcgrew-gcm-test-01 keys below), bit 2: ESN,
//   bits 3-4: window size (0, 32, 1024, MAX_WINDOW).
// parse_outer input: [layer: 0 Ethernet, 1 Ip, 2 Datagram][frame]

use dataplane::buf::{PacketBuf, MAX_FRAME};
use dataplane::esp::{self, DecapError};
use dataplane::io::Layer;
use dataplane::replay::{ReplayWindow, MAX_WINDOW};
use dataplane::{ip, natt};
use shared::path::Encap;
use shared::sa::{EspCipher, EspKey};

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

fn fuzz_key(i: usize) -> EspKey {
    let (cipher, hex) = FUZZ_KEYS[i % FUZZ_KEYS.len()];
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|j| u8::from_str_radix(&hex[j..j + 2], 16).unwrap())
        .collect();
    EspKey::new(cipher, &bytes).unwrap()
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
    let key = fuzz_key(usize::from(sel & 3));
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
        Err(DecapError::Runt | DecapError::AuthFail | DecapError::Replay(_)) => {
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
