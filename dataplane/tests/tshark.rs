//! Wireshark's ESP dissector as an independent implementation: packets from the traffic
//! generator, sealed by `esp::encap` (AES-GCM-128 and -256, RFC 4106; AES-CBC-128 and -256
//! with HMAC-SHA-256-128, -384-192 and -512-256, RFC 3602 and RFC 4868; ChaCha20-Poly1305,
//! RFC 7634, where the installed dissector knows it), captured by the pcap middleware on
//! datagram (UDP 4500, RFC 3948), IP and Ethernet ports (plain ESP), must decrypt in
//! tshark with our keys, with the ICV verified, to the generator's inner UDP packets. A
//! control run with a wrong key decrypts nothing.
//!
//! Skipped, loudly, when tshark is not installed (CI as root installs it).

use mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::esp;
use dataplane::io::mem::pair;
use dataplane::io::pcap::Pcap;
use dataplane::io::traffic::{GenConfig, TrafficGen, MAGIC};
use dataplane::io::{BurstIo, Layer};
use dataplane::ip::{inner_info, push_outer};
use shared::path::{Encap, PathSpec, L2};
use shared::sa::{EspCipher, EspInteg, EspKey};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

const SPI: u32 = 0x0000_1001;
const PACKETS: u64 = 5;

fn tshark_installed() -> bool {
    match Command::new("tshark").arg("-v").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            eprintln!(
                "\n*** SKIPPED: tshark is not installed, so ESP output was NOT checked against \
                 Wireshark's decoder (apt-get install tshark) ***\n"
            );
            false
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn keymat(cipher: EspCipher) -> Vec<u8> {
    // AEAD: key || 4-byte salt, as `ip xfrm` and the UAT take it; CBC: encryption key ||
    // integrity key, which the UAT takes as two fields.
    (0..cipher.keymat_len() as u8)
        .map(|i| i.wrapping_mul(13).wrapping_add(1))
        .collect()
}

struct Case {
    name: &'static str,
    layer: Layer,
    cipher: EspCipher,
    outer_src: SocketAddr,
    outer_dst: SocketAddr,
    inner_src: SocketAddr,
    inner_dst: SocketAddr,
}

/// Generates, encrypts and captures the case's packets; returns the capture's path.
fn capture(case: &Case) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "mobiked-tshark-{}-{}.pcap",
        std::process::id(),
        case.name
    ));
    let key = EspKey::new(case.cipher, &keymat(case.cipher)).unwrap();
    let mut cfg = GenConfig::new(case.inner_src, case.inner_dst);
    cfg.count = Some(PACKETS);
    cfg.size = dataplane::io::traffic::PacketSize::Fixed(200);
    let mut gen = TrafficGen::new(cfg);
    let mut bufs = PacketBuf::alloc(PACKETS as usize);
    assert_eq!(gen.rx_burst(&mut bufs).unwrap(), PACKETS as usize);

    let spec = PathSpec {
        local: case.outer_src,
        remote: case.outer_dst,
        encap: if case.layer == Layer::Datagram {
            Encap::Udp
        } else {
            Encap::Esp
        },
        l2: Some(L2 {
            src_mac: [0x02, 0, 0, 0, 0, 1],
            dst_mac: [0x02, 0, 0, 0, 0, 2],
        }),
        keepalive_ms: 0,
    };
    for (i, buf) in bufs.iter_mut().enumerate() {
        let nh = inner_info(buf.data()).unwrap().next_header;
        esp::encap(&key, SPI, i as u64 + 1, false, nh, buf).unwrap();
        match case.layer {
            Layer::Datagram => {
                buf.meta.src = case.outer_src;
                buf.meta.dst = case.outer_dst;
            }
            Layer::Ip => push_outer(buf, &spec, false).unwrap(),
            Layer::Ethernet => push_outer(buf, &spec, true).unwrap(),
        }
    }
    let (a, _b) = pair(16, case.layer);
    let mut port = Pcap::new(a, &path).unwrap();
    assert_eq!(port.tx_burst(&mut bufs).unwrap(), PACKETS as usize);
    port.flush().unwrap();
    path
}

/// The esp_sa table's last four fields for `cipher`: encryption algorithm, encryption key
/// (with the salt for the AEAD transforms), authentication algorithm, authentication key.
fn uat_algorithms(cipher: EspCipher, keymat: &[u8]) -> String {
    let (encryption, auth) = match cipher {
        EspCipher::AesGcm16_128 | EspCipher::AesGcm16_256 => {
            ("AES-GCM with 16 octet ICV [RFC4106]", "NULL")
        }
        EspCipher::ChaCha20Poly1305 => (CHACHA_UAT, "NULL"),
        EspCipher::AesCbc128(i) | EspCipher::AesCbc256(i) => (
            "AES-CBC [RFC3602]",
            match i {
                EspInteg::HmacSha256_128 => "HMAC-SHA-256-128 [RFC4868]",
                EspInteg::HmacSha384_192 => "HMAC-SHA-384-192 [RFC4868]",
                EspInteg::HmacSha512_256 => "HMAC-SHA-512-256 [RFC4868]",
            },
        ),
    };
    let split = cipher.key_len() + cipher.salt_len();
    let (enc_key, auth_key) = keymat.split_at(split.min(keymat.len()));
    let auth_key = if auth_key.is_empty() {
        String::new()
    } else {
        format!("0x{}", hex(auth_key))
    };
    format!(
        "\"{encryption}\",\"0x{}\",\"{auth}\",\"{auth_key}\"",
        hex(enc_key)
    )
}

/// The dissector's name for RFC 7634 (Wireshark 4.2 and later; 4.0 has none).
const CHACHA_UAT: &str = "ChaCha20 with Poly1305 [RFC7634]";

/// Whether the installed tshark's ESP table accepts `cipher`; says so loudly if not.
fn tshark_supports(cipher: EspCipher) -> bool {
    let probe = format!(
        "uat:esp_sa:\"IPv4\",\"127.0.0.1\",\"127.0.0.2\",\"0x00000001\",{}",
        uat_algorithms(cipher, &keymat(cipher))
    );
    let out = Command::new("tshark")
        .args(["-n", "-r", "/dev/null", "-o", &probe])
        .output()
        .expect("running tshark");
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("invalid value") {
        eprintln!(
            "\n*** SKIPPED: this tshark's ESP dissector does not know {} ({}), so those \
             packets were NOT checked against Wireshark's decoder ***\n",
            cipher.name(),
            err.lines().last().unwrap_or_default()
        );
        return false;
    }
    true
}

/// Runs tshark with the SA in its ESP table; returns one line per packet:
/// `icv_good|inner src|inner dst|inner sport|inner dport|inner UDP payload`.
fn decode(path: &Path, case: &Case, keymat: &[u8]) -> Vec<String> {
    let family = if case.outer_src.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    };
    let sa = format!(
        "uat:esp_sa:\"{family}\",\"{}\",\"{}\",\"0x{SPI:08x}\",{}",
        case.outer_src.ip(),
        case.outer_dst.ip(),
        uat_algorithms(case.cipher, keymat)
    );
    let (ip_src, ip_dst) = if case.inner_src.is_ipv4() {
        ("ip.src", "ip.dst")
    } else {
        ("ipv6.src", "ipv6.dst")
    };
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(path)
        .args(["-o", "esp.enable_encryption_decode:TRUE"])
        .args(["-o", "esp.enable_authentication_check:TRUE"])
        .args(["-o", &sa])
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=l"])
        .args(["-e", "esp.icv_good", "-e", ip_src, "-e", ip_dst])
        .args([
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "udp.payload",
        ])
        .output()
        .expect("running tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn check(case: Case) {
    if !tshark_installed() || !tshark_supports(case.cipher) {
        return;
    }
    let path = capture(&case);
    let lines = decode(&path, &case, &keymat(case.cipher));
    assert_eq!(lines.len(), PACKETS as usize, "{}: {lines:?}", case.name);
    let magic = hex(&MAGIC.to_be_bytes());
    for (i, line) in lines.iter().enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 6, "{}: {line}", case.name);
        assert!(
            f[0] == "1" || f[0] == "True",
            "{}: ICV not verified: {line}",
            case.name
        );
        assert_eq!(
            f[1],
            case.inner_src.ip().to_string(),
            "{}: {line}",
            case.name
        );
        assert_eq!(
            f[2],
            case.inner_dst.ip().to_string(),
            "{}: {line}",
            case.name
        );
        assert_eq!(
            f[3],
            case.inner_src.port().to_string(),
            "{}: {line}",
            case.name
        );
        assert_eq!(
            f[4],
            case.inner_dst.port().to_string(),
            "{}: {line}",
            case.name
        );
        let payload = f[5].replace(':', "");
        // magic | flow 0 | sequence number.
        let head = format!("{magic}00000000{:016x}", i);
        assert!(
            payload.starts_with(&head),
            "{}: inner payload {payload} does not start with {head}",
            case.name
        );
    }
    // Control: with a wrong key nothing decrypts or verifies, so the check above can fail.
    // The first byte is in the encryption key; for CBC, the last is in the integrity key.
    let mut wrong = keymat(case.cipher);
    wrong[0] ^= 1;
    let last = wrong.len() - 1;
    wrong[last] ^= 1;
    let lines = decode(&path, &case, &wrong);
    assert_eq!(lines.len(), PACKETS as usize);
    for line in &lines {
        let f: Vec<&str> = line.split('|').collect();
        assert!(
            f[0] != "1" && f[0] != "True" && !line.contains(&case.inner_src.ip().to_string()),
            "{}: decrypted with a wrong key: {line}",
            case.name
        );
    }
    let _ = std::fs::remove_file(&path);
}

fn v4(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn udp_4500_aes_gcm_128() {
    check(Case {
        name: "dg-gcm128",
        layer: Layer::Datagram,
        cipher: EspCipher::AesGcm16_128,
        outer_src: v4("127.0.0.1:4500"),
        outer_dst: v4("127.0.0.2:4500"),
        inner_src: v4("10.1.0.1:5001"),
        inner_dst: v4("10.2.0.1:5002"),
    });
}

#[test]
fn udp_4500_aes_gcm_256() {
    check(Case {
        name: "dg-gcm256",
        layer: Layer::Datagram,
        cipher: EspCipher::AesGcm16_256,
        outer_src: v4("127.0.0.1:4500"),
        outer_dst: v4("127.0.0.2:4500"),
        inner_src: v4("10.1.0.1:5001"),
        inner_dst: v4("10.2.0.1:5002"),
    });
}

#[test]
fn udp_4500_ipv6_outer_and_inner() {
    check(Case {
        name: "dg6-gcm128",
        layer: Layer::Datagram,
        cipher: EspCipher::AesGcm16_128,
        outer_src: v4("[fd00::1]:4500"),
        outer_dst: v4("[fd00::2]:4500"),
        inner_src: v4("[fd01::1]:5001"),
        inner_dst: v4("[fd02::1]:5002"),
    });
}

#[test]
fn plain_esp_on_ip_port_aes_gcm_256() {
    check(Case {
        name: "ip-gcm256",
        layer: Layer::Ip,
        cipher: EspCipher::AesGcm16_256,
        outer_src: v4("127.0.0.1:0"),
        outer_dst: v4("127.0.0.2:0"),
        inner_src: v4("10.1.0.1:5001"),
        inner_dst: v4("10.2.0.1:5002"),
    });
}

#[test]
fn plain_esp_on_ethernet_port_aes_gcm_128() {
    check(Case {
        name: "eth-gcm128",
        layer: Layer::Ethernet,
        cipher: EspCipher::AesGcm16_128,
        outer_src: v4("127.0.0.1:0"),
        outer_dst: v4("127.0.0.2:0"),
        inner_src: v4("10.1.0.1:5001"),
        inner_dst: v4("10.2.0.1:5002"),
    });
}

fn udp_4500(name: &'static str, cipher: EspCipher) -> Case {
    Case {
        name,
        layer: Layer::Datagram,
        cipher,
        outer_src: v4("127.0.0.1:4500"),
        outer_dst: v4("127.0.0.2:4500"),
        inner_src: v4("10.1.0.1:5001"),
        inner_dst: v4("10.2.0.1:5002"),
    }
}

#[test]
fn udp_4500_aes_cbc_128_hmac_sha256() {
    check(udp_4500(
        "dg-aes128-sha256",
        EspCipher::AesCbc128(EspInteg::HmacSha256_128),
    ));
}

#[test]
fn udp_4500_aes_cbc_128_hmac_sha384() {
    check(udp_4500(
        "dg-aes128-sha384",
        EspCipher::AesCbc128(EspInteg::HmacSha384_192),
    ));
}

#[test]
fn udp_4500_aes_cbc_128_hmac_sha512() {
    check(udp_4500(
        "dg-aes128-sha512",
        EspCipher::AesCbc128(EspInteg::HmacSha512_256),
    ));
}

#[test]
fn udp_4500_aes_cbc_256_hmac_sha256() {
    check(udp_4500(
        "dg-aes256-sha256",
        EspCipher::AesCbc256(EspInteg::HmacSha256_128),
    ));
}

#[test]
fn udp_4500_aes_cbc_256_hmac_sha384() {
    check(udp_4500(
        "dg-aes256-sha384",
        EspCipher::AesCbc256(EspInteg::HmacSha384_192),
    ));
}

#[test]
fn udp_4500_aes_cbc_256_hmac_sha512() {
    check(udp_4500(
        "dg-aes256-sha512",
        EspCipher::AesCbc256(EspInteg::HmacSha512_256),
    ));
}

#[test]
fn plain_esp_on_ethernet_port_aes_cbc_256_hmac_sha384_ipv6() {
    check(Case {
        name: "eth6-aes256-sha384",
        layer: Layer::Ethernet,
        cipher: EspCipher::AesCbc256(EspInteg::HmacSha384_192),
        outer_src: v4("[fd00::1]:0"),
        outer_dst: v4("[fd00::2]:0"),
        inner_src: v4("[fd01::1]:5001"),
        inner_dst: v4("[fd02::1]:5002"),
    });
}

#[test]
fn udp_4500_chacha20_poly1305() {
    check(udp_4500("dg-chacha20poly1305", EspCipher::ChaCha20Poly1305));
}
