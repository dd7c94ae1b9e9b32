//! The pcap middleware: file format read back by an independent reader here and, when
//! installed, by tshark.

use mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::io::mem::pair;
use dataplane::io::pcap::{Pcap, LINKTYPE_ETHERNET, LINKTYPE_RAW, MAGIC_NANOS};
use dataplane::io::{BurstIo, Layer};
use dataplane::ip::{checksum, parse_outer, udp_checksum};
use shared::path::Encap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

struct Capture {
    magic: u32,
    linktype: u32,
    records: Vec<Record>,
}

struct Record {
    ts_ns: u64,
    orig_len: u32,
    data: Vec<u8>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// A classic-pcap reader written from the format description, for little-endian files.
fn read_pcap(path: &Path) -> Capture {
    let b = std::fs::read(path).unwrap();
    assert!(b.len() >= 24, "no file header");
    let magic = le32(&b, 0);
    assert_eq!(u16::from_le_bytes([b[4], b[5]]), 2, "major version");
    assert_eq!(u16::from_le_bytes([b[6], b[7]]), 4, "minor version");
    let linktype = le32(&b, 20);
    let mut records = Vec::new();
    let mut at = 24;
    while at < b.len() {
        assert!(at + 16 <= b.len(), "truncated record header");
        let secs = u64::from(le32(&b, at));
        let frac = u64::from(le32(&b, at + 4));
        let incl = le32(&b, at + 8) as usize;
        let orig_len = le32(&b, at + 12);
        assert!(at + 16 + incl <= b.len(), "truncated record");
        let ts_ns = if magic == MAGIC_NANOS {
            assert!(frac < 1_000_000_000);
            secs * 1_000_000_000 + frac
        } else {
            secs * 1_000_000_000 + frac * 1000
        };
        records.push(Record {
            ts_ns,
            orig_len,
            data: b[at + 16..at + 16 + incl].to_vec(),
        });
        at += 16 + incl;
    }
    Capture {
        magic,
        linktype,
        records,
    }
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mobiked-iopcap-{}-{name}.pcap", std::process::id()))
}

fn frame(i: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| i.wrapping_mul(31).wrapping_add(k as u8))
        .collect()
}

/// Counts the packets tshark decodes, optionally through a display filter. None if tshark is
/// not installed.
fn tshark_count(path: &Path, filter: Option<&str>) -> Option<usize> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(path);
    if let Some(f) = filter {
        cmd.arg("-Y").arg(f);
    }
    cmd.args(["-T", "fields", "-e", "frame.number"]);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "SKIPPED: tshark is not installed; the pcap was checked by the local reader only"
            );
            return None;
        }
        Err(e) => panic!("running tshark: {e}"),
    };
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).lines().count())
}

#[test]
fn ethernet_tx_and_rx_recorded_in_order() {
    let path = tmp("eth");
    let (a, mut b) = pair(16, Layer::Ethernet);
    let before = wall_ns();
    let mut a = Pcap::new(a, &path).unwrap();
    assert_eq!(a.name(), "pcap:mem:a");
    assert_eq!(a.layer(), Layer::Ethernet);

    let sent: Vec<Vec<u8>> = (0..3)
        .map(|i| frame(i, 60 + usize::from(i) * 100))
        .collect();
    let mut bufs = PacketBuf::alloc(3);
    for (buf, f) in bufs.iter_mut().zip(&sent) {
        assert!(buf.fill(f));
    }
    assert_eq!(a.tx_burst(&mut bufs).unwrap(), 3);

    let back: Vec<Vec<u8>> = (10..12).map(|i| frame(i, 1514)).collect();
    for (buf, f) in bufs.iter_mut().zip(&back) {
        buf.reset();
        assert!(buf.fill(f));
    }
    assert_eq!(b.tx_burst(&mut bufs[..2]).unwrap(), 2);
    let mut rx = PacketBuf::alloc(4);
    assert_eq!(a.rx_burst(&mut rx).unwrap(), 2);
    assert_eq!(a.packets(), 5);
    a.flush().unwrap();
    let after = wall_ns();

    let cap = read_pcap(&path);
    assert_eq!(cap.magic, MAGIC_NANOS);
    assert_eq!(cap.linktype, LINKTYPE_ETHERNET);
    assert_eq!(cap.records.len(), 5);
    for (r, f) in cap.records.iter().zip(sent.iter().chain(&back)) {
        assert_eq!(&r.data, f);
        assert_eq!(r.orig_len as usize, f.len());
        assert!(
            r.ts_ns >= before && r.ts_ns <= after,
            "timestamp out of range"
        );
    }
    if let Some(n) = tshark_count(&path, Some("eth")) {
        assert_eq!(n, 5);
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn untaken_packets_are_not_recorded() {
    let path = tmp("full");
    let (a, _b) = pair(4, Layer::Ip);
    let mut a = Pcap::with_buffer(a, &path, 0).unwrap();
    let mut bufs = PacketBuf::alloc(6);
    for (i, buf) in bufs.iter_mut().enumerate() {
        let mut p = frame(i as u8, 40);
        p[0] = 0x45; // looks like IPv4 to decoders; content is otherwise arbitrary
        assert!(buf.fill(&p));
    }
    assert_eq!(a.tx_burst(&mut bufs).unwrap(), 4);
    assert_eq!(a.tx_burst(&mut bufs[4..]).unwrap(), 0);
    assert_eq!(a.packets(), 4);
    drop(a); // flushes
    let cap = read_pcap(&path);
    assert_eq!(cap.linktype, LINKTYPE_RAW);
    assert_eq!(cap.records.len(), 4);
    for (i, r) in cap.records.iter().enumerate() {
        assert_eq!(r.data[1..], frame(i as u8, 40)[1..]);
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn many_bursts_through_a_small_buffer() {
    // The buffer is written out many times; nothing is lost or reordered at the seams.
    let path = tmp("many");
    let (a, mut b) = pair(64, Layer::Ip);
    let mut a = Pcap::with_buffer(a, &path, 0).unwrap();
    let mut bufs = PacketBuf::alloc(64);
    let mut rx = PacketBuf::alloc(64);
    let mut n = 0u32;
    for _ in 0..40 {
        for buf in bufs.iter_mut() {
            buf.reset();
            let mut p = vec![0x60u8; 1400];
            p[4..8].copy_from_slice(&n.to_be_bytes());
            assert!(buf.fill(&p));
            n += 1;
        }
        assert_eq!(a.tx_burst(&mut bufs).unwrap(), 64);
        assert_eq!(b.rx_burst(&mut rx).unwrap(), 64);
    }
    a.flush().unwrap();
    let cap = read_pcap(&path);
    assert_eq!(cap.records.len(), n as usize);
    for (i, r) in cap.records.iter().enumerate() {
        assert_eq!(r.data.len(), 1400);
        assert_eq!(
            u32::from_be_bytes(r.data[4..8].try_into().unwrap()),
            i as u32
        );
    }
    let _ = std::fs::remove_file(&path);
}

fn datagram_case(name: &str, src: &str, dst: &str) {
    let path = tmp(name);
    let src: SocketAddr = src.parse().unwrap();
    let dst: SocketAddr = dst.parse().unwrap();
    let (a, mut b) = pair(8, Layer::Datagram);
    let mut a = Pcap::new(a, &path).unwrap();
    // An ESP packet as carried on UDP 4500 (RFC 3948 2.2): SPI, sequence, then ciphertext.
    let mut esp = vec![0x00, 0x00, 0x10, 0x01, 0x00, 0x00, 0x00, 0x01];
    esp.extend((0u8..48).map(|i| i.wrapping_mul(7)));
    // Several in one burst: each record's headers are built afresh.
    let mut bufs = PacketBuf::alloc(4);
    for b in bufs.iter_mut() {
        assert!(b.fill(&esp));
        b.meta.src = src;
        b.meta.dst = dst;
    }
    assert_eq!(a.tx_burst(&mut bufs).unwrap(), 4);
    // And one received: Meta says remote (src) -> local (dst).
    bufs[1].reset();
    assert!(bufs[1].fill(&esp[..20]));
    bufs[1].meta.src = dst;
    bufs[1].meta.dst = src;
    assert_eq!(b.tx_burst(&mut bufs[1..2]).unwrap(), 1);
    assert_eq!(a.rx_burst(&mut bufs[..1]).unwrap(), 1);
    a.flush().unwrap();
    assert_eq!((a.packets(), a.skipped()), (5, 0));

    let cap = read_pcap(&path);
    assert_eq!(cap.linktype, LINKTYPE_RAW);
    assert_eq!(cap.records.len(), 5);
    let expect = [(src, dst, &esp[..]); 4]
        .into_iter()
        .chain([(dst, src, &esp[..20])]);
    for (r, (from, to, payload)) in cap.records.iter().zip(expect) {
        let outer = parse_outer(&r.data, Layer::Ip).expect("a valid IP/UDP packet");
        assert_eq!(outer.encap, Encap::Udp);
        assert_eq!(outer.src, from);
        assert_eq!(outer.dst, to);
        assert_eq!(&r.data[outer.payload.clone()], payload);
        let l4 = outer.payload.start - 8;
        if from.is_ipv4() {
            assert_eq!(checksum(&r.data[..20]), 0, "IPv4 header checksum");
        }
        let mut udp = r.data[l4..].to_vec();
        let stored = u16::from_be_bytes([udp[6], udp[7]]);
        udp[6] = 0;
        udp[7] = 0;
        assert_eq!(
            stored,
            udp_checksum(from.ip(), to.ip(), &udp),
            "UDP checksum"
        );
    }
    if let Some(n) = tshark_count(&path, Some("udp.port == 4500 && esp.spi == 0x00001001")) {
        assert_eq!(n, 5);
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn datagram_ipv4_gets_synthetic_headers() {
    datagram_case("dg4", "127.0.0.1:4500", "127.0.0.2:4500");
}

#[test]
fn datagram_ipv6_gets_synthetic_headers() {
    datagram_case("dg6", "[::1]:4500", "[fe80::2]:4500");
}
