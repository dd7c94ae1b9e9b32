//! Known-answer tests: the ESP packets of draft-mcgrew-gcm-test-01 section 4 (the test
//! cases RFC 4106 implementations are checked against). Each vector gives key, salt, SPI,
//! 32- or 64-bit sequence number, explicit IV, plaintext (payload | pad | pad length |
//! next header) and the complete ESP packet. The AES-192 cases are left out: we offer
//! AES-GCM-16 with 128- and 256-bit keys only.

use mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::esp::{self, DecapError};
use dataplane::replay::{ReplayError, ReplayWindow};
use shared::sa::{EspCipher, EspKey};

struct Vector {
    key: &'static str,
    salt: &'static str,
    spi: u32,
    /// Full sequence number; `esn` says whether its high half is in the AAD.
    seq: u64,
    esn: bool,
    iv: &'static str,
    plaintext: &'static str,
    packet: &'static str,
}

const VECTORS: &[Vector] = &[
    Vector {
        key: "4c80cdefbb5d10da906ac73c3613a634",
        salt: "2e443b68",
        spi: 0x0000_4321,
        seq: 0x8765_4321_0000_0000,
        esn: true,
        iv: "4956ed7e3b244cfe",
        plaintext: "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000\
                    00000000045f736970045f7564700373697009637962657263697479\
                    02646b000021000101020201",
        packet: "00004321000000004956ed7e3b244cfe\
                 fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34\
                 cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce\
                 61bc17d768fd9732459018148f6cbe722fd04796562dfdb4",
    },
    Vector {
        key: "feffe9928665731c6d6a8f9467308308",
        salt: "cafebabe",
        spi: 0x0000_a5f8,
        seq: 0x0a,
        esn: false,
        iv: "facedbaddecaf888",
        plaintext: "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d00100\
                    0001000000000000037369700963796265726369747902646b00000100010001",
        packet: "0000a5f80000000afacedbaddecaf888\
                 deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c\
                 3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1\
                 83b70d3aa8bc6ee4c309e9d85a41ad4a",
    },
    Vector {
        key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        salt: "11223344",
        spi: 0x4a2c_bfe3,
        seq: 2,
        esn: false,
        iv: "0102030405060708",
        plaintext: "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000\
                    7002400020bf0000020405b40101040201020201",
        packet: "4a2cbfe3000000020102030405060708\
                 ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763\
                 748a637985771d347f0545659f14e99def842d8eb335f4eecfdbf831824b4c49\
                 15956c96",
    },
    Vector {
        key: "00000000000000000000000000000000",
        salt: "00000000",
        spi: 0,
        seq: 1,
        esn: false,
        iv: "0000000000000000",
        plaintext: "4500003c99c500008001cb7a40679318010101010800075c0200440061626364\
                    65666768696a6b6c6d6e6f70717273747576776162636465666768690102\
                    0201",
        packet: "00000000000000010000000000000000\
                 4688daf2f973a392732909c331d56d60f694abaa414b5e7ff5fdcdfff5e9a284\
                 456476492719ffb64de7d9dca1e1d894bc3bd57873ed4d181d19d4d5c8c18af3\
                 f821d496eeb096e98ad2b69e4799c71d",
    },
    Vector {
        key: "3de09874b388e6491988d0c3607eae1f",
        salt: "57690e43",
        spi: 0x42f6_7e3f,
        seq: 0x1010_1010_1010_1010,
        esn: true,
        iv: "4e280000a2fca1a3",
        plaintext: "4500003c99c300008001cb7c40679318010101010800085c0200430061626364\
                    65666768696a6b6c6d6e6f70717273747576776162636465666768690102\
                    0201",
        packet: "42f67e3f101010104e280000a2fca1a3\
                 fba2caa4853cf9f0f22cb10d86dd83b0fec75691cf1a04b00d1138ec9c357917\
                 65acbd8701ad79845bf9fe3fba487bc91755e6662b4c8d0d1f5e22739530320a\
                 e0d731cc978ecafaeae88f00e80d6e48",
    },
    Vector {
        key: "3de09874b388e6491988d0c3607eae1f",
        salt: "57690e43",
        spi: 0x42f6_7e3f,
        seq: 0x1010_1010_1010_1010,
        esn: true,
        iv: "4e280000a2fca1a3",
        plaintext: "4500001c42a200008001441f406793b6e00000020a00f5ff01020201",
        packet: "42f67e3f101010104e280000a2fca1a3\
                 fba2ca845e5df9f0f22c3e6e86dd831e1fc65792cd1af9130e1379ed369f071f\
                 35e034be95f112e4e7d05d35",
    },
    Vector {
        key: "abbccddef00112233445566778899aab",
        salt: "decaf888",
        spi: 0x0000_0100,
        seq: 1,
        esn: true,
        iv: "cafedebaceface74",
        plaintext: "4500004933ba00007f119106c3fb1d10c2b1d326c02831ce0035dd7b800302d5\
                    00004e20001e8c18d75b81dc91baa0476b91b924b280389d92c963bac046ec95\
                    9b6266c04722b14923010101",
        packet: "0000010000000001cafedebaceface74\
                 18a6fd42f72cbf4ab2a2ea901f73d814e3e7f243d95412e1c349c1d2fbec168f\
                 9190feebaf2cb01984e65863965d7472b79da345e0e780191f0d2f0e0f496c22\
                 6f2127b27db35724e7845d68651f57e65f354f75ff17015769623436",
    },
    Vector {
        key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        salt: "73616c74",
        spi: 0x1740_5e67,
        seq: 0x156f_3126_dd0d_b99b,
        esn: true,
        iv: "616e640169766563",
        plaintext: "45080028732c00004006e9f90a0106120a01038f06b88023dd6bafbecb712602\
                    50101f646d540001",
        packet: "17405e67dd0db99b616e640169766563\
                 f2d69ecdbd5a0d5b8d5ef38bad4da58d1f278fde98ef67549d524a3018d9a57f\
                 f4d3a31ce673119e451626c2415771e3b7eebca614c89b35",
    },
    Vector {
        key: "3de09874b388e6491988d0c3607eae1f",
        salt: "57690e43",
        spi: 0x42f6_7e3f,
        seq: 0x1010_1010_1010_1010,
        esn: true,
        iv: "4e280000a2fca1a3",
        plaintext: "45000049333e00007f119182c3fb1d10c2b1d326c02831ce0035cb458003025b\
                    000001e0001e8c18d65759d52284a0352c71475c8880391c764d6e5ee0496b32\
                    5ae270c03899493915010101",
        packet: "42f67e3f101010104e280000a2fca1a3\
                 fba2cad12fc1f9f00d3cebf305410db83d7784b607323d220f24b0a97d541828\
                 00cadb0f68d99ef0e0c0c89ae9bea8884e52d65bc1afd0740f742444747b5b39\
                 ab533163aad4550ee5160975cdb608c5769189609763b8e18caa81e2",
    },
    Vector {
        key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        salt: "73616c74",
        spi: 0x1740_5e67,
        seq: 0x156f_3126_dd0d_b99b,
        esn: true,
        iv: "616e640169766563",
        plaintext: "636973636f0172756c657301746865016e6574776501646566696e6501746865\
                    746563686e6f6c6f67696573017468617477696c6c01646566696e65746f6d6f\
                    72726f7701020201",
        packet: "17405e67dd0db99b616e640169766563\
                 d4b7ed86a1777f2ea13d6973d324c69e7b43f826fb56831226508bebd2dceb18\
                 d0a6df10e5487df074113e14c641024e3e6773d91a62ee429b043a10e3efe6b0\
                 12a49363412364f8c0cac587f249e56b11e24f30e44ccc76",
    },
    Vector {
        key: "7d773d00c144c525ac619d18c84a3f47",
        salt: "d9664267",
        spi: 0x3354_67ae,
        seq: 0xffff_ffff,
        esn: false,
        iv: "43457e9182443bc6",
        plaintext: "01020201",
        packet: "335467aeffffffff43457e9182443bc6\
                 437f866bcb3f699fe9b0822bac961c4504bef270",
    },
    Vector {
        key: "abbccddef00112233445566778899aab",
        salt: "decaf888",
        spi: 0x0000_0100,
        seq: 1,
        esn: true,
        iv: "cafedebaceface74",
        plaintext: "746f016265016f72016e6f7401746f0162650001",
        packet: "0000010000000001cafedebaceface74\
                 29c9fc69a197d038ccdd14e2ddfcaa054333216441250352430\
                 3ed3c6c5f283843af8c3e",
    },
    Vector {
        key: "6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961",
        salt: "7475726e",
        spi: 0x796b_6963,
        seq: 0xffff_ffff_ffff_ffff,
        esn: true,
        iv: "333021696765746d",
        plaintext: "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364\
                    65666768696a6b6c6d6e6f707172737401020201",
        packet: "796b6963ffffffff333021696765746d\
                 f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a86\
                 4cd3d78ca4ae68a32b42458fb57dbe821dcc63b9d0937ba2945f669368661a32\
                 9fb4c053",
    },
];

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| (b as char).to_digit(16).expect("hex digit") as u8)
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd hex length in {s}");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

fn key_of(v: &Vector) -> EspKey {
    let mut keymat = hex(v.key);
    let cipher = if keymat.len() == 16 {
        EspCipher::AesGcm16_128
    } else {
        EspCipher::AesGcm16_256
    };
    keymat.extend(hex(v.salt));
    EspKey::new(cipher, &keymat).unwrap()
}

fn iv_of(v: &Vector) -> [u8; 8] {
    hex(v.iv).try_into().unwrap()
}

/// A window that has already seen `seq - 1` (so ESN inference lands on `seq`'s epoch).
fn window_before(seq: u64, esn: bool) -> ReplayWindow {
    let mut w = ReplayWindow::new(1024);
    w.reset(1024, esn);
    if seq > 1 {
        w.update(seq - 1);
    }
    w
}

#[test]
fn vectors_cover_both_key_sizes_and_esn() {
    let keys: Vec<usize> = VECTORS.iter().map(|v| hex(v.key).len()).collect();
    assert!(keys.contains(&16) && keys.contains(&32));
    assert!(VECTORS.iter().any(|v| v.esn && v.seq >> 32 != 0));
    assert!(VECTORS.iter().any(|v| v.esn && hex(v.key).len() == 32));
}

#[test]
fn seal_with_iv_matches_published_packets() {
    for (i, v) in VECTORS.iter().enumerate() {
        let key = key_of(v);
        let plain = hex(v.plaintext);
        let mut pkt = vec![0u8; 16];
        pkt.extend_from_slice(&plain);
        pkt.extend_from_slice(&[0u8; 16]);
        esp::seal_with_iv(
            key.as_aead().unwrap(),
            v.spi,
            v.seq,
            v.esn,
            &iv_of(v),
            &mut pkt,
        )
        .unwrap();
        assert_eq!(pkt, hex(v.packet), "vector {i}");
    }
}

#[test]
fn open_in_place_recovers_published_plaintexts() {
    for (i, v) in VECTORS.iter().enumerate() {
        let key = key_of(v);
        let mut pkt = hex(v.packet);
        let n = esp::open_in_place(key.as_aead().unwrap(), v.seq, v.esn, &mut pkt).unwrap();
        assert_eq!(&pkt[16..16 + n], &hex(v.plaintext)[..], "vector {i}");
    }
}

#[test]
fn decap_returns_inner_packet_and_next_header() {
    for (i, v) in VECTORS.iter().enumerate() {
        let key = key_of(v);
        let plain = hex(v.plaintext);
        let (payload_len, nh) = esp::check_trailer(&plain).unwrap();
        let mut w = window_before(v.seq, v.esn);
        let mut buf = PacketBuf::new();
        assert!(buf.fill(&hex(v.packet)));
        assert_eq!(esp::spi_of(buf.data()), Some(v.spi));
        assert_eq!(
            esp::decap(&key, v.esn, &mut w, &mut buf),
            Ok(nh),
            "vector {i}"
        );
        assert_eq!(buf.data(), &plain[..payload_len], "vector {i}");
        assert_eq!(w.highest(), v.seq, "vector {i}");
        // The same packet again is a replay, refused before decryption.
        let mut again = PacketBuf::new();
        assert!(again.fill(&hex(v.packet)));
        assert_eq!(
            esp::decap(&key, v.esn, &mut w, &mut again),
            Err(DecapError::Replay(ReplayError::Duplicate)),
            "vector {i}"
        );
    }
}

#[test]
fn esn_vector_fails_without_the_high_half() {
    // The AAD carries seq_hi with ESN: the same packet read without ESN must not verify.
    let v = &VECTORS[0];
    let key = key_of(v);
    let mut pkt = hex(v.packet);
    assert_eq!(
        esp::open_in_place(key.as_aead().unwrap(), v.seq, false, &mut pkt),
        Err(DecapError::AuthFail)
    );
    let mut pkt = hex(v.packet);
    assert_eq!(
        esp::open_in_place(key.as_aead().unwrap(), v.seq ^ (1 << 40), true, &mut pkt),
        Err(DecapError::AuthFail)
    );
}

#[test]
fn every_flipped_bit_fails_authentication() {
    let v = &VECTORS[2];
    let key = key_of(v);
    let good = hex(v.packet);
    // Header (SPI, seq) is in the AAD; IV, ciphertext and ICV are authenticated by GCM.
    for byte in 0..good.len() {
        let mut pkt = good.clone();
        pkt[byte] ^= 0x01;
        let mut w = window_before(v.seq, v.esn);
        let mut buf = PacketBuf::new();
        assert!(buf.fill(&pkt));
        let r = esp::decap(&key, v.esn, &mut w, &mut buf);
        assert!(
            matches!(r, Err(DecapError::AuthFail) | Err(DecapError::Replay(_))),
            "byte {byte}: {r:?}"
        );
        assert_eq!(w.highest(), v.seq - 1, "window moved on a forged packet");
    }
}
