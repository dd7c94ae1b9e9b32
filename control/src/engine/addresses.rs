//! Which of the host's addresses MOBIKE may use and announce (RFC 4555 3.6: the
//! ADDITIONAL_*_ADDRESS lists; 3.5: the addresses the initiator moves between).

use crate::ike::conn::Selector;

/// The addresses MOBIKE may use and announce: not link-local (scoped to one link),
/// multicast, or inside what the tunnels protect (the clear side's own addresses);
/// loopback only where configured.
pub fn usable(
    mut addrs: Vec<std::net::IpAddr>,
    loopback: &[std::net::IpAddr],
    protected: &[Selector],
) -> Vec<std::net::IpAddr> {
    let key = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(v) => u128::from(u32::from(v)),
        std::net::IpAddr::V6(v) => u128::from(v),
    };
    addrs.retain(|a| {
        let link_local = match a {
            std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            std::net::IpAddr::V4(v4) => v4.is_link_local(),
        };
        // A selector for everything (0.0.0.0/0, ::/0) says nothing about the host.
        let all = |s: &Selector| {
            key(s.start) == 0 && key(s.end) == u128::MAX >> if a.is_ipv4() { 96 } else { 0 }
        };
        let inside = protected.iter().any(|s| {
            s.start.is_ipv4() == a.is_ipv4()
                && !all(s)
                && key(s.start) <= key(*a)
                && key(*a) <= key(s.end)
        });
        !link_local && !a.is_multicast() && !a.is_loopback() && !inside
    });
    // A set: a client emulating thousands of tunnels on loopback lists thousands.
    let mut seen: std::collections::HashSet<std::net::IpAddr> = addrs.iter().copied().collect();
    for a in loopback {
        if seen.insert(*a) {
            addrs.push(*a);
        }
    }
    addrs
}
