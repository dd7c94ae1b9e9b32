//! The TUN port inside a private network namespace (needs root): packets the kernel routes
//! into the device come out of `rx_burst`, packets written with `tx_burst` reach a kernel
//! UDP socket.
//!
//! The namespace is anonymous: a dedicated thread `unshare(CLONE_NEWNET)`s itself, so the
//! namespace and everything in it disappear when the thread ends, even on a failed assert.

extern crate mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::io::tun::{TunConfig, TunPort};
use dataplane::io::{BurstIo, Layer};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `f` on a thread that lives in a fresh, anonymous network namespace.
fn in_private_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare affects only this thread's namespaces.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
            ip(&["link", "set", "lo", "up"]);
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

/// Runs `ip` in the calling thread's namespace (a child inherits it).
fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?}");
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in bytes.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP packet with a valid header checksum and no UDP checksum (RFC 768 allows 0).
fn ipv4_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.ip().octets());
    p[16..20].copy_from_slice(&dst.ip().octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&src.port().to_be_bytes());
    p[22..24].copy_from_slice(&dst.port().to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

#[test]
fn tun_round_trip_through_the_kernel() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    in_private_netns(|| {
        let name = format!("mtt{}", std::process::id());
        let mut port = TunPort::open(&TunConfig {
            name: name.clone(),
            mtu: Some(1400),
            up: true,
        })
        .expect("open tun");
        assert_eq!(port.layer(), Layer::Ip);
        assert_eq!(port.ifname(), name);
        ip(&["addr", "add", "10.99.0.1/24", "dev", &name]);

        // Kernel -> tun: a datagram routed to the tun's subnet.
        let sock = UdpSocket::bind("10.99.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let local = match sock.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        };
        let peer = SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 2), 5555);
        sock.send_to(b"hello tun", peer).unwrap();
        let mut bufs = PacketBuf::alloc(8);
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut found = None;
        while found.is_none() && Instant::now() < deadline {
            let n = port.rx_burst(&mut bufs).unwrap();
            // Skip the host's own chatter (IPv6 ND/MLD) and keep our datagram.
            found = bufs[..n]
                .iter()
                .map(|b| b.data().to_vec())
                .find(|d| d.len() >= 28 && d[0] >> 4 == 4 && d[9] == 17);
            if n == 0 {
                std::thread::yield_now();
            }
        }
        let pkt = found.expect("datagram read from tun");
        assert_eq!(&pkt[12..16], &local.ip().octets());
        assert_eq!(&pkt[16..20], &peer.ip().octets());
        assert_eq!(&pkt[20..22], &local.port().to_be_bytes());
        assert_eq!(&pkt[22..24], &5555u16.to_be_bytes());
        assert_eq!(&pkt[28..], b"hello tun");
        assert_eq!(checksum(&pkt[..20]), 0, "kernel header checksum verifies");

        // tun -> kernel: a packet written into the device reaches the socket.
        let reply = ipv4_udp(peer, local, b"hello kernel");
        let mut tx = PacketBuf::alloc(2);
        assert!(tx[0].fill(&reply));
        // The second one is malformed (truncated header): refused, not taken.
        assert!(tx[1].fill(&reply[..10]));
        let taken = port.tx_burst(&mut tx).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = sock.recv_from(&mut buf).expect("datagram from tun");
        assert_eq!(from, SocketAddr::V4(peer));
        assert_eq!(&buf[..n], b"hello kernel");
        // The kernel may accept the runt and drop it later; either way the good one went.
        assert!(taken >= 1);
    });
}

#[test]
fn tun_rejects_bad_names_and_mtu() {
    let bad = TunPort::open(&TunConfig {
        name: "a-name-much-too-long".into(),
        mtu: None,
        up: false,
    });
    assert_eq!(
        bad.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );
    let bad = TunPort::open(&TunConfig {
        name: "t0".into(),
        mtu: Some(9000),
        up: false,
    });
    assert_eq!(
        bad.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );
}
