//! ip.rs against byte arrays and against `etherparse` as an independent parser/builder.

use mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::esp::{EncapError, NH_IPV4, NH_IPV6};
use dataplane::io::Layer;
use dataplane::ip::{self, IpError};
use etherparse::{
    Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, PacketBuilder, SingleVlanHeader, UdpHeader,
};
use proptest::prelude::*;
use shared::counters::Counter;
use shared::path::{Encap, PathRecord, PathSpec, L2};
use std::net::{IpAddr, SocketAddr};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A complete IPv4/UDP datagram written out by hand: 192.0.2.1:4500 -> 198.51.100.2:4500,
/// payload "ABCD". Checksums computed on paper (RFC 1071 ones'-complement sums):
/// IP header sum of words 4500+0020+0000+4000+4011+c000+0201+c633+6402 = 0x2b167 ->
/// 0xb169 -> checksum 0x4e96. UDP pseudo-header c000+0201+c633+6402+0011+000c plus
/// 1194+1194+000c+0000+4142+4344 = 0x2940d -> 0x940f -> checksum 0x6bf0.
const HAND_V4: [u8; 32] = [
    0x45, 0x00, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x4e, 0x96, 192, 0, 2, 1, 198, 51,
    100, 2, 0x11, 0x94, 0x11, 0x94, 0x00, 0x0c, 0x6b, 0xf0, b'A', b'B', b'C', b'D',
];

#[test]
fn hand_computed_ipv4_udp_packet() {
    assert_eq!(ip::checksum(&HAND_V4[..20]), 0);
    let mut b = PacketBuf::new();
    ip::build_udp_packet(
        &mut b,
        sa("192.0.2.1:4500"),
        sa("198.51.100.2:4500"),
        4,
        |p| p.copy_from_slice(b"ABCD"),
    )
    .unwrap();
    assert_eq!(b.data(), &HAND_V4);
    let o = ip::parse_outer(b.data(), Layer::Ip).unwrap();
    assert_eq!(o.src, sa("192.0.2.1:4500"));
    assert_eq!(o.dst, sa("198.51.100.2:4500"));
    assert_eq!(o.encap, Encap::Udp);
    assert_eq!(&b.data()[o.payload], b"ABCD");
    let i = ip::inner_info(b.data()).unwrap();
    assert_eq!(i.next_header, NH_IPV4);
    assert_eq!(i.total_len, 32);
    // Oracle agrees on both checksums.
    let (h, rest) = Ipv4Header::from_slice(&HAND_V4).unwrap();
    assert_eq!(h.calc_header_checksum(), 0x4e96);
    let (u, payload) = UdpHeader::from_slice(rest).unwrap();
    assert_eq!(u.calc_checksum_ipv4(&h, payload).unwrap(), 0x6bf0);
}

fn check_v4_udp(pkt: &[u8], src: SocketAddr, dst: SocketAddr, payload: &[u8], udp_sum: bool) {
    let (h, rest) = Ipv4Header::from_slice(pkt).unwrap();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert!(h.dont_fragment);
    assert_eq!(h.time_to_live, 64);
    assert_eq!(h.protocol, IpNumber::UDP);
    assert_eq!(usize::from(h.total_len), pkt.len());
    assert_eq!(IpAddr::from(h.source), src.ip());
    assert_eq!(IpAddr::from(h.destination), dst.ip());
    let (u, p) = UdpHeader::from_slice(rest).unwrap();
    assert_eq!(
        (u.source_port, u.destination_port),
        (src.port(), dst.port())
    );
    assert_eq!(usize::from(u.length), 8 + payload.len());
    assert_eq!(p, payload);
    if udp_sum {
        assert_eq!(u.checksum, u.calc_checksum_ipv4(&h, p).unwrap());
    } else {
        assert_eq!(u.checksum, 0);
    }
}

fn check_v6_udp(pkt: &[u8], src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
    let (h, rest) = Ipv6Header::from_slice(pkt).unwrap();
    assert_eq!(h.next_header, IpNumber::UDP);
    assert_eq!(h.hop_limit, 64);
    assert_eq!(usize::from(h.payload_length) + 40, pkt.len());
    assert_eq!(IpAddr::from(h.source), src.ip());
    assert_eq!(IpAddr::from(h.destination), dst.ip());
    let (u, p) = UdpHeader::from_slice(rest).unwrap();
    assert_eq!(
        (u.source_port, u.destination_port),
        (src.port(), dst.port())
    );
    assert_eq!(p, payload);
    assert_ne!(u.checksum, 0);
    assert_eq!(u.checksum, u.calc_checksum_ipv6(&h, p).unwrap());
}

fn path(local: &str, remote: &str, encap: Encap, l2: bool) -> PathSpec {
    PathSpec {
        local: sa(local),
        remote: sa(remote),
        encap,
        l2: l2.then_some(L2 {
            src_mac: MAC_A,
            dst_mac: MAC_B,
        }),
        keepalive_ms: 0,
    }
}

#[test]
fn push_outer_ipv4_udp_with_vlanless_ethernet() {
    let esp = [0x11u8; 37];
    let mut b = PacketBuf::new();
    assert!(b.fill(&esp));
    let p = path("10.0.0.1:4500", "10.0.0.2:4501", Encap::Udp, true);
    ip::push_outer(&mut b, &p, true).unwrap();
    let (eth, rest) = Ethernet2Header::from_slice(b.data()).unwrap();
    assert_eq!((eth.source, eth.destination), (MAC_A, MAC_B));
    assert_eq!(eth.ether_type.0, ip::ETHERTYPE_IPV4);
    // RFC 3948 2.1: IPv4 UDP checksum transmitted as zero.
    check_v4_udp(rest, p.local, p.remote, &esp, false);
    let o = ip::parse_outer(b.data(), Layer::Ethernet).unwrap();
    assert_eq!((o.src, o.dst, o.encap), (p.local, p.remote, Encap::Udp));
    assert_eq!(&b.data()[o.payload], &esp);
    assert_eq!(ip::strip_ethernet(&mut b), Ok(ip::ETHERTYPE_IPV4));
    check_v4_udp(b.data(), p.local, p.remote, &esp, false);
}

#[test]
fn push_outer_ipv6_udp_computes_checksum() {
    let esp: Vec<u8> = (0..101u8).collect();
    let mut b = PacketBuf::new();
    assert!(b.fill(&esp));
    let p = path(
        "[2001:db8::1]:4500",
        "[2001:db8::2]:4500",
        Encap::Udp,
        false,
    );
    ip::push_outer(&mut b, &p, false).unwrap();
    check_v6_udp(b.data(), p.local, p.remote, &esp);
    let o = ip::parse_outer(b.data(), Layer::Ip).unwrap();
    assert_eq!((o.src, o.dst, o.encap), (p.local, p.remote, Encap::Udp));
    assert_eq!(&b.data()[o.payload], &esp[..]);
}

#[test]
fn push_outer_plain_esp_both_families() {
    let esp = [0x22u8; 40];
    for (l, r) in [
        ("10.0.0.1:0", "10.0.0.2:0"),
        ("[2001:db8::1]:0", "[2001:db8::2]:0"),
    ] {
        let p = path(l, r, Encap::Esp, true);
        let mut b = PacketBuf::new();
        assert!(b.fill(&esp));
        ip::push_outer(&mut b, &p, true).unwrap();
        let (eth, rest) = Ethernet2Header::from_slice(b.data()).unwrap();
        if p.local.is_ipv4() {
            let (h, payload) = Ipv4Header::from_slice(rest).unwrap();
            assert_eq!(eth.ether_type.0, ip::ETHERTYPE_IPV4);
            assert_eq!(h.protocol, IpNumber::ENCAPSULATING_SECURITY_PAYLOAD);
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            assert_eq!(payload, &esp);
        } else {
            let (h, payload) = Ipv6Header::from_slice(rest).unwrap();
            assert_eq!(eth.ether_type.0, ip::ETHERTYPE_IPV6);
            assert_eq!(h.next_header, IpNumber::ENCAPSULATING_SECURITY_PAYLOAD);
            assert_eq!(payload, &esp);
        }
        let o = ip::parse_outer(b.data(), Layer::Ethernet).unwrap();
        assert_eq!(o.encap, Encap::Esp);
        assert_eq!((o.src, o.dst), (p.local, p.remote));
        assert_eq!(&b.data()[o.payload], &esp);
    }
}

#[test]
fn push_outer_refuses_bad_paths_and_missing_room() {
    let mut b = PacketBuf::new();
    assert!(b.fill(&[1, 2, 3]));
    let mixed = path("10.0.0.1:4500", "[2001:db8::2]:4500", Encap::Udp, false);
    assert_eq!(
        ip::push_outer(&mut b, &mixed, false),
        Err(EncapError::BadPath)
    );
    let no_l2 = path("10.0.0.1:4500", "10.0.0.2:4500", Encap::Udp, false);
    assert_eq!(
        ip::push_outer(&mut b, &no_l2, true),
        Err(EncapError::BadPath)
    );
    // No head room at all.
    let mut b = PacketBuf::new();
    let (_, _, end) = b.raw_mut();
    assert!(b.set_window(0, end));
    assert_eq!(
        ip::push_outer(&mut b, &no_l2, false),
        Err(EncapError::NoRoom)
    );
    assert_eq!(EncapError::NoRoom.counter(), Counter::DropNoTailroom);
}

#[test]
fn parses_etherparse_frames_with_and_without_vlan() {
    let payload = [0xabu8; 20];
    // IPv4 / UDP, untagged.
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 1, 2, 3], [10, 4, 5, 6], 17)
        .udp(4500, 4500)
        .write(&mut f, &payload)
        .unwrap();
    let o = ip::parse_outer(&f, Layer::Ethernet).unwrap();
    assert_eq!(o.src, sa("10.1.2.3:4500"));
    assert_eq!(o.dst, sa("10.4.5.6:4500"));
    assert_eq!(&f[o.payload], &payload);
    // IPv6 / UDP behind an 802.1Q tag.
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(etherparse::VlanId::try_new(42).unwrap())
        .ipv6([1; 16], [2; 16], 9)
        .udp(500, 4500)
        .write(&mut f, &payload)
        .unwrap();
    let o = ip::parse_outer(&f, Layer::Ethernet).unwrap();
    assert_eq!(o.src, SocketAddr::new(IpAddr::from([1u8; 16]), 500));
    assert_eq!(o.dst, SocketAddr::new(IpAddr::from([2u8; 16]), 4500));
    assert_eq!(&f[o.payload.clone()], &payload);
    let (_, rest) = Ethernet2Header::from_slice(&f).unwrap();
    let (vlan, _) = SingleVlanHeader::from_slice(rest).unwrap();
    assert_eq!(vlan.vlan_id.value(), 42);
    let mut b = PacketBuf::new();
    assert!(b.fill(&f));
    assert_eq!(ip::strip_ethernet(&mut b), Ok(ip::ETHERTYPE_IPV6));
    assert_eq!(b.data(), &f[18..]);
    // IPv4 / ESP (protocol 50) behind a tag.
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(etherparse::VlanId::try_new(7).unwrap())
        .ipv4([10, 1, 2, 3], [10, 4, 5, 6], 17)
        .write(&mut f, IpNumber::ENCAPSULATING_SECURITY_PAYLOAD, &payload)
        .unwrap();
    let o = ip::parse_outer(&f, Layer::Ethernet).unwrap();
    assert_eq!(o.encap, Encap::Esp);
    assert_eq!(o.src, sa("10.1.2.3:0"));
    assert_eq!(&f[o.payload], &payload);
}

/// A valid IPv4/UDP packet to break in the error tests.
fn v4() -> Vec<u8> {
    HAND_V4.to_vec()
}

fn refix_v4_checksum(p: &mut [u8]) {
    p[10] = 0;
    p[11] = 0;
    let ihl = usize::from(p[0] & 0xf) * 4;
    let c = ip::checksum(&p[..ihl.min(p.len())]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn parse_errors_are_named() {
    let e = |p: &[u8]| ip::parse_outer(p, Layer::Ip).unwrap_err();
    assert_eq!(e(&[]), IpError::Runt);
    assert_eq!(e(&[0x45]), IpError::Runt);
    assert_eq!(e(&v4()[..19]), IpError::Runt);
    assert_eq!(e(&[0x75; 40]), IpError::BadVersion);
    let mut p = v4();
    p[0] = 0x44;
    assert_eq!(e(&p), IpError::BadHeaderLen);
    let mut p = v4();
    p[0] = 0x4f; // 60-byte header in a 32-byte packet
    assert_eq!(e(&p), IpError::BadHeaderLen);
    let mut p = v4();
    p[3] = 0x21; // total length one beyond the packet
    refix_v4_checksum(&mut p);
    assert_eq!(e(&p), IpError::BadTotalLen);
    let mut p = v4();
    p[3] = 19;
    refix_v4_checksum(&mut p);
    assert_eq!(e(&p), IpError::BadTotalLen);
    let mut p = v4();
    p[11] ^= 1;
    assert_eq!(e(&p), IpError::BadChecksum);
    let mut p = v4();
    p[6] = 0x20; // more fragments
    refix_v4_checksum(&mut p);
    assert_eq!(e(&p), IpError::Fragment);
    let mut p = v4();
    p[7] = 0x01; // offset 8
    refix_v4_checksum(&mut p);
    assert_eq!(e(&p), IpError::Fragment);
    let mut p = v4();
    p[9] = 6; // TCP
    refix_v4_checksum(&mut p);
    assert_eq!(e(&p), IpError::NotIpOrEsp);
    let mut p = v4();
    p[25] = 7; // UDP length below its header
    assert_eq!(e(&p), IpError::BadUdpLen);
    let mut p = v4();
    p[25] = 13; // UDP length beyond the IP payload
    assert_eq!(e(&p), IpError::BadUdpLen);
    let mut p = v4();
    p[3] = 24; // IP payload too short for a UDP header
    refix_v4_checksum(&mut p);
    assert_eq!(e(&p), IpError::Runt);
    // IPv6 fragment header.
    let mut f = Vec::new();
    PacketBuilder::ipv6([1; 16], [2; 16], 9)
        .udp(1, 2)
        .write(&mut f, &[0; 8])
        .unwrap();
    f[6] = 44;
    assert_eq!(e(&f), IpError::Fragment);
    f[4] = 0xff; // payload length beyond the packet
    assert_eq!(e(&f), IpError::BadTotalLen);
    assert_eq!(e(&f[..39]), IpError::Runt);
    // Ethernet.
    let eth = |p: &[u8]| ip::parse_outer(p, Layer::Ethernet).unwrap_err();
    assert_eq!(eth(&[0; 13]), IpError::Runt);
    let mut arp = vec![0u8; 60];
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(eth(&arp), IpError::UnsupportedEthertype);
    let mut tagged = vec![0u8; 17];
    tagged[12..14].copy_from_slice(&[0x81, 0x00]);
    assert_eq!(eth(&tagged), IpError::Runt);
    let mut wrong = vec![0u8; 14];
    wrong[12..14].copy_from_slice(&[0x86, 0xdd]);
    wrong.extend_from_slice(&v4());
    assert_eq!(eth(&wrong), IpError::BadVersion);
    let mut b = PacketBuf::new();
    assert!(b.fill(&[0; 13]));
    assert_eq!(ip::strip_ethernet(&mut b), Err(IpError::Runt));
    assert_eq!(IpError::Runt.counter(), Counter::DropRunt);
    assert_eq!(IpError::NotIpOrEsp.counter(), Counter::DropNotForUs);
}

#[test]
fn datagram_layer_is_all_payload() {
    let o = ip::parse_outer(&[1, 2, 3], Layer::Datagram).unwrap();
    assert_eq!(o.payload, 0..3);
    assert_eq!(o.encap, Encap::Udp);
}

#[test]
fn inner_info_reads_both_families_and_keeps_fragments() {
    let mut f = Vec::new();
    PacketBuilder::ipv6([1; 16], [2; 16], 9)
        .udp(1, 2)
        .write(&mut f, &[0; 8])
        .unwrap();
    f.extend_from_slice(&[0xee; 3]); // link padding behind the packet
    let i = ip::inner_info(&f).unwrap();
    assert_eq!(i.next_header, NH_IPV6);
    assert_eq!(i.total_len, 40 + 16);
    assert_eq!(i.src, IpAddr::from([1u8; 16]));
    let mut p = v4();
    p[6] = 0x20;
    let i = ip::inner_info(&p).unwrap();
    assert_eq!(i.dst, "198.51.100.2".parse::<IpAddr>().unwrap());
    assert_eq!(ip::inner_info(&[]), Err(IpError::Runt));
    assert_eq!(ip::inner_info(&[0x10; 40]), Err(IpError::BadVersion));
    assert_eq!(ip::inner_info(&[0x60; 39]), Err(IpError::Runt));
}

proptest! {
    #[test]
    fn build_udp_packet_agrees_with_etherparse(
        v6 in any::<bool>(),
        a in any::<[u8; 16]>(),
        b in any::<[u8; 16]>(),
        sp in any::<u16>(),
        dp in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        let (src, dst) = if v6 {
            (SocketAddr::new(IpAddr::from(a), sp), SocketAddr::new(IpAddr::from(b), dp))
        } else {
            let a4: [u8; 4] = a[..4].try_into().unwrap();
            let b4: [u8; 4] = b[..4].try_into().unwrap();
            (SocketAddr::new(IpAddr::from(a4), sp), SocketAddr::new(IpAddr::from(b4), dp))
        };
        let mut buf = PacketBuf::new();
        ip::build_udp_packet(&mut buf, src, dst, payload.len(), |p| p.copy_from_slice(&payload)).unwrap();
        if v6 {
            check_v6_udp(buf.data(), src, dst, &payload);
        } else {
            check_v4_udp(buf.data(), src, dst, &payload, true);
        }
        let o = ip::parse_outer(buf.data(), Layer::Ip).unwrap();
        prop_assert_eq!((o.src, o.dst), (src, dst));
        prop_assert_eq!(&buf.data()[o.payload], &payload[..]);
    }

    /// The worker's framing from the path's prebuilt template is byte for byte the
    /// field-by-field `push_outer`, and its checksums verify (etherparse recomputes them).
    #[test]
    fn template_frames_equal_push_outer(
        v6 in any::<bool>(),
        udp in any::<bool>(),
        has_l2 in any::<bool>(),
        with_l2 in any::<bool>(),
        a in any::<[u8; 16]>(),
        b in any::<[u8; 16]>(),
        sp in any::<u16>(),
        dp in any::<u16>(),
        macs in any::<[u8; 12]>(),
        payload in proptest::collection::vec(any::<u8>(), 0..1900),
    ) {
        let (local, remote) = if v6 {
            (SocketAddr::new(IpAddr::from(a), sp), SocketAddr::new(IpAddr::from(b), dp))
        } else {
            let a4: [u8; 4] = a[..4].try_into().unwrap();
            let b4: [u8; 4] = b[..4].try_into().unwrap();
            (SocketAddr::new(IpAddr::from(a4), sp), SocketAddr::new(IpAddr::from(b4), dp))
        };
        let spec = PathSpec {
            local,
            remote,
            encap: if udp { Encap::Udp } else { Encap::Esp },
            l2: has_l2.then(|| L2 {
                src_mac: macs[..6].try_into().unwrap(),
                dst_mac: macs[6..].try_into().unwrap(),
            }),
            keepalive_ms: 0,
        };
        let rec = PathRecord::new(spec, 1);
        let mut by_fields = PacketBuf::new();
        prop_assert!(by_fields.fill(&payload));
        let mut by_template = PacketBuf::new();
        prop_assert!(by_template.fill(&payload));
        let want = ip::push_outer(&mut by_fields, &spec, with_l2);
        let got = ip::push_template(&mut by_template, &rec.outer, with_l2);
        prop_assert_eq!(got, want);
        if got.is_err() {
            prop_assert!(with_l2 && !has_l2);
            return Ok(());
        }
        prop_assert_eq!(by_template.data(), by_fields.data());
        let pkt = if with_l2 { &by_template.data()[14..] } else { by_template.data() };
        match (v6, udp) {
            (false, true) => check_v4_udp(pkt, local, remote, &payload, false),
            (true, true) => check_v6_udp(pkt, local, remote, &payload),
            (false, false) => {
                let (h, rest) = Ipv4Header::from_slice(pkt).unwrap();
                prop_assert_eq!(h.header_checksum, h.calc_header_checksum());
                prop_assert_eq!(usize::from(h.total_len), pkt.len());
                prop_assert_eq!(h.protocol, IpNumber(50));
                prop_assert_eq!(rest, &payload[..]);
            }
            (true, false) => {
                let (h, rest) = Ipv6Header::from_slice(pkt).unwrap();
                prop_assert_eq!(usize::from(h.payload_length), payload.len());
                prop_assert_eq!(h.next_header, IpNumber(50));
                prop_assert_eq!(rest, &payload[..]);
            }
        }
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        for layer in [Layer::Ethernet, Layer::Ip, Layer::Datagram] {
            if let Ok(o) = ip::parse_outer(&bytes, layer) {
                prop_assert!(o.payload.start <= o.payload.end && o.payload.end <= bytes.len());
            }
        }
        if let Ok(i) = ip::inner_info(&bytes) {
            prop_assert!(i.total_len <= bytes.len());
        }
        let _ = dataplane::natt::classify(&bytes);
        let mut b = PacketBuf::new();
        prop_assert!(b.fill(&bytes));
        let _ = ip::strip_ethernet(&mut b);
    }

    #[test]
    fn etherparse_accepts_what_parse_outer_accepts(
        v6 in any::<bool>(),
        vlan in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut f = Vec::new();
        let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
        match (v6, vlan) {
            (false, false) => eth.ipv4([1, 2, 3, 4], [5, 6, 7, 8], 3).udp(4500, 4500).write(&mut f, &payload),
            (true, false) => eth.ipv6([1; 16], [2; 16], 3).udp(4500, 4500).write(&mut f, &payload),
            (false, true) => eth.single_vlan(etherparse::VlanId::try_new(1).unwrap())
                .ipv4([1, 2, 3, 4], [5, 6, 7, 8], 3).udp(4500, 4500).write(&mut f, &payload),
            (true, true) => eth.single_vlan(etherparse::VlanId::try_new(1).unwrap())
                .ipv6([1; 16], [2; 16], 3).udp(4500, 4500).write(&mut f, &payload),
        }.unwrap();
        let o = ip::parse_outer(&f, Layer::Ethernet).unwrap();
        prop_assert_eq!(&f[o.payload], &payload[..]);
    }
}
