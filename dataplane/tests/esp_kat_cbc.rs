//! Known answers for ESP with AES-CBC and HMAC-SHA2:
//! - RFC 3602 4 cases 1-4 through the per-SA CBC key, and the ESP packets of cases 5-8
//!   byte for byte through our encapsulation (header, IV, padding, trailer, ciphertext);
//!   RFC 3602 gives no ICV, so each packet's ICV is checked against an independent HMAC
//!   (RustCrypto `hmac` + `sha2`) and decapsulation must give the payload back;
//! - RFC 4868 2.7.2 HMAC-SHA-256-128 / 384-192 / 512-256 vectors through the ICV
//!   computation and constant-time verification the dataplane uses.

use mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::esp::{self, cbc, DecapError};
use dataplane::replay::ReplayWindow;
use hmac::{Hmac, Mac};
use shared::sa::{EspCipher, EspInteg, EspKey};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| (b as char).to_digit(16).expect("hex digit") as u8)
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd hex length in {s}");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// The full HMAC of `data` by RustCrypto, truncated as RFC 4868 2.3 says.
fn oracle_icv(integ: EspInteg, key: &[u8], data: &[u8]) -> Vec<u8> {
    let full = match integ {
        EspInteg::HmacSha256_128 => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        EspInteg::HmacSha384_192 => {
            let mut m = Hmac::<sha2::Sha384>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        EspInteg::HmacSha512_256 => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    };
    full[..integ.icv_len()].to_vec()
}

/// The integrity key every case here uses beside the RFC 3602 encryption key.
fn integ_key(integ: EspInteg) -> Vec<u8> {
    (0..integ.key_len() as u8).map(|i| i ^ 0x5c).collect()
}

fn cbc_key(enc: &[u8], integ: EspInteg) -> EspKey {
    let cipher = match enc.len() {
        16 => EspCipher::AesCbc128(integ),
        _ => EspCipher::AesCbc256(integ),
    };
    let mut keymat = enc.to_vec();
    keymat.extend(integ_key(integ));
    EspKey::new(cipher, &keymat).unwrap()
}

#[test]
fn rfc3602_cases_1_to_4_through_the_sa_key() {
    let cases = [
        (
            "06a9214036b8a15b512e03d534120006",
            "3dafba429d9eb430b422da802c9fac41",
            "53696e676c6520626c6f636b206d7367",
            "e353779c1079aeb82708942dbe77181a",
        ),
        (
            "c286696d887c9aa0611bbb3e2025a45a",
            "562e17996d093d28ddb3ba695a2e6f58",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
        ),
        (
            "6c3ea0477630ce21a2ce334aa746c2cd",
            "c782dc4c098c66cbd9cd27d825682c81",
            "5468697320697320612034382d62797465206d657373616765202865786163746c7920\
             332041455320626c6f636b7329",
            "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5\
             021c19216bad525c8579695d83ba2684",
        ),
        (
            "56e47a38c5598974bc46903dba290349",
            "8ce82eefbea0da3c44699ed7db51b7d9",
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\
             c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf",
            "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e\
             35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
        ),
    ];
    for (n, (key, iv, plain, cipher)) in cases.iter().enumerate() {
        let key = cbc_key(&hex(key), EspInteg::HmacSha256_128);
        let key = key.as_cbc().unwrap();
        let iv: [u8; 16] = hex(iv).try_into().unwrap();
        let mut buf = hex(plain);
        key.encrypt(&iv, &mut buf).unwrap();
        assert_eq!(buf, hex(cipher), "case {}", n + 1);
        key.decrypt(&iv, &mut buf).unwrap();
        assert_eq!(buf, hex(plain), "case {}", n + 1);
    }
}

/// RFC 3602 4 cases 5-8: ESP packets (cases 5 and 6 in transport mode, next header ICMP;
/// 7 and 8 in tunnel mode, next header IPv4).
struct EspCase {
    key: &'static str,
    spi: u32,
    seq: u64,
    next_header: u8,
    payload: &'static str,
    /// SPI | sequence number | IV | ciphertext, as published (no ICV).
    packet: &'static str,
}

const ESP_CASES: [EspCase; 4] = [
    EspCase {
        key: "90d382b410eeba7ad938c46cec1a82bf",
        spi: 0x4321,
        seq: 1,
        next_header: 1,
        payload: "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b\
                  1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
        packet: "0000432100000001e96e8c08ab465763fd098d45dd3ff893\
                 f663c25d325c18c6a9453e194e120849a4870b66cc6b9965330013b4898dc856\
                 a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab50c551b874a\
                 a269add047ad2d5913ac19b7cfbad4a6",
    },
    EspCase {
        key: "90d382b410eeba7ad938c46cec1a82bf",
        spi: 0x4321,
        seq: 8,
        next_header: 1,
        payload: "0800b5e8a80a0500a69c083d0b660e00777777777777777777777777",
        packet: "000043210000000869d08df7d203329db093fc4924e5bd80\
                 f51995881ec4e0c4488987ce742e8109689bb379d2d750c0d915dca346a89f75",
    },
    EspCase {
        key: "0123456789abcdef0123456789abcdef",
        spi: 0x8765,
        seq: 2,
        next_header: 4,
        payload: "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d02a20400\
                  08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b\
                  2c2d2e2f3031323334353637",
        packet: "0000876500000002f4e765244f6407adf13dc1380f673f37\
                 773b5241a4c449225e4f3ce5ed611b0c237ca96cf74a93013c1b0ea1a0cf70f8\
                 e4ecaec78ac53aad7a0f022b859243c647752e94a859352b8a4d4d2decd136e5\
                 c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d",
    },
    EspCase {
        key: "0123456789abcdef0123456789abcdef",
        spi: 0x8765,
        seq: 5,
        next_header: 4,
        payload: "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083da3de0300\
                  ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        packet: "000087650000000585d47224b5f3dd5d2101d4ea8dffab22\
                 15b92683819596a8047232cc00f7048fe45318e11f8a0f62ede3c3fc61203bb5\
                 0f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de435e7207ed971ef3\
                 d2726d9b5ef6affc6d17a0decbb13892",
    },
];

fn iv_of(c: &EspCase) -> [u8; 16] {
    hex(c.packet)[8..24].try_into().unwrap()
}

#[test]
fn rfc3602_esp_cases_through_encap_with_each_hmac() {
    for (n, c) in ESP_CASES.iter().enumerate() {
        for integ in EspInteg::ALL {
            let key = cbc_key(&hex(c.key), integ);
            let mut buf = PacketBuf::new();
            assert!(buf.fill(&hex(c.payload)));
            cbc::encap_with_iv(
                key.as_cbc().unwrap(),
                c.spi,
                c.seq,
                false,
                c.next_header,
                &iv_of(c),
                &mut buf,
            )
            .unwrap();
            let published = hex(c.packet);
            let pkt = buf.data();
            let case = format!("case {} {}", n + 5, integ.name());
            assert_eq!(pkt.len(), published.len() + integ.icv_len(), "{case}");
            assert_eq!(&pkt[..published.len()], &published[..], "{case}");
            let icv = oracle_icv(integ, &integ_key(integ), &published);
            assert_eq!(&pkt[published.len()..], &icv[..], "{case}");
        }
    }
}

#[test]
fn rfc3602_esp_cases_decap_with_an_independent_icv() {
    for (n, c) in ESP_CASES.iter().enumerate() {
        for integ in EspInteg::ALL {
            let key = cbc_key(&hex(c.key), integ);
            let mut pkt = hex(c.packet);
            pkt.extend(oracle_icv(integ, &integ_key(integ), &pkt));
            let mut w = ReplayWindow::new(64);
            w.reset(64, false);
            let mut buf = PacketBuf::new();
            assert!(buf.fill(&pkt));
            let case = format!("case {} {}", n + 5, integ.name());
            assert_eq!(
                esp::decap(&key, false, &mut w, &mut buf),
                Ok(c.next_header),
                "{case}"
            );
            assert_eq!(buf.data(), &hex(c.payload)[..], "{case}");
            assert_eq!(w.highest(), c.seq, "{case}");
            // The published packet with a wrong ICV is refused and moves nothing.
            let mut w = ReplayWindow::new(64);
            w.reset(64, false);
            let last = pkt.len() - 1;
            pkt[last] ^= 1;
            let mut buf = PacketBuf::new();
            assert!(buf.fill(&pkt));
            assert_eq!(
                esp::decap(&key, false, &mut w, &mut buf),
                Err(DecapError::AuthFail),
                "{case}"
            );
            assert_eq!(w.highest(), 0, "{case}");
        }
    }
}

#[test]
fn rfc4868_icv_vectors() {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../control/tests/data/crypto/rfc4868.txt"
    );
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let mut cases = [0usize; 3];
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let integ = match f.first() {
            Some(&"AUTH_HMAC_SHA2_256_128") => EspInteg::HmacSha256_128,
            Some(&"AUTH_HMAC_SHA2_384_192") => EspInteg::HmacSha384_192,
            Some(&"AUTH_HMAC_SHA2_512_256") => EspInteg::HmacSha512_256,
            _ => continue,
        };
        let (key, data, want) = (hex(f[1]), hex(f[2]), hex(f[3]));
        assert_eq!(key.len(), integ.key_len(), "{line}");
        assert_eq!(want.len(), integ.icv_len(), "{line}");
        for cipher in [EspCipher::AesCbc128(integ), EspCipher::AesCbc256(integ)] {
            let mut keymat = vec![0x11; cipher.key_len()];
            keymat.extend_from_slice(&key);
            let k = EspKey::new(cipher, &keymat).unwrap();
            let k = k.as_cbc().unwrap();
            let mut icv = vec![0u8; integ.icv_len()];
            k.icv(&data, &[], &mut icv);
            assert_eq!(icv, want, "{line}");
            // The ESN tail is part of the input: splitting the data there changes nothing.
            let (a, b) = data.split_at(data.len() / 2);
            k.icv(a, b, &mut icv);
            assert_eq!(icv, want, "{line}");
            assert!(k.verify(&data, &[], &want), "{line}");
            let mut bad = want.clone();
            bad[0] ^= 1;
            assert!(!k.verify(&data, &[], &bad), "{line}");
        }
        cases[integ.icv_len() / 8 - 2] += 1;
    }
    assert!(cases.iter().all(|&n| n >= 3), "{cases:?}");
}
