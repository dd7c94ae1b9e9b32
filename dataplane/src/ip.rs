//! Minimal Ethernet / IPv4 / IPv6 / UDP parsing and building for the workers.
//!
//! Parsing checks every length once before reading a field, so no input can panic;
//! building prepends headers in place into the buffer's head room.

use crate::buf::PacketBuf;
use crate::esp::{EncapError, NH_IPV4, NH_IPV6};
use crate::io::Layer;
use shared::counters::Counter;
use shared::path::{Encap, OuterTemplate, PathSpec, L2};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

// The header sizes and numbers the path template (`shared::path`) is built from.
pub use shared::path::{
    DEFAULT_TTL, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN, IPPROTO_ESP, IPPROTO_UDP,
    IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN,
};
pub const VLAN_TAG_LEN: usize = 4;
/// IEEE 802.1Q customer tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// IPv6 fragment extension header.
pub const IPPROTO_FRAGMENT: u8 = 44;

/// Why a frame or packet was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpError {
    /// Shorter than the fixed header it must start with.
    Runt,
    /// IP version nibble is neither 4 nor 6 (or not the one the Ethertype announced).
    BadVersion,
    /// IPv4 IHL below 5 or beyond the packet.
    BadHeaderLen,
    /// Total (IPv4) or payload (IPv6) length smaller than the header or beyond the frame.
    BadTotalLen,
    /// An outer fragment: ESP packets are reassembled by nobody here.
    Fragment,
    /// Outer protocol is neither UDP nor ESP.
    NotIpOrEsp,
    /// UDP length smaller than its header or beyond the IP payload.
    BadUdpLen,
    /// IPv4 header checksum wrong.
    BadChecksum,
    /// Ethernet frame carrying neither IPv4 nor IPv6.
    UnsupportedEthertype,
}

impl IpError {
    /// The drop counter for an outer frame. (For a decrypted inner packet the worker counts
    /// `DropBadInner` whatever the reason.)
    pub fn counter(self) -> Counter {
        match self {
            IpError::Runt | IpError::BadHeaderLen | IpError::BadTotalLen | IpError::BadUdpLen => {
                Counter::DropRunt
            }
            IpError::BadVersion
            | IpError::Fragment
            | IpError::NotIpOrEsp
            | IpError::BadChecksum
            | IpError::UnsupportedEthertype => Counter::DropNotForUs,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Internet checksum (RFC 1071), the one implementation in the dataplane.

// The sum and its folding live with the path template, which needs them to build
// headers in the shared crate.
pub use shared::path::{checksum_add, checksum_finish};

/// The Internet checksum of `bytes`. Over a header that includes its own checksum field
/// the result is 0 when the checksum is correct.
#[inline]
pub fn checksum(bytes: &[u8]) -> u16 {
    checksum_finish(checksum_add(0, bytes))
}

/// UDP checksum with the IPv4 (RFC 768) or IPv6 (RFC 8200 8.1) pseudo-header over `udp`
/// (header with its checksum field zeroed, plus payload). A computed 0 is sent as 0xffff.
pub fn udp_checksum(src: IpAddr, dst: IpAddr, udp: &[u8]) -> u16 {
    let len = udp.len() as u64;
    let mut sum = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let s = checksum_add(0, &s.octets());
            checksum_add(s, &d.octets())
        }
        (s, d) => {
            let s = checksum_add(0, &to_v6(s).octets());
            checksum_add(s, &to_v6(d).octets())
        }
    };
    sum += u64::from(IPPROTO_UDP) + len;
    let c = checksum_finish(checksum_add(sum, udp));
    if c == 0 {
        0xffff
    } else {
        c
    }
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

// ---------------------------------------------------------------------------------------
// Field readers that cannot panic.

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
fn arr4(b: &[u8], at: usize) -> Option<[u8; 4]> {
    b.get(at..at + 4)?.try_into().ok()
}

#[inline]
fn arr16(b: &[u8], at: usize) -> Option<[u8; 16]> {
    b.get(at..at + 16)?.try_into().ok()
}

// ---------------------------------------------------------------------------------------
// Parsing.

/// What the worker needs from an inner (clear or decrypted) IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// ESP next header for this packet: `NH_IPV4` or `NH_IPV6`.
    pub next_header: u8,
    /// Length the IP header claims; bytes after it (link padding) are not part of the packet.
    pub total_len: usize,
}

/// Reads the addresses and length of an inner IPv4 or IPv6 packet. Fragments are fine here
/// (they are tunnelled as they are); options and extension headers are skipped over.
#[inline]
pub fn inner_info(pkt: &[u8]) -> Result<InnerInfo, IpError> {
    let first = *pkt.first().ok_or(IpError::Runt)?;
    match first >> 4 {
        4 => {
            let h = ipv4_header(pkt)?;
            Ok(InnerInfo {
                src: IpAddr::V4(h.src),
                dst: IpAddr::V4(h.dst),
                next_header: NH_IPV4,
                total_len: h.total_len,
            })
        }
        6 => {
            let h = ipv6_header(pkt)?;
            Ok(InnerInfo {
                src: IpAddr::V6(h.src),
                dst: IpAddr::V6(h.dst),
                next_header: NH_IPV6,
                total_len: h.total_len,
            })
        }
        _ => Err(IpError::BadVersion),
    }
}

struct V4Header {
    header_len: usize,
    total_len: usize,
    /// More-fragments flag or a non-zero offset.
    fragment: bool,
    protocol: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

/// RFC 791 3.1, length checks only (the caller decides on the checksum).
#[inline]
fn ipv4_header(p: &[u8]) -> Result<V4Header, IpError> {
    if p.len() < IPV4_HEADER_LEN {
        return Err(IpError::Runt);
    }
    let vihl = p[0];
    if vihl >> 4 != 4 {
        return Err(IpError::BadVersion);
    }
    let header_len = usize::from(vihl & 0x0f) * 4;
    if header_len < IPV4_HEADER_LEN || header_len > p.len() {
        return Err(IpError::BadHeaderLen);
    }
    let total_len = usize::from(be16(p, 2).ok_or(IpError::Runt)?);
    if total_len < header_len || total_len > p.len() {
        return Err(IpError::BadTotalLen);
    }
    let frag = be16(p, 6).ok_or(IpError::Runt)?;
    Ok(V4Header {
        header_len,
        total_len,
        fragment: frag & 0x3fff != 0,
        protocol: p[9],
        src: Ipv4Addr::from(arr4(p, 12).ok_or(IpError::Runt)?),
        dst: Ipv4Addr::from(arr4(p, 16).ok_or(IpError::Runt)?),
    })
}

struct V6Header {
    total_len: usize,
    next_header: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
}

/// RFC 8200 3.
#[inline]
fn ipv6_header(p: &[u8]) -> Result<V6Header, IpError> {
    if p.len() < IPV6_HEADER_LEN {
        return Err(IpError::Runt);
    }
    if p[0] >> 4 != 6 {
        return Err(IpError::BadVersion);
    }
    let total_len = IPV6_HEADER_LEN + usize::from(be16(p, 4).ok_or(IpError::Runt)?);
    if total_len > p.len() {
        return Err(IpError::BadTotalLen);
    }
    Ok(V6Header {
        total_len,
        next_header: p[6],
        src: Ipv6Addr::from(arr16(p, 8).ok_or(IpError::Runt)?),
        dst: Ipv6Addr::from(arr16(p, 24).ok_or(IpError::Runt)?),
    })
}

/// A received outer packet: its addresses, how ESP was carried, and where the UDP or ESP
/// payload is in the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outer {
    /// Sender address; the port is 0 for plain ESP.
    pub src: SocketAddr,
    /// Our address; the port is 0 for plain ESP.
    pub dst: SocketAddr,
    pub encap: Encap,
    /// With `Encap::Udp` the UDP payload (ESP, non-ESP marker + IKE, or a keepalive, see
    /// `natt::classify`); with `Encap::Esp` the ESP packet.
    pub payload: Range<usize>,
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Parses a received frame. `Layer::Ethernet`: Ethernet [+ one 802.1Q tag] / IPv4|IPv6 /
/// UDP|ESP. `Layer::Ip`: starts at the IP header. `Layer::Datagram`: the frame is already a
/// UDP payload; the addresses come from `Meta`, so they are left unspecified here.
///
/// UDP checksums are not verified: everything carried on the ESP/IKE port has its own
/// integrity check (ESP ICV, IKE SK payload), and RFC 3948 2.1 lets senders zero it.
#[inline]
pub fn parse_outer(frame: &[u8], layer: Layer) -> Result<Outer, IpError> {
    let l3 = match layer {
        Layer::Datagram => {
            return Ok(Outer {
                src: UNSPECIFIED,
                dst: UNSPECIFIED,
                encap: Encap::Udp,
                payload: 0..frame.len(),
            })
        }
        Layer::Ip => 0,
        Layer::Ethernet => {
            let (ethertype, off) = ethernet_type(frame)?;
            let version = frame.get(off).ok_or(IpError::Runt)? >> 4;
            match (ethertype, version) {
                (ETHERTYPE_IPV4, 4) | (ETHERTYPE_IPV6, 6) => off,
                (ETHERTYPE_IPV4, _) | (ETHERTYPE_IPV6, _) => return Err(IpError::BadVersion),
                _ => return Err(IpError::UnsupportedEthertype),
            }
        }
    };
    let pkt = frame.get(l3..).ok_or(IpError::Runt)?;
    let first = *pkt.first().ok_or(IpError::Runt)?;
    let (src, dst, protocol, l4, end) = match first >> 4 {
        4 => {
            let h = ipv4_header(pkt)?;
            let hdr = pkt.get(..h.header_len).ok_or(IpError::Runt)?;
            if checksum(hdr) != 0 {
                return Err(IpError::BadChecksum);
            }
            if h.fragment {
                return Err(IpError::Fragment);
            }
            (
                IpAddr::V4(h.src),
                IpAddr::V4(h.dst),
                h.protocol,
                h.header_len,
                h.total_len,
            )
        }
        6 => {
            let h = ipv6_header(pkt)?;
            if h.next_header == IPPROTO_FRAGMENT {
                return Err(IpError::Fragment);
            }
            (
                IpAddr::V6(h.src),
                IpAddr::V6(h.dst),
                h.next_header,
                IPV6_HEADER_LEN,
                h.total_len,
            )
        }
        _ => return Err(IpError::BadVersion),
    };
    match protocol {
        IPPROTO_ESP => Ok(Outer {
            src: SocketAddr::new(src, 0),
            dst: SocketAddr::new(dst, 0),
            encap: Encap::Esp,
            payload: l3 + l4..l3 + end,
        }),
        IPPROTO_UDP => {
            let udp = pkt.get(l4..end).ok_or(IpError::Runt)?;
            if udp.len() < UDP_HEADER_LEN {
                return Err(IpError::Runt);
            }
            let sport = be16(udp, 0).ok_or(IpError::Runt)?;
            let dport = be16(udp, 2).ok_or(IpError::Runt)?;
            let ulen = usize::from(be16(udp, 4).ok_or(IpError::Runt)?);
            if ulen < UDP_HEADER_LEN || ulen > udp.len() {
                return Err(IpError::BadUdpLen);
            }
            let start = l3 + l4 + UDP_HEADER_LEN;
            Ok(Outer {
                src: SocketAddr::new(src, sport),
                dst: SocketAddr::new(dst, dport),
                encap: Encap::Udp,
                payload: start..l3 + l4 + ulen,
            })
        }
        _ => Err(IpError::NotIpOrEsp),
    }
}

/// Ethertype and the offset of the layer-3 header, looking through one 802.1Q tag.
#[inline]
fn ethernet_type(frame: &[u8]) -> Result<(u16, usize), IpError> {
    let t = be16(frame, 12).ok_or(IpError::Runt)?;
    if t == ETHERTYPE_VLAN {
        let inner = be16(frame, 16).ok_or(IpError::Runt)?;
        Ok((inner, ETH_HEADER_LEN + VLAN_TAG_LEN))
    } else {
        Ok((t, ETH_HEADER_LEN))
    }
}

/// Removes the Ethernet header (and one 802.1Q tag) and returns the Ethertype it carried.
#[inline]
pub fn strip_ethernet(buf: &mut PacketBuf) -> Result<u16, IpError> {
    let (t, off) = ethernet_type(buf.data())?;
    if !buf.pull_front(off) {
        return Err(IpError::Runt);
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// Building.

/// Prepends an Ethernet header.
#[inline]
pub fn push_ethernet(buf: &mut PacketBuf, l2: &L2, ethertype: u16) -> Result<(), EncapError> {
    let h = buf.push_front(ETH_HEADER_LEN).ok_or(EncapError::NoRoom)?;
    h[0..6].copy_from_slice(&l2.dst_mac);
    h[6..12].copy_from_slice(&l2.src_mac);
    h[12..14].copy_from_slice(&ethertype.to_be_bytes());
    Ok(())
}

/// Prepends a UDP header over the current data. With `with_checksum` false the checksum is
/// left 0 (RFC 768 "no checksum", IPv4 only).
#[inline]
fn push_udp(
    buf: &mut PacketBuf,
    src: SocketAddr,
    dst: SocketAddr,
    with_checksum: bool,
) -> Result<(), EncapError> {
    let len = u16::try_from(buf.len() + UDP_HEADER_LEN).map_err(|_| EncapError::NoRoom)?;
    let h = buf.push_front(UDP_HEADER_LEN).ok_or(EncapError::NoRoom)?;
    h[0..2].copy_from_slice(&src.port().to_be_bytes());
    h[2..4].copy_from_slice(&dst.port().to_be_bytes());
    h[4..6].copy_from_slice(&len.to_be_bytes());
    h[6..8].copy_from_slice(&[0, 0]);
    if with_checksum {
        let c = udp_checksum(src.ip(), dst.ip(), buf.data());
        let d = buf.data_mut();
        if let Some(f) = d.get_mut(6..8) {
            f.copy_from_slice(&c.to_be_bytes());
        }
    }
    Ok(())
}

/// Prepends an IPv4 (RFC 791: DF, TTL 64, ID 0 as RFC 6864 4.1 allows for atomic
/// datagrams, header checksum) or IPv6 (hop limit 64) header. Returns the Ethertype.
#[inline]
fn push_ip(buf: &mut PacketBuf, src: IpAddr, dst: IpAddr, protocol: u8) -> Result<u16, EncapError> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total =
                u16::try_from(buf.len() + IPV4_HEADER_LEN).map_err(|_| EncapError::NoRoom)?;
            let h = buf.push_front(IPV4_HEADER_LEN).ok_or(EncapError::NoRoom)?;
            h[0] = 0x45;
            h[1] = 0;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[4..6].copy_from_slice(&[0, 0]);
            h[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
            h[8] = DEFAULT_TTL;
            h[9] = protocol;
            h[10..12].copy_from_slice(&[0, 0]);
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let c = checksum(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            Ok(ETHERTYPE_IPV4)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let plen = u16::try_from(buf.len()).map_err(|_| EncapError::NoRoom)?;
            let h = buf.push_front(IPV6_HEADER_LEN).ok_or(EncapError::NoRoom)?;
            h[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
            h[4..6].copy_from_slice(&plen.to_be_bytes());
            h[6] = protocol;
            h[7] = DEFAULT_TTL;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
            Ok(ETHERTYPE_IPV6)
        }
        _ => Err(EncapError::BadPath),
    }
}

/// Prepends the outer headers of `path` in front of the ESP packet in `buf.data()`:
/// UDP when `path.encap == Encap::Udp`, the IP header, and Ethernet from `path.l2` when
/// `with_l2`.
///
/// UDP checksum: RFC 3948 2.1 says it SHOULD be zero over IPv4, and the ESP ICV protects
/// the payload anyway, so IPv4 sends 0; IPv6 requires one (RFC 8200 8.1; the zero-checksum
/// exception of RFC 6935 needs per-peer configuration), so IPv6 computes it.
///
/// On error the buffer may hold part of the headers; the caller drops the packet.
#[inline]
pub fn push_outer(buf: &mut PacketBuf, path: &PathSpec, with_l2: bool) -> Result<(), EncapError> {
    if !path.is_consistent() {
        return Err(EncapError::BadPath);
    }
    let l2 = match (with_l2, path.l2) {
        (false, _) => None,
        (true, Some(l2)) => Some(l2),
        (true, None) => return Err(EncapError::BadPath),
    };
    let protocol = match path.encap {
        Encap::Udp => {
            push_udp(buf, path.local, path.remote, path.local.is_ipv6())?;
            IPPROTO_UDP
        }
        Encap::Esp => IPPROTO_ESP,
    };
    let ethertype = push_ip(buf, path.local.ip(), path.remote.ip(), protocol)?;
    if let Some(l2) = l2 {
        push_ethernet(buf, &l2, ethertype)?;
    }
    Ok(())
}

/// Prepends a path's prebuilt outer header (`PathRecord::outer`) in front of the ESP
/// packet in `buf.data()`: the worker's per-packet framing. `with_l2`: with the Ethernet
/// header (refused if the path has none), else from the IP header on. Produces the same
/// bytes as `push_outer` for the path's spec: the template is copied, then the IP length
/// field, the IPv4 header checksum (the template's sum plus the total length, RFC 1624
/// eqn. 3), the UDP length and, over IPv6, the UDP checksum (the template's pseudo-header
/// and ports sum plus the length and the payload) are written.
#[inline]
pub fn push_template(
    buf: &mut PacketBuf,
    t: &OuterTemplate,
    with_l2: bool,
) -> Result<(), EncapError> {
    if t.len == 0 || (with_l2 && !t.l2) {
        return Err(EncapError::BadPath);
    }
    let from = if with_l2 { 0 } else { ETH_HEADER_LEN };
    let hdr = t
        .bytes
        .get(from..usize::from(t.len))
        .ok_or(EncapError::BadPath)?;
    let payload = buf.len();
    let ip_len =
        u16::try_from(payload + usize::from(t.ip_len_adds)).map_err(|_| EncapError::NoRoom)?;
    // Within `ip_len` whenever there is a UDP header.
    let udp_len = u16::try_from(payload + UDP_HEADER_LEN).unwrap_or(u16::MAX);
    let payload_sum = if t.udp_sum {
        checksum_add(0, buf.data())
    } else {
        0
    };
    let h = buf.push_front(hdr.len()).ok_or(EncapError::NoRoom)?;
    h.copy_from_slice(hdr);
    put16(h, t.ip_len_at, from, ip_len);
    if t.ip_sum_at != 0 {
        let c = checksum_finish(u64::from(t.sum) + u64::from(ip_len));
        put16(h, t.ip_sum_at, from, c);
    }
    if t.udp_at != 0 {
        put16(h, t.udp_at + 4, from, udp_len);
        if t.udp_sum {
            let sum = u64::from(t.sum) + 2 * u64::from(udp_len) + payload_sum;
            // RFC 8200 8.1: a computed 0 is sent as 0xffff.
            let c = match checksum_finish(sum) {
                0 => 0xffff,
                c => c,
            };
            put16(h, t.udp_at + 6, from, c);
        }
    }
    Ok(())
}

/// Writes `v` at template offset `at` of a header copied from template offset `from`.
#[inline]
fn put16(h: &mut [u8], at: u8, from: usize, v: u16) {
    let Some(i) = usize::from(at).checked_sub(from) else {
        return;
    };
    if let Some(f) = h.get_mut(i..i + 2) {
        f.copy_from_slice(&v.to_be_bytes());
    }
}

/// Builds a whole IPv4 or IPv6 UDP packet, both checksums computed, whose `payload_len`
/// payload bytes start at the buffer's current data start (headers go into the head room);
/// `fill` writes the payload. The previous data is discarded.
pub fn build_udp_packet(
    buf: &mut PacketBuf,
    src: SocketAddr,
    dst: SocketAddr,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Result<(), EncapError> {
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(EncapError::BadPath);
    }
    let start = buf.headroom();
    let end = start.checked_add(payload_len).ok_or(EncapError::NoRoom)?;
    if !buf.set_window(start, end) {
        return Err(EncapError::NoRoom);
    }
    fill(buf.data_mut());
    push_udp(buf, src, dst, true)?;
    push_ip(buf, src.ip(), dst.ip(), IPPROTO_UDP)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IPv4 header example from Wikipedia's "Internet checksum" / RFC 1071 style:
    /// 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7.
    #[test]
    fn ipv4_header_checksum_published_example() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn rfc1071_numerical_example() {
        // RFC 1071 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (before complement).
        let b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&b), !0xddf2);
        // Odd length: the last byte is padded with zero.
        assert_eq!(
            checksum(&b[..7]),
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0])
        );
    }
}
