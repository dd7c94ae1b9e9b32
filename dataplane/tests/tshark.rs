//! Wireshark's ESP dissector as an independent implementation: packets from the traffic
//! generator, sealed by `esp::encap` (AES-GCM-128 and -256, RFC 4106), captured by the pcap
//! middleware on datagram (UDP 4500, RFC 3948), IP and Ethernet ports (plain ESP), must
//! decrypt in tshark with our keys to the generator's inner UDP packets.
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
use shared::sa::{EspCipher, EspKey};
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
    // Key || 4-byte salt, as `ip xfrm` and the UAT take it.
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

/// Runs tshark with the SA in its ESP table; returns one line per packet:
/// `icv_good|inner src|inner dst|inner sport|inner dport|inner UDP payload`.
fn decode(path: &Path, case: &Case, keymat: &[u8]) -> Vec<String> {
    let family = if case.outer_src.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    };
    let encryption = "AES-GCM with 16 octet ICV [RFC4106]";
    // Field order of the esp_sa table: protocol, source, destination, SPI, encryption,
    // encryption key (key || salt), authentication, authentication key.
    let sa = format!(
        "uat:esp_sa:\"{family}\",\"{}\",\"{}\",\"0x{SPI:08x}\",\"{encryption}\",\"0x{}\",\"NULL\",\"\"",
        case.outer_src.ip(),
        case.outer_dst.ip(),
        hex(keymat)
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
    if !tshark_installed() {
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
    // Control: with a wrong key nothing decrypts, so the check above can fail.
    let mut wrong = keymat(case.cipher);
    wrong[0] ^= 1;
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
