//! The IKEv2 crypto suites against published vectors (RFC 4868, RFC 5903, RFC 7748,
//! RFC 3602), an independent AES-GCM (RustCrypto `aes-gcm`, beside ring) for the SK
//! payload and an independent X25519 (`x25519-dalek`, beside aws-lc-rs), hand-written expansions of prf+ and the key schedule, whole IKE_AUTH
//! exchanges computed by Python's hmac and pyca/cryptography
//! (tests/data/crypto/gen_kat.py), and proptests feeding random and mutated
//! datagrams to the SK opener.

use mobiked_control::ike::crypto::dh::KeyShare;
use mobiked_control::ike::crypto::keys::{child_keymat, psk_auth, skeyseed, ChildKeys, IkeKeys};
use mobiked_control::ike::crypto::random::{Random, SeededRandom, SystemRandom};
use mobiked_control::ike::crypto::sk::{
    aes_cbc_decrypt, aes_cbc_encrypt, open_message, seal_message, SkKeys,
};
use mobiked_control::ike::crypto::{CryptoError, DhGroup, Encr, EspSuite, IkeSuite, Integ, Prf};
use mobiked_control::ike::wire::{ExchangeType, HeaderRepr, PayloadType, HEADER_LEN};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn data_file(name: &str) -> String {
    let p = format!("{}/tests/data/crypto/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

// ---------------------------------------------------------------------------
// PRF and integrity: RFC 4868 2.7
// ---------------------------------------------------------------------------

#[test]
fn rfc4868_prf_and_integ_vectors() {
    let mut prf_cases = 0;
    let mut integ_cases = 0;
    for line in data_file("rfc4868.txt").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let (key, data, want) = (hex(f[1]), hex(f[2]), hex(f[3]));
        let prf = match f[0] {
            "PRF_HMAC_SHA2_256" => Some(Prf::HmacSha2_256),
            "PRF_HMAC_SHA2_384" => Some(Prf::HmacSha2_384),
            "PRF_HMAC_SHA2_512" => Some(Prf::HmacSha2_512),
            _ => None,
        };
        if let Some(prf) = prf {
            assert_eq!(prf.compute(&key, &[&data]), want, "{line}");
            // Splitting the data into parts must not change the result.
            let (a, b) = data.split_at(data.len() / 3);
            assert_eq!(prf.compute(&key, &[a, &[], b]), want, "{line}");
            assert_eq!(want.len(), prf.out_len());
            prf_cases += 1;
            continue;
        }
        let integ = match f[0] {
            "AUTH_HMAC_SHA2_256_128" => Integ::HmacSha2_256_128,
            "AUTH_HMAC_SHA2_384_192" => Integ::HmacSha2_384_192,
            "AUTH_HMAC_SHA2_512_256" => Integ::HmacSha2_512_256,
            other => panic!("unknown algorithm {other}"),
        };
        assert_eq!(key.len(), integ.key_len(), "{line}");
        assert_eq!(integ.compute(&key, &[&data]), want, "{line}");
        assert!(integ.verify(&key, &[&data], &want));
        for i in 0..want.len() {
            let mut bad = want.clone();
            bad[i] ^= 0x80;
            assert!(!integ.verify(&key, &[&data], &bad), "{line} byte {i}");
        }
        assert!(!integ.verify(&key, &[&data], &want[..want.len() - 1]));
        assert!(!integ.verify(&key, &[&data], &[]));
        integ_cases += 1;
    }
    assert_eq!((prf_cases, integ_cases), (15, 9));
}

// ---------------------------------------------------------------------------
// prf+ (RFC 7296 2.13)
// ---------------------------------------------------------------------------

/// prf+ written out block by block from the RFC's definition.
fn prf_plus_by_hand(prf: Prf, key: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut t: Vec<u8> = Vec::new();
    for n in 1..=255u8 {
        if out.len() >= len {
            break;
        }
        let mut input = t.clone();
        input.extend_from_slice(seed);
        input.push(n);
        t = prf.compute(key, &[&input]);
        out.extend_from_slice(&t);
    }
    assert!(out.len() >= len, "prf+ asked for more than 255 blocks");
    out.truncate(len);
    out
}

#[test]
fn prf_plus_matches_the_definition() {
    let key = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let seed_parts: [&[u8]; 3] = [b"nonce-i", b"", b"nonce-r and SPIs"];
    let seed: Vec<u8> = seed_parts.concat();
    for prf in Prf::ALL {
        for len in [
            0,
            1,
            prf.out_len() - 1,
            prf.out_len(),
            prf.out_len() + 1,
            200,
            1000,
        ] {
            let got = prf.plus(&key, &seed_parts, len).unwrap();
            assert_eq!(got.len(), len);
            assert_eq!(
                got,
                prf_plus_by_hand(prf, &key, &seed, len),
                "{prf:?} {len}"
            );
        }
        // T1 = prf(K, S | 0x01).
        let t1 = prf.compute(&key, &[&seed, &[1]]);
        assert_eq!(prf.plus(&key, &seed_parts, prf.out_len()).unwrap(), t1);
        // A longer output extends a shorter one.
        let long = prf.plus(&key, &seed_parts, 500).unwrap();
        assert_eq!(&long[..77], &prf.plus(&key, &seed_parts, 77).unwrap()[..]);
    }
}

#[test]
fn prf_plus_stops_at_255_blocks() {
    for prf in Prf::ALL {
        let max = 255 * prf.out_len();
        let all = prf.plus(b"k", &[b"s"], max).unwrap();
        assert_eq!(all.len(), max);
        assert_eq!(all, prf_plus_by_hand(prf, b"k", b"s", max));
        assert_eq!(
            prf.plus(b"k", &[b"s"], max + 1),
            Err(CryptoError::PrfPlusTooLong)
        );
        assert_eq!(
            prf.plus(b"k", &[b"s"], usize::MAX),
            Err(CryptoError::PrfPlusTooLong)
        );
    }
}

// ---------------------------------------------------------------------------
// Key exchange: RFC 5903 8, RFC 7748 5.2 and 6.1, RFC 6989 checks
// ---------------------------------------------------------------------------

struct EcpVector {
    group: DhGroup,
    i: &'static str,
    gix: &'static str,
    giy: &'static str,
    r: &'static str,
    grx: &'static str,
    gry: &'static str,
    girx: &'static str,
}

/// RFC 5903 8.1 (group 19) and 8.2 (group 20).
const RFC5903: [EcpVector; 2] = [
    EcpVector {
        group: DhGroup::Ecp256,
        i: "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
        gix: "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180",
        giy: "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
        r: "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
        grx: "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63",
        gry: "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
        girx: "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE",
    },
    EcpVector {
        group: DhGroup::Ecp384,
        i: "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655
            E35B538041E649EE3FAEF896783AB194",
        gix: "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6
              DE3AC808ACB4BDB4C88732AEE95F41AA",
        giy: "9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38E
              EB9FCFF3C2C947DAE69B4C634573A81C",
        r: "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942
            E0308312916B8ED2960E4BD55A7448FC",
        grx: "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D
              0D1AC43A0336DEF96FDA41D0774A3571",
        gry: "DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FF
              F83FA40142209DFF5EAAD96DB9E6386C",
        girx: "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4
               D603135569B9E9D09CF5D4A270F59746",
    },
];

#[test]
fn rfc5903_ecp_vectors() {
    for v in &RFC5903 {
        let i = KeyShare::from_private(v.group, &hex(v.i)).unwrap();
        let r = KeyShare::from_private(v.group, &hex(v.r)).unwrap();
        assert_eq!(i.group(), v.group);
        // RFC 5903 7: the KE payload carries x | y without a point format octet.
        let gi = [hex(v.gix), hex(v.giy)].concat();
        let gr = [hex(v.grx), hex(v.gry)].concat();
        assert_eq!(i.public(), &gi[..], "{:?} g^i", v.group);
        assert_eq!(r.public(), &gr[..], "{:?} g^r", v.group);
        assert_eq!(gi.len(), v.group.public_len());
        // The shared secret is the x-coordinate of g^ir only.
        let want = hex(v.girx);
        assert_eq!(i.agree(&gr).unwrap().as_bytes(), &want[..], "{:?}", v.group);
        assert_eq!(r.agree(&gi).unwrap().as_bytes(), &want[..], "{:?}", v.group);
    }
}

#[test]
fn rfc7748_x25519_vectors() {
    // RFC 7748 5.2: scalar, input u-coordinate, output u-coordinate. The second
    // input has its top bit set, which X25519 must ignore.
    for (k, u, out) in [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ] {
        let s = KeyShare::from_private(DhGroup::Curve25519, &hex(k)).unwrap();
        assert_eq!(s.agree(&hex(u)).unwrap().as_bytes(), &hex(out)[..]);
    }

    // RFC 7748 6.1: Alice and Bob.
    let a_priv = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let a_pub = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    let b_priv = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    let b_pub = hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let k = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    let a = KeyShare::from_private(DhGroup::Curve25519, &a_priv).unwrap();
    let b = KeyShare::from_private(DhGroup::Curve25519, &b_priv).unwrap();
    assert_eq!(a.public(), &a_pub[..]);
    assert_eq!(b.public(), &b_pub[..]);
    assert_eq!(a.agree(&b_pub).unwrap().as_bytes(), &k[..]);
    assert_eq!(b.agree(&a_pub).unwrap().as_bytes(), &k[..]);
}

#[test]
fn ke_share_length_is_checked() {
    let mut rng = SeededRandom::new(7);
    for g in DhGroup::ALL {
        let s = KeyShare::generate(g, &mut rng);
        let peer = KeyShare::generate(g, &mut rng);
        let good = peer.public().to_vec();
        assert_eq!(good.len(), g.public_len());
        for bad_len in [0, 1, good.len() - 1, good.len() + 1, 2 * good.len() + 1] {
            let mut v = good.clone();
            v.resize(bad_len, 0x55);
            assert_eq!(
                s.agree(&v).unwrap_err(),
                CryptoError::KeShareLength,
                "{g:?} len {bad_len}"
            );
        }
        // With a 0x04 prefix (the SEC1 form) the length is wrong too.
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(&good);
        assert_eq!(s.agree(&sec1).unwrap_err(), CryptoError::KeShareLength);
    }
}

#[test]
fn ecp_points_off_the_curve_are_refused() {
    for v in &RFC5903 {
        let i = KeyShare::from_private(v.group, &hex(v.i)).unwrap();
        let gr = [hex(v.grx), hex(v.gry)].concat();
        let n = gr.len() / 2;
        // y + 1 (in the last octet) is not on the curve.
        let mut off = gr.clone();
        off[2 * n - 1] ^= 1;
        // The identity has no affine form; all zero is how a careless encoder
        // would send it, and (0, 0) is not on these curves.
        let zero = vec![0u8; 2 * n];
        // Coordinates >= p are not field elements.
        let big = vec![0xffu8; 2 * n];
        // x of a valid point with y taken from another point.
        let mixed = [hex(v.grx), hex(v.giy)].concat();
        for (what, p) in [("off", off), ("zero", zero), ("big", big), ("mixed", mixed)] {
            assert_eq!(
                i.agree(&p).unwrap_err(),
                CryptoError::KeShareInvalid,
                "{:?} {what}",
                v.group
            );
        }
    }
}

#[test]
fn x25519_small_order_points_give_no_secret() {
    let s = KeyShare::generate(DhGroup::Curve25519, &mut SeededRandom::new(3));
    // u = 0 and u = 1 are points of small order; so is p (= 0 mod p) and the
    // order-8 point listed in the curve's known small-order set.
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut one = [0u8; 32];
    one[0] = 1;
    let order8 = hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
    for u in [[0u8; 32], one, p, order8.try_into().unwrap()] {
        assert_eq!(
            s.agree(&u).unwrap_err(),
            CryptoError::SharedSecretZero,
            "{u:02x?}"
        );
    }
}

proptest! {
    /// X25519 against an independent implementation (x25519-dalek): the same public
    /// value and the same shared secret for any pair of private keys.
    #[test]
    fn x25519_matches_dalek(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        let ours = KeyShare::from_private(DhGroup::Curve25519, &a).unwrap();
        let theirs = x25519_dalek::StaticSecret::from(b);
        let theirs_pub = x25519_dalek::PublicKey::from(&theirs);
        let ours_pub = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(a));
        prop_assert_eq!(ours.public(), ours_pub.as_bytes());
        let z = ours.agree(theirs_pub.as_bytes()).unwrap();
        let want = theirs.diffie_hellman(&ours_pub);
        prop_assert_eq!(z.as_bytes(), want.as_bytes());
    }
}

#[test]
fn private_keys_are_checked() {
    // ECP scalars must be in 1..n: zero and n itself are refused.
    let n256 = hex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
    assert!(KeyShare::from_private(DhGroup::Ecp256, &[0u8; 32]).is_err());
    assert!(KeyShare::from_private(DhGroup::Ecp256, &n256).is_err());
    assert!(KeyShare::from_private(DhGroup::Ecp256, &[0xffu8; 32]).is_err());
    assert!(KeyShare::from_private(DhGroup::Ecp256, &[1u8; 31]).is_err());
    assert!(KeyShare::from_private(DhGroup::Ecp384, &[1u8; 32]).is_err());
    assert!(KeyShare::from_private(DhGroup::Curve25519, &[1u8; 31]).is_err());
}

#[test]
fn generated_shares_agree_and_replay_from_a_seed() {
    for g in DhGroup::ALL {
        let a = KeyShare::generate(g, &mut SeededRandom::new(11));
        let a2 = KeyShare::generate(g, &mut SeededRandom::new(11));
        let b = KeyShare::generate(g, &mut SeededRandom::new(12));
        assert_eq!(a.public(), a2.public(), "{g:?} seeded replay");
        assert_ne!(a.public(), b.public(), "{g:?}");
        let ab = a.agree(b.public()).unwrap();
        let ba = b.agree(a.public()).unwrap();
        assert_eq!(ab.as_bytes(), ba.as_bytes(), "{g:?}");
        let secret_len = match g {
            DhGroup::Ecp256 | DhGroup::Curve25519 => 32,
            DhGroup::Ecp384 => 48,
        };
        assert_eq!(ab.as_bytes().len(), secret_len);
        // The system generator works too and gives fresh keys.
        let mut sys = SystemRandom::new();
        let c = KeyShare::generate(g, &mut sys);
        let d = KeyShare::generate(g, &mut sys);
        assert_ne!(c.public(), d.public());
        assert_eq!(
            c.agree(d.public()).unwrap().as_bytes(),
            d.agree(c.public()).unwrap().as_bytes()
        );
    }
}

/// A generator that first returns scalars outside 1..n: the share must be drawn
/// again, not made from a reduced or clamped value.
struct Scripted {
    queue: Vec<Vec<u8>>,
    then: SeededRandom,
}

impl Random for Scripted {
    fn fill(&mut self, out: &mut [u8]) {
        if self.queue.is_empty() {
            self.then.fill(out)
        } else {
            let v = self.queue.remove(0);
            out.copy_from_slice(&v);
        }
    }
}

#[test]
fn ecp_generation_rejects_scalars_out_of_range() {
    let n256 = hex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
    let mut rng = Scripted {
        queue: vec![vec![0; 32], vec![0xff; 32], n256, hex(RFC5903[0].i)],
        then: SeededRandom::new(1),
    };
    let s = KeyShare::generate(DhGroup::Ecp256, &mut rng);
    let want = [hex(RFC5903[0].gix), hex(RFC5903[0].giy)].concat();
    assert_eq!(s.public(), &want[..]);
}

#[test]
fn seeded_random_is_a_stream() {
    // Drawing 100 bytes at once or in odd pieces gives the same stream, and the
    // first block is HMAC-SHA-256(seed, counter 0).
    let mut a = SeededRandom::new(42);
    let mut whole = [0u8; 100];
    a.fill(&mut whole);
    let mut b = SeededRandom::new(42);
    let mut pieces = Vec::new();
    for n in [1usize, 31, 0, 33, 35] {
        let mut p = vec![0u8; n];
        b.fill(&mut p);
        pieces.extend(p);
    }
    assert_eq!(&whole[..], &pieces[..]);
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &42u64.to_be_bytes());
    let t0 = ring::hmac::sign(&k, &0u64.to_be_bytes());
    assert_eq!(&whole[..32], t0.as_ref());
    let mut c = SeededRandom::new(43);
    let mut other = [0u8; 100];
    c.fill(&mut other);
    assert_ne!(whole, other);
}

// ---------------------------------------------------------------------------
// AES-CBC: RFC 3602 4
// ---------------------------------------------------------------------------

#[test]
fn rfc3602_aes_cbc_vectors() {
    let cases = [
        (
            "06a9214036b8a15b512e03d534120006",
            "3dafba429d9eb430b422da802c9fac41",
            hex(&b"Single block msg"
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()),
            "e353779c1079aeb82708942dbe77181a",
        ),
        (
            "c286696d887c9aa0611bbb3e2025a45a",
            "562e17996d093d28ddb3ba695a2e6f58",
            hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
            "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
        ),
        (
            "6c3ea0477630ce21a2ce334aa746c2cd",
            "c782dc4c098c66cbd9cd27d825682c81",
            b"This is a 48-byte message (exactly 3 AES blocks)".to_vec(),
            "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5
             021c19216bad525c8579695d83ba2684",
        ),
        (
            "56e47a38c5598974bc46903dba290349",
            "8ce82eefbea0da3c44699ed7db51b7d9",
            hex(
                "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
                 c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf",
            ),
            "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e
             35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
        ),
    ];
    for (n, (key, iv, plain, cipher)) in cases.iter().enumerate() {
        let (key, iv, cipher) = (hex(key), hex(iv), hex(cipher));
        let mut buf = plain.clone();
        aes_cbc_encrypt(&key, &iv, &mut buf).unwrap();
        assert_eq!(buf, cipher, "case {}", n + 1);
        aes_cbc_decrypt(&key, &iv, &mut buf).unwrap();
        assert_eq!(&buf, plain, "case {}", n + 1);
    }
    // Partial blocks and bad key lengths are errors, not panics.
    let mut odd = [0u8; 17];
    assert!(aes_cbc_encrypt(&[0; 16], &[0; 16], &mut odd).is_err());
    assert!(aes_cbc_decrypt(&[0; 16], &[0; 16], &mut odd).is_err());
    assert_eq!(
        aes_cbc_encrypt(&[0; 24], &[0; 16], &mut [0; 16]),
        Err(CryptoError::KeyLength)
    );
}

// ---------------------------------------------------------------------------
// The SK payload (RFC 7296 3.14, RFC 5282)
// ---------------------------------------------------------------------------

fn header() -> HeaderRepr {
    HeaderRepr {
        spi_i: 0x0102030405060708,
        spi_r: 0x1112131415161718,
        // Both overridden by seal_message.
        next_payload: PayloadType::NONE,
        length: 0,
        minor_version: 0,
        exchange_type: ExchangeType::IKE_AUTH,
        initiator: true,
        higher_version: false,
        response: false,
        message_id: 1,
    }
}

/// Every (encr, integ) pair the SK payload accepts.
fn sk_suites() -> Vec<(Encr, Option<Integ>)> {
    let mut v = Vec::new();
    for e in Encr::ALL {
        if e.is_aead() {
            v.push((e, None));
        } else {
            for i in Integ::ALL {
                v.push((e, Some(i)));
            }
        }
    }
    v
}

fn keys_for(encr: Encr, integ: Option<Integ>, seed: u8) -> (Vec<u8>, Vec<u8>, SkKeys) {
    let e: Vec<u8> = (0..encr.keymat_len()).map(|n| seed ^ n as u8).collect();
    let a: Vec<u8> = (0..integ.map_or(0, |i| i.key_len()))
        .map(|n| seed.wrapping_add(0x80) ^ n as u8)
        .collect();
    let k = SkKeys::new(encr, integ, &e, &a).unwrap();
    (e, a, k)
}

#[test]
fn sk_round_trips_for_every_suite_and_length() {
    let mut rng = SeededRandom::new(5);
    for (encr, integ) in sk_suites() {
        let (_, _, keys) = keys_for(encr, integ, 1);
        for len in [0usize, 1, 14, 15, 16, 17, 31, 32, 100, 1400] {
            let pt: Vec<u8> = (0..len).map(|n| (n * 7) as u8).collect();
            let msg = seal_message(&keys, &mut rng, &header(), PayloadType::IDI, &pt).unwrap();
            assert_eq!(msg.len(), HEADER_LEN + 4 + len + keys.overhead(len));
            // The header's Next Payload and Length were set.
            assert_eq!(msg[16], PayloadType::SK.0);
            assert_eq!(
                u32::from_be_bytes(msg[24..28].try_into().unwrap()) as usize,
                msg.len()
            );
            assert_eq!(msg[HEADER_LEN], PayloadType::IDI.0);
            if !encr.is_aead() {
                // Ciphertext is whole blocks.
                let ct = msg.len() - HEADER_LEN - 4 - 16 - integ.unwrap().icv_len();
                assert_eq!(ct % 16, 0, "{encr:?} {len}");
            }
            let o = open_message(&keys, &msg).unwrap();
            assert_eq!(o.plaintext, pt, "{encr:?} {integ:?} {len}");
            assert_eq!(o.first_inner, PayloadType::IDI);
            let mut h = header();
            h.next_payload = PayloadType::SK;
            h.length = msg.len() as u32;
            assert_eq!(o.header, h);
            // Bytes after the header's Length are not part of the message.
            let mut longer = msg.clone();
            longer.extend_from_slice(&[0xee; 9]);
            assert_eq!(open_message(&keys, &longer).unwrap().plaintext, pt);
        }
        // The wrong key (the other direction's) fails the integrity check.
        let (_, _, other) = keys_for(encr, integ, 2);
        let msg = seal_message(&keys, &mut rng, &header(), PayloadType::IDI, b"x").unwrap();
        assert_eq!(
            open_message(&other, &msg).unwrap_err(),
            CryptoError::SkIntegrity
        );
    }
}

#[test]
fn sk_overhead_is_what_seal_adds() {
    let mut rng = SeededRandom::new(6);
    for (encr, integ) in sk_suites() {
        let (_, _, keys) = keys_for(encr, integ, 9);
        for len in 0..70 {
            let msg =
                seal_message(&keys, &mut rng, &header(), PayloadType::AUTH, &vec![1; len]).unwrap();
            assert_eq!(msg.len() - HEADER_LEN - 4 - len, keys.overhead(len));
        }
    }
}

#[test]
fn sk_key_lengths_are_checked() {
    for (encr, integ) in sk_suites() {
        let e = vec![0u8; encr.keymat_len()];
        let a = vec![0u8; integ.map_or(0, |i| i.key_len())];
        assert!(SkKeys::new(encr, integ, &e, &a).is_ok());
        assert_eq!(
            SkKeys::new(encr, integ, &e[1..], &a).unwrap_err(),
            CryptoError::KeyLength
        );
        assert_eq!(
            SkKeys::new(encr, integ, &e, &[a.clone(), vec![0]].concat()).unwrap_err(),
            CryptoError::KeyLength
        );
    }
    // GCM takes no integrity algorithm; CBC needs one.
    assert!(SkKeys::new(
        Encr::AesGcm16_128,
        Some(Integ::HmacSha2_256_128),
        &[0; 20],
        &[0; 32]
    )
    .is_err());
    assert!(SkKeys::new(Encr::AesCbc128, None, &[0; 16], &[]).is_err());
}

/// The octets of a sealed message that frame it (Next Payload of the IKE header,
/// its Length, and the SK payload's length): changing them breaks the parse
/// before the integrity check. Every other octet is covered by the ICV or tag.
fn is_framing(i: usize) -> bool {
    i == 16 || (24..28).contains(&i) || i == HEADER_LEN + 2 || i == HEADER_LEN + 3
}

#[test]
fn sk_any_changed_octet_is_refused() {
    let mut rng = SeededRandom::new(8);
    for (encr, integ) in sk_suites() {
        let (_, _, keys) = keys_for(encr, integ, 3);
        let msg = seal_message(
            &keys,
            &mut rng,
            &header(),
            PayloadType::IDI,
            b"hello, world!",
        )
        .unwrap();
        for i in 0..msg.len() {
            for flip in [0x01u8, 0x80] {
                let mut m = msg.clone();
                m[i] ^= flip;
                let e = open_message(&keys, &m).unwrap_err();
                if i == 17 && flip == 0x80 {
                    // The major version: the header itself is refused.
                    assert_eq!(e, CryptoError::SkTruncated);
                } else if !is_framing(i) {
                    assert_eq!(e, CryptoError::SkIntegrity, "{encr:?} {integ:?} octet {i}");
                }
            }
        }
        // Truncations never open.
        for n in 0..msg.len() {
            assert!(open_message(&keys, &msg[..n]).is_err());
        }
    }
}

#[test]
fn sk_must_be_last_and_present() {
    let mut rng = SeededRandom::new(9);
    let (_, _, keys) = keys_for(Encr::AesGcm16_256, None, 4);
    // A message with no payloads at all.
    let mut h = header();
    h.length = HEADER_LEN as u32;
    let mut bare = vec![0u8; HEADER_LEN];
    h.emit(&mut mobiked_control::ike::wire::header::Packet::new_unchecked(&mut bare[..]));
    assert_eq!(
        open_message(&keys, &bare).unwrap_err(),
        CryptoError::SkMissing
    );
    // A message whose only payload is a Nonce.
    let mut n = bare.clone();
    n[16] = PayloadType::NONCE.0;
    n.extend_from_slice(&[0, 0, 0, 8, 1, 2, 3, 4]);
    let len = n.len() as u32;
    n[24..28].copy_from_slice(&len.to_be_bytes());
    assert_eq!(open_message(&keys, &n).unwrap_err(), CryptoError::SkMissing);
    // An SK payload too short to hold IV and tag.
    let msg = seal_message(&keys, &mut rng, &header(), PayloadType::IDI, b"").unwrap();
    let short_len = HEADER_LEN + 4 + 8 + 16;
    let mut short = msg[..short_len].to_vec();
    short[24..28].copy_from_slice(&(short_len as u32).to_be_bytes());
    short[HEADER_LEN + 2..HEADER_LEN + 4]
        .copy_from_slice(&((short_len - HEADER_LEN) as u16).to_be_bytes());
    assert_eq!(
        open_message(&keys, &short).unwrap_err(),
        CryptoError::SkTruncated
    );
}

#[test]
fn sk_cbc_pad_length_is_bounded() {
    // A CBC message whose decrypted pad length points before the plaintext: build
    // it by hand with the real keys so the ICV is valid.
    let (e, a, keys) = keys_for(Encr::AesCbc128, Some(Integ::HmacSha2_256_128), 5);
    let iv = [7u8; 16];
    let mut block = [0u8; 16];
    block[15] = 16; // claims 16 octets of padding in a 16-octet plaintext
    aes_cbc_encrypt(&e, &iv, &mut block).unwrap();
    let total = HEADER_LEN + 4 + 16 + 16 + 16;
    let mut msg = vec![0u8; HEADER_LEN];
    let mut h = header();
    h.next_payload = PayloadType::SK;
    h.length = total as u32;
    h.emit(&mut mobiked_control::ike::wire::header::Packet::new_unchecked(&mut msg[..]));
    msg.extend_from_slice(&[PayloadType::IDI.0, 0]);
    msg.extend_from_slice(&((total - HEADER_LEN) as u16).to_be_bytes());
    msg.extend_from_slice(&iv);
    msg.extend_from_slice(&block);
    let icv = Integ::HmacSha2_256_128.compute(&a, &[&msg]);
    msg.extend_from_slice(&icv);
    assert_eq!(
        open_message(&keys, &msg).unwrap_err(),
        CryptoError::SkPadding
    );
}

/// Opens a GCM SK message with RustCrypto's AES-GCM, independently of ring.
fn open_with_aes_gcm(encr: Encr, sk_e: &[u8], msg: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let (key, salt) = sk_e.split_at(sk_e.len() - 4);
    let iv_at = HEADER_LEN + 4;
    let nonce = [salt, &msg[iv_at..iv_at + 8]].concat();
    let payload = Payload {
        msg: &msg[iv_at + 8..],
        aad: &msg[..iv_at],
    };
    let nonce = aes_gcm::Nonce::from_slice(&nonce);
    match encr {
        Encr::AesGcm16_128 => aes_gcm::Aes128Gcm::new_from_slice(key)
            .unwrap()
            .decrypt(nonce, payload),
        Encr::AesGcm16_256 => aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .decrypt(nonce, payload),
        _ => unreachable!(),
    }
    .expect("aes-gcm refused our SK payload")
}

/// Builds a GCM SK message with RustCrypto's AES-GCM.
fn seal_with_aes_gcm(encr: Encr, sk_e: &[u8], iv: [u8; 8], plaintext: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let (key, salt) = sk_e.split_at(sk_e.len() - 4);
    // Plaintext, no padding, pad length 0 (RFC 5282 3).
    let inner = [plaintext, &[0]].concat();
    let sk_len = 4 + 8 + inner.len() + 16;
    let mut msg = vec![0u8; HEADER_LEN];
    let mut h = header();
    h.next_payload = PayloadType::SK;
    h.length = (HEADER_LEN + sk_len) as u32;
    h.emit(&mut mobiked_control::ike::wire::header::Packet::new_unchecked(&mut msg[..]));
    msg.extend_from_slice(&[PayloadType::IDR.0, 0]);
    msg.extend_from_slice(&(sk_len as u16).to_be_bytes());
    let nonce = [salt, &iv].concat();
    let nonce = aes_gcm::Nonce::from_slice(&nonce);
    let payload = Payload {
        msg: &inner,
        aad: &msg,
    };
    let ct = match encr {
        Encr::AesGcm16_128 => aes_gcm::Aes128Gcm::new_from_slice(key)
            .unwrap()
            .encrypt(nonce, payload),
        Encr::AesGcm16_256 => aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .encrypt(nonce, payload),
        _ => unreachable!(),
    }
    .unwrap();
    msg.extend_from_slice(&iv);
    msg.extend_from_slice(&ct);
    msg
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sk_gcm_agrees_with_rustcrypto(
        plaintext in proptest::collection::vec(any::<u8>(), 0..600),
        seed in any::<u64>(),
        wide in any::<bool>(),
        iv in any::<[u8; 8]>(),
    ) {
        let encr = if wide { Encr::AesGcm16_256 } else { Encr::AesGcm16_128 };
        let mut r = SeededRandom::new(seed);
        let mut sk_e = vec![0u8; encr.keymat_len()];
        r.fill(&mut sk_e);
        let keys = SkKeys::new(encr, None, &sk_e, &[]).unwrap();
        // Ours -> RustCrypto.
        let msg = seal_message(&keys, &mut r, &header(), PayloadType::IDI, &plaintext).unwrap();
        let inner = open_with_aes_gcm(encr, &sk_e, &msg);
        prop_assert_eq!(&inner[..inner.len() - 1], &plaintext[..]);
        prop_assert_eq!(inner[inner.len() - 1], 0);
        // RustCrypto -> ours.
        let theirs = seal_with_aes_gcm(encr, &sk_e, iv, &plaintext);
        let o = open_message(&keys, &theirs).unwrap();
        prop_assert_eq!(o.plaintext, plaintext);
        prop_assert_eq!(o.first_inner, PayloadType::IDR);
    }

    #[test]
    fn sk_open_never_panics_on_random_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        suite in 0usize..8,
        fix_header in any::<bool>(),
    ) {
        let (encr, integ) = sk_suites()[suite];
        let (_, _, keys) = keys_for(encr, integ, 6);
        let mut b = bytes;
        if fix_header && b.len() >= HEADER_LEN + 4 {
            // Make the framing plausible so the walk reaches the crypto.
            b[16] = PayloadType::SK.0;
            b[17] = 0x20;
            let len = b.len() as u32;
            b[24..28].copy_from_slice(&len.to_be_bytes());
            let sk = (b.len() - HEADER_LEN) as u16;
            b[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&sk.to_be_bytes());
        }
        prop_assert!(open_message(&keys, &b).is_err());
    }

    #[test]
    fn sk_open_refuses_every_mutation(
        plaintext in proptest::collection::vec(any::<u8>(), 0..100),
        suite in 0usize..8,
        edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let (encr, integ) = sk_suites()[suite];
        let (_, _, keys) = keys_for(encr, integ, 7);
        let mut rng = SeededRandom::new(1);
        let mut m = seal_message(&keys, &mut rng, &header(), PayloadType::IDI, &plaintext).unwrap();
        for (at, x) in edits {
            let i = at % m.len();
            m[i] ^= x;
        }
        if let Some(c) = cut {
            m.truncate(c % (m.len() + 1));
        }
        prop_assert!(open_message(&keys, &m).is_err());
    }
}

// ---------------------------------------------------------------------------
// Key derivation (RFC 7296 2.14, 2.15, 2.17, 2.18)
// ---------------------------------------------------------------------------

fn suites() -> Vec<IkeSuite> {
    let mut v = Vec::new();
    for (encr, integ) in sk_suites() {
        for prf in Prf::ALL {
            v.push(IkeSuite {
                encr,
                integ,
                prf,
                dh: DhGroup::Curve25519,
            });
        }
    }
    v
}

#[test]
fn ike_keys_are_prf_plus_of_skeyseed_split_in_order() {
    let ni = hex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    let nr = hex("b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8");
    let g_ir = [0x42u8; 32];
    let (spi_i, spi_r) = (0x0011223344556677u64, 0x8899aabbccddeeffu64);
    for s in suites() {
        let k = IkeKeys::derive(&s, &g_ir, &ni, &nr, spi_i, spi_r).unwrap();
        // SKEYSEED = prf(Ni | Nr, g^ir).
        let seed = s.prf.compute(&[&ni[..], &nr[..]].concat(), &[&g_ir]);
        assert_eq!(skeyseed(s.prf, &ni, &nr, &g_ir), seed);
        let p = s.prf.out_len();
        let a = s.integ.map_or(0, |i| i.key_len());
        let e = s.encr.keymat_len();
        let stream = prf_plus_by_hand(
            s.prf,
            &seed,
            &[&ni[..], &nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat(),
            3 * p + 2 * a + 2 * e,
        );
        let mut at = 0;
        for (name, got, n) in [
            ("sk_d", &k.sk_d[..], p),
            ("sk_ai", k.sk_ai(), a),
            ("sk_ar", k.sk_ar(), a),
            ("sk_ei", k.sk_ei(), e),
            ("sk_er", k.sk_er(), e),
            ("sk_pi", k.sk_pi(), p),
            ("sk_pr", k.sk_pr(), p),
        ] {
            assert_eq!(got, &stream[at..at + n], "{s:?} {name}");
            at += n;
        }
        // The debug form shows no key.
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&format!("{:?}", k.sk_d)), "{dbg}");
    }
}

#[test]
fn ike_rekey_uses_the_old_prf_and_sk_d() {
    let ni = [1u8; 32];
    let nr = [2u8; 32];
    let g_ir = [3u8; 48];
    let old_sk_d = [4u8; 64];
    let new = IkeSuite {
        encr: Encr::AesGcm16_256,
        integ: None,
        prf: Prf::HmacSha2_256,
        dh: DhGroup::Ecp384,
    };
    let k =
        IkeKeys::derive_rekey(&new, Prf::HmacSha2_512, &old_sk_d, &g_ir, &ni, &nr, 5, 6).unwrap();
    // SKEYSEED = prf_old(SK_d_old, g^ir (new) | Ni | Nr), then the new suite's prf+.
    let seed = Prf::HmacSha2_512.compute(&old_sk_d, &[&[&g_ir[..], &ni, &nr].concat()]);
    assert_eq!(seed.len(), 64);
    let stream = prf_plus_by_hand(
        Prf::HmacSha2_256,
        &seed,
        &[&ni[..], &nr, &5u64.to_be_bytes(), &6u64.to_be_bytes()].concat(),
        32,
    );
    assert_eq!(k.sk_d, stream);
    assert_eq!(k.sk_ei().len(), 36);
    assert!(k.sk_ai().is_empty() && k.sk_ar().is_empty());
}

/// What an established IKE SA keeps of its keys: SK_d alone; the SK keys made
/// before still work (they hold their own SK_e and SK_a).
#[test]
fn forgetting_keeps_sk_d_alone() {
    let mut rng = SeededRandom::new(11);
    for s in suites() {
        let mut k = IkeKeys::derive(&s, &[9; 32], &[1; 16], &[2; 16], 1, 2).unwrap();
        let sk_d = k.sk_d.clone();
        let (i_out, _) = k.initiator_sk(&s).unwrap();
        let (_, r_in) = k.responder_sk(&s).unwrap();
        assert!(!k.sk_pi().is_empty() && !k.sk_er().is_empty());
        k.forget_all_but_sk_d();
        assert_eq!(k.sk_d, sk_d);
        for part in [
            k.sk_ai(),
            k.sk_ar(),
            k.sk_ei(),
            k.sk_er(),
            k.sk_pi(),
            k.sk_pr(),
        ] {
            assert!(part.is_empty(), "{s:?}");
        }
        let req = seal_message(&i_out, &mut rng, &header(), PayloadType::IDI, b"later").unwrap();
        assert_eq!(open_message(&r_in, &req).unwrap().plaintext, b"later");
    }
}

#[test]
fn initiator_and_responder_sk_keys_pair_up() {
    let mut rng = SeededRandom::new(10);
    for s in suites() {
        let k = IkeKeys::derive(&s, &[9; 32], &[1; 16], &[2; 16], 1, 2).unwrap();
        let (i_out, i_in) = k.initiator_sk(&s).unwrap();
        let (r_out, r_in) = k.responder_sk(&s).unwrap();
        let req = seal_message(&i_out, &mut rng, &header(), PayloadType::IDI, b"request").unwrap();
        assert_eq!(open_message(&r_in, &req).unwrap().plaintext, b"request");
        let resp = seal_message(&r_out, &mut rng, &header(), PayloadType::IDR, b"reply").unwrap();
        assert_eq!(open_message(&i_in, &resp).unwrap().plaintext, b"reply");
        // Each direction has its own keys.
        assert_eq!(
            open_message(&i_in, &req).unwrap_err(),
            CryptoError::SkIntegrity
        );
        // The initiator's outbound keys are SK_ei/SK_ai.
        let direct = SkKeys::new(s.encr, s.integ, k.sk_ei(), k.sk_ai()).unwrap();
        assert_eq!(open_message(&direct, &req).unwrap().plaintext, b"request");
    }
}

#[test]
fn child_keys_initiator_to_responder_first() {
    let sk_d = [0x5au8; 48];
    let ni = [1u8; 32];
    let nr = [2u8; 32];
    let g = [3u8; 32];
    for cipher in shared::sa::EspCipher::ALL {
        for pfs in [None, Some(&g[..])] {
            let suite = EspSuite {
                cipher,
                esn: false,
                dh: pfs.map(|_| DhGroup::Curve25519),
            };
            let c = ChildKeys::derive(&suite, Prf::HmacSha2_384, &sk_d, pfs, &ni, &nr).unwrap();
            let n = cipher.keymat_len();
            // AEAD: key || 4-octet salt; CBC: encryption key || integrity key.
            assert_eq!(
                n,
                cipher.key_len()
                    + if cipher.is_aead() {
                        4
                    } else {
                        cipher.integ_key_len()
                    }
            );
            assert_eq!(c.i_to_r.len(), n);
            assert_eq!(c.r_to_i.len(), n);
            // KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr).
            let seed = [pfs.unwrap_or(&[]), &ni[..], &nr].concat();
            let km = prf_plus_by_hand(Prf::HmacSha2_384, &sk_d, &seed, 2 * n);
            assert_eq!(c.i_to_r, km[..n]);
            assert_eq!(c.r_to_i, km[n..]);
            assert_eq!(
                child_keymat(Prf::HmacSha2_384, &sk_d, pfs, &ni, &nr, 2 * n).unwrap(),
                km
            );
            // What the dataplane takes.
            shared::sa::EspKey::new(cipher, &c.i_to_r).unwrap();
            shared::sa::EspKey::new(cipher, &c.r_to_i).unwrap();
        }
    }
}

#[test]
fn psk_auth_is_the_rfc_7296_2_15_construction() {
    let signed = b"the first message of the exchange, whole";
    let nonce = [0x33u8; 32];
    let sk_p = [0x44u8; 32];
    // ID payload body: type ID_FQDN (2), three reserved octets, data.
    let id_body = [&[2u8, 0, 0, 0][..], b"gw.example"].concat();
    let psk = b"a pre-shared key";
    for prf in Prf::ALL {
        let alg = match prf {
            Prf::HmacSha2_256 => ring::hmac::HMAC_SHA256,
            Prf::HmacSha2_384 => ring::hmac::HMAC_SHA384,
            Prf::HmacSha2_512 => ring::hmac::HMAC_SHA512,
        };
        let mac = |k: &[u8], d: &[u8]| ring::hmac::sign(&ring::hmac::Key::new(alg, k), d);
        let maced_id = mac(&sk_p, &id_body);
        let pad = mac(psk, b"Key Pad for IKEv2");
        let octets = [&signed[..], &nonce, maced_id.as_ref()].concat();
        let want = mac(pad.as_ref(), &octets);
        assert_eq!(
            psk_auth(prf, psk, signed, &nonce, &sk_p, &id_body),
            want.as_ref(),
            "{prf:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Real strongSwan exchanges (control/tests/data/strongswan/*.kat)
// ---------------------------------------------------------------------------

fn kat_prf(v: &str) -> Prf {
    Prf::ALL
        .into_iter()
        .find(|p| {
            p.name() == v || p.name().trim_start_matches("prf") == v || p.id().0.to_string() == v
        })
        .unwrap_or_else(|| panic!("unknown prf {v}"))
}

fn kat_encr(v: &str) -> Encr {
    Encr::ALL
        .into_iter()
        .find(|e| e.name() == v)
        .unwrap_or_else(|| panic!("unknown encr {v}"))
}

fn kat_integ(v: &str) -> Option<Integ> {
    if v.is_empty() || v == "none" || v == "-" {
        return None;
    }
    Some(
        Integ::ALL
            .into_iter()
            .find(|i| i.name() == v || i.id().0.to_string() == v)
            .unwrap_or_else(|| panic!("unknown integ {v}")),
    )
}

fn kat_dh(v: &str) -> DhGroup {
    DhGroup::ALL
        .into_iter()
        .find(|g| {
            g.name() == v
                || g.number().to_string() == v
                || (v == "curve25519" && *g == DhGroup::Curve25519)
        })
        .unwrap_or_else(|| panic!("unknown dh {v}"))
}

/// The payload bodies of a decrypted chain, by type.
fn inner_body(first: PayloadType, plaintext: &[u8], ty: PayloadType) -> Vec<u8> {
    mobiked_control::ike::wire::PayloadIter::new(first, plaintext)
        .map(|r| r.unwrap())
        .find(|r| r.ty == ty)
        .unwrap_or_else(|| panic!("no payload {ty:?}"))
        .body
        .to_vec()
}

/// Recomputes SKEYSEED and SK_* of one exchange from g^ir, the nonces and the SPIs,
/// opens both IKE_AUTH messages with them, and checks both PSK AUTH payloads.
fn check_kat(f: &std::path::Path) {
    let text = std::fs::read_to_string(f).unwrap();
    let kv: std::collections::HashMap<String, String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.split_once(['=', ':']).or_else(|| l.split_once(' '))?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let get = |k: &str| {
        kv.get(k)
            .unwrap_or_else(|| panic!("{f:?}: no {k}"))
            .as_str()
    };
    let b = |k: &str| hex(get(k).trim_start_matches("0x"));
    let spi = |k: &str| u64::from_str_radix(get(k).trim_start_matches("0x"), 16).unwrap();
    let suite = IkeSuite {
        encr: kat_encr(get("encr")),
        integ: kat_integ(kv.get("integ").map_or("", |s| s.as_str())),
        prf: kat_prf(get("prf")),
        dh: kat_dh(get("dh")),
    };
    let (ni, nr, g_ir) = (b("ni"), b("nr"), b("g_ir"));
    assert_eq!(skeyseed(suite.prf, &ni, &nr, &g_ir), b("skeyseed"), "{f:?}");
    let k = IkeKeys::derive(&suite, &g_ir, &ni, &nr, spi("spi_i"), spi("spi_r")).unwrap();
    for (name, got) in [
        ("sk_d", &k.sk_d[..]),
        ("sk_ai", k.sk_ai()),
        ("sk_ar", k.sk_ar()),
        ("sk_ei", k.sk_ei()),
        ("sk_er", k.sk_er()),
        ("sk_pi", k.sk_pi()),
        ("sk_pr", k.sk_pr()),
    ] {
        if kv.contains_key(name) {
            assert_eq!(got, &b(name)[..], "{f:?} {name}");
        }
    }
    // The responder opens the request with the initiator's keys, and back.
    let (_, r_in) = k.responder_sk(&suite).unwrap();
    let (_, i_in) = k.initiator_sk(&suite).unwrap();
    let req = open_message(&r_in, &b("auth_req")).unwrap();
    let resp = open_message(&i_in, &b("auth_resp")).unwrap();
    assert_eq!(req.header.exchange_type, ExchangeType::IKE_AUTH);
    assert_eq!(resp.header.exchange_type, ExchangeType::IKE_AUTH);
    // RFC 7296 2.15: the initiator signs its IKE_SA_INIT request, Nr and
    // prf(SK_pi, IDi'); the responder its response, Ni and prf(SK_pr, IDr').
    if let Some(psk) = kv.get("psk") {
        let psk = hex(psk.trim_start_matches("0x"));
        for (o, signed, nonce, sk_p, id_ty) in [
            (&req, b("init_req"), &nr, k.sk_pi(), PayloadType::IDI),
            (&resp, b("init_resp"), &ni, k.sk_pr(), PayloadType::IDR),
        ] {
            let id = inner_body(o.first_inner, &o.plaintext, id_ty);
            let auth = inner_body(o.first_inner, &o.plaintext, PayloadType::AUTH);
            assert_eq!(auth[0], 2, "{f:?}: not Shared Key MIC");
            let want = psk_auth(suite.prf, &psk, &signed, nonce, sk_p, &id);
            assert_eq!(auth[4..], want[..], "{f:?} {id_ty:?} AUTH");
        }
    }
}

fn kat_files(dir: &str, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kat"))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    files.sort();
    files
}

/// Exchanges computed by gen_kat.py with Python's hmac and pyca/cryptography.
#[test]
fn python_exchanges_rederive_open_and_authenticate() {
    let dir = format!("{}/tests/data/crypto", env!("CARGO_MANIFEST_DIR"));
    let files = kat_files(&dir, "python-");
    assert_eq!(files.len(), 4);
    for f in files {
        check_kat(&f);
    }
}

/// Real strongSwan exchanges (captured by scripts/lib/kat-capture.sh): our key
/// schedule, SK opening and PSK AUTH against what charon logged and sent. Fails if
/// the captures are missing.
#[test]
fn strongswan_captures_rederive_open_and_authenticate() {
    let dir = format!("{}/tests/data/strongswan", env!("CARGO_MANIFEST_DIR"));
    let files = kat_files(&dir, "");
    assert!(!files.is_empty(), "no .kat files in {dir}");
    for f in files {
        check_kat(&f);
    }
}
