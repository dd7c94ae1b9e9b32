//! Path records: the outer header template of one IKE SA.
//!
//! The template is built when the path is set (RFC 791 / RFC 8200 / RFC 768 header
//! layouts, RFC 1071 and RFC 1624 checksums), so a worker copies it per packet.
//!
//! RFC 4621 5.3: every child SA moves with its IKE SA, so outbound SAs refer to a path by
//! id and one publication of the path moves all of them.

use std::net::{IpAddr, SocketAddr};

/// Index of a path record (one per IKE SA, or per static tunnel group).
pub type PathId = u32;

/// How ESP leaves on this path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encap {
    /// RFC 3948 UDP encapsulation (normally port 4500 on both ends).
    Udp,
    /// Plain ESP, IP protocol 50 (only on backends that build the IP header themselves).
    Esp,
}

/// Link-layer addresses for backends that write whole Ethernet frames (afpacket, mem).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct L2 {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
}

/// What the control plane asks for: the outer addresses and encapsulation of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathSpec {
    /// Outer source. The port matters only with `Encap::Udp`.
    pub local: SocketAddr,
    /// Outer destination. The port matters only with `Encap::Udp`.
    pub remote: SocketAddr,
    pub encap: Encap,
    /// Next-hop Ethernet header for Ethernet-layer ports; `None` where the kernel routes.
    pub l2: Option<L2>,
    /// RFC 3948 4: send a NAT keepalive after this long without traffic; 0 = never.
    pub keepalive_ms: u32,
}

/// A published path: the spec, its outer header prebuilt, and the generation and the
/// publication timestamp that let workers (and the benchmark rig) measure publish-to-wire
/// latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathRecord {
    pub spec: PathSpec,
    /// `spec`'s outer header, built once here rather than per packet.
    pub outer: OuterTemplate,
    /// Increases by one on every change of this path; starts at 1.
    pub generation: u64,
    /// `clock::now_ns()` just before the publication that made this version visible.
    pub published_ns: u64,
}

impl PathRecord {
    /// Generation `generation` of `spec`, not yet published (`published_ns` 0).
    pub fn new(spec: PathSpec, generation: u64) -> PathRecord {
        PathRecord {
            outer: OuterTemplate::new(&spec),
            spec,
            generation,
            published_ns: 0,
        }
    }
}

impl PathSpec {
    /// Both ends of an outer header must be of the same address family.
    pub fn is_consistent(&self) -> bool {
        self.local.is_ipv4() == self.remote.is_ipv4()
    }
}

// ---------------------------------------------------------------------------------------
// The prebuilt outer header (the template the workers copy per packet).

/// Ethernet II header (no VLAN tag).
pub const ETH_HEADER_LEN: usize = 14;
pub const IPV4_HEADER_LEN: usize = 20;
pub const IPV6_HEADER_LEN: usize = 40;
pub const UDP_HEADER_LEN: usize = 8;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ESP: u8 = 50;
/// Outer TTL / hop limit of packets we originate.
pub const DEFAULT_TTL: u8 = 64;
/// Longest outer header: Ethernet, IPv6, UDP.
pub const OUTER_MAX: usize = ETH_HEADER_LEN + IPV6_HEADER_LEN + UDP_HEADER_LEN;

/// Adds `bytes` to a running ones'-complement sum (RFC 1071). Every part but the last must
/// have an even length (the sum is over 16-bit words in network order).
#[inline]
pub fn checksum_add(mut sum: u64, bytes: &[u8]) -> u64 {
    // RFC 1071 2(B): summing 32-bit words and folding later gives the same result.
    let mut words = bytes.chunks_exact(4);
    for w in &mut words {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    sum + u64::from(u32::from_be_bytes(tail))
}

/// Folds a running sum to 16 bits (end-around carry), without complementing it.
#[inline]
pub fn checksum_fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Folds a running sum to 16 bits and complements it: the value to store in a header.
#[inline]
pub fn checksum_finish(sum: u64) -> u16 {
    !checksum_fold(sum)
}

/// The outer header of a path built once, when the path is set, so a worker copies it and
/// patches only what depends on the packet: the lengths, the IPv4 header checksum and the
/// IPv6 UDP checksum.
///
/// `bytes` holds Ethernet (zeros when the path has no `l2`), then IPv4 or IPv6, then UDP
/// with `Encap::Udp`. A port that writes IP packets takes `bytes[ETH_HEADER_LEN..len]`, an
/// Ethernet port all of `bytes[..len]`. The fields are those of `ip::push_outer`: IPv4 with
/// DF, TTL 64, ID 0 (RFC 6864 4.1), IPv6 with hop limit 64, the UDP checksum zero over IPv4
/// (RFC 3948 2.1) and computed over IPv6 (RFC 8200 8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OuterTemplate {
    pub bytes: [u8; OUTER_MAX],
    /// Length with the Ethernet header; 0: no header can be built (mixed families).
    pub len: u8,
    /// `bytes[..ETH_HEADER_LEN]` is a real Ethernet header (the path has `l2`).
    pub l2: bool,
    /// Offset of the IPv4 total length or the IPv6 payload length.
    pub ip_len_at: u8,
    /// That field is the ESP (or plain) payload's length plus this.
    pub ip_len_adds: u8,
    /// Offset of the IPv4 header checksum; 0 for IPv6 (which has none).
    pub ip_sum_at: u8,
    /// Offset of the UDP header; 0 with `Encap::Esp`.
    pub udp_at: u8,
    /// IPv6 only: compute the UDP checksum per packet.
    pub udp_sum: bool,
    /// IPv4: the ones'-complement sum of the IP header's words with the total length and
    /// the checksum zero. Per packet the checksum is the complement of this plus the total
    /// length: RFC 1624 eqn. 3 with the template's length field as the old value 0.
    /// IPv6 with UDP: the part of the UDP checksum that is the same for every packet, the
    /// pseudo-header's addresses and next header and the two ports (RFC 8200 8.1); per
    /// packet the UDP length (counted twice, pseudo-header and header) and the payload
    /// are added.
    pub sum: u16,
}

impl OuterTemplate {
    /// The template for `spec` (`len` 0 when its addresses are of different families,
    /// which `TableWriter::set_path` refuses anyway).
    pub fn new(spec: &PathSpec) -> OuterTemplate {
        let mut t = OuterTemplate {
            bytes: [0; OUTER_MAX],
            len: 0,
            l2: spec.l2.is_some(),
            ip_len_at: 0,
            ip_len_adds: 0,
            ip_sum_at: 0,
            udp_at: 0,
            udp_sum: false,
            sum: 0,
        };
        let (protocol, udp_len) = match spec.encap {
            Encap::Udp => (IPPROTO_UDP, UDP_HEADER_LEN),
            Encap::Esp => (IPPROTO_ESP, 0),
        };
        let ip = ETH_HEADER_LEN;
        let (ethertype, ip_len) = match (spec.local.ip(), spec.remote.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let h = &mut t.bytes[ip..ip + IPV4_HEADER_LEN];
                h[0] = 0x45;
                h[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
                h[8] = DEFAULT_TTL;
                h[9] = protocol;
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                // Total length and checksum are still zero here.
                t.sum = checksum_fold(checksum_add(0, h));
                h[10..12].copy_from_slice(&(!t.sum).to_be_bytes());
                t.ip_len_at = (ip + 2) as u8;
                t.ip_len_adds = (IPV4_HEADER_LEN + udp_len) as u8;
                t.ip_sum_at = (ip + 10) as u8;
                (ETHERTYPE_IPV4, IPV4_HEADER_LEN)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let h = &mut t.bytes[ip..ip + IPV6_HEADER_LEN];
                h[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
                h[6] = protocol;
                h[7] = DEFAULT_TTL;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                t.ip_len_at = (ip + 4) as u8;
                t.ip_len_adds = udp_len as u8;
                if spec.encap == Encap::Udp {
                    t.udp_sum = true;
                    let pseudo = checksum_add(0, &h[8..40]) + u64::from(IPPROTO_UDP);
                    let ports = u64::from(spec.local.port()) + u64::from(spec.remote.port());
                    t.sum = checksum_fold(pseudo + ports);
                }
                (ETHERTYPE_IPV6, IPV6_HEADER_LEN)
            }
            _ => return t,
        };
        if let Some(l2) = spec.l2 {
            t.bytes[0..6].copy_from_slice(&l2.dst_mac);
            t.bytes[6..12].copy_from_slice(&l2.src_mac);
            t.bytes[12..14].copy_from_slice(&ethertype.to_be_bytes());
        }
        if spec.encap == Encap::Udp {
            let u = ip + ip_len;
            t.bytes[u..u + 2].copy_from_slice(&spec.local.port().to_be_bytes());
            t.bytes[u + 2..u + 4].copy_from_slice(&spec.remote.port().to_be_bytes());
            t.udp_at = u as u8;
        }
        t.len = (ip + ip_len + udp_len) as u8;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(local: &str, remote: &str, encap: Encap, l2: Option<L2>) -> PathSpec {
        PathSpec {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            encap,
            l2,
            keepalive_ms: 0,
        }
    }

    /// The hand-computed datagram of dataplane/tests/ip_oracle.rs (`HAND_V4`): 192.0.2.1
    /// -> 198.51.100.2, UDP 4500 -> 4500, total length 0x20, header checksum 0x4e96.
    #[test]
    fn ipv4_sum_plus_length_gives_the_hand_computed_checksum() {
        let t = OuterTemplate::new(&spec(
            "192.0.2.1:4500",
            "198.51.100.2:4500",
            Encap::Udp,
            None,
        ));
        assert_eq!(usize::from(t.len), ETH_HEADER_LEN + 28);
        assert!(!t.l2);
        assert_eq!(
            &t.bytes[ETH_HEADER_LEN..usize::from(t.len)],
            &[
                0x45, 0, 0, 0, 0, 0, 0x40, 0, 0x40, 0x11, 0x4e, 0xb6, 192, 0, 2, 1, 198, 51, 100,
                2, 0x11, 0x94, 0x11, 0x94, 0, 0, 0, 0
            ]
        );
        assert_eq!(usize::from(t.ip_len_adds), 28);
        assert_eq!(checksum_finish(u64::from(t.sum) + 0x20), 0x4e96);
        // The template's own checksum is that of a zero total length: it verifies as is.
        let h = &t.bytes[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV4_HEADER_LEN];
        assert_eq!(checksum_finish(checksum_add(0, h)), 0);
    }

    #[test]
    fn layouts_of_each_family_and_encapsulation() {
        let l2 = L2 {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
        };
        let t = OuterTemplate::new(&spec(
            "[2001:db8::1]:4500",
            "[2001:db8::2]:4501",
            Encap::Udp,
            Some(l2),
        ));
        assert_eq!(usize::from(t.len), OUTER_MAX);
        assert_eq!(
            &t.bytes[..14],
            &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]
        );
        assert_eq!(
            (t.ip_len_at, t.ip_len_adds, t.ip_sum_at, t.udp_at),
            (18, 8, 0, 54)
        );
        assert!(t.udp_sum);
        let t = OuterTemplate::new(&spec("10.0.0.1:0", "10.0.0.2:0", Encap::Esp, Some(l2)));
        assert_eq!(usize::from(t.len), 34);
        assert_eq!(t.bytes[14 + 9], IPPROTO_ESP);
        assert_eq!((t.ip_len_adds, t.udp_at), (20, 0));
        // Mixed families: no template (set_path refuses such a spec).
        let t = OuterTemplate::new(&spec("10.0.0.1:1", "[2001:db8::2]:1", Encap::Udp, None));
        assert_eq!(t.len, 0);
    }
}
