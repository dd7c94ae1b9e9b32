//! Path records: the outer header template of one IKE SA.
//!
//! RFC 4621 5.3: every child SA moves with its IKE SA, so outbound SAs refer to a path by
//! id and one publication of the path moves all of them.

use std::net::SocketAddr;

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

/// A published path: the spec plus the generation and the publication timestamp that let
/// workers (and the benchmark rig) measure publish-to-wire latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathRecord {
    pub spec: PathSpec,
    /// Increases by one on every change of this path; starts at 1.
    pub generation: u64,
    /// `clock::now_ns()` just before the publication that made this version visible.
    pub published_ns: u64,
}

impl PathSpec {
    /// Both ends of an outer header must be of the same address family.
    pub fn is_consistent(&self) -> bool {
        self.local.is_ipv4() == self.remote.is_ipv4()
    }
}
