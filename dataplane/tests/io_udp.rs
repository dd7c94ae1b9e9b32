//! The UDP burst port over loopback: round trips with and without GSO/GRO, source
//! selection, wildcard binds with pktinfo, IPv6, oversize datagrams, IKE longer than a
//! packet buffer (to the large punt queue, and sent), and a bounded throughput smoke run.

extern crate mobiked_dataplane as dataplane;

use dataplane::buf::{PacketBuf, LARGE_FRAME, MAX_FRAME};
use dataplane::channel::{Channel, Wakeup};
use dataplane::io::sys;
use dataplane::io::udp::{UdpConfig, UdpPort};
use dataplane::io::{BurstIo, Layer};
use shared::counters::{Counter, LocalCounters};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn port(bind: &[&str], gso: bool, gro: bool) -> UdpPort {
    let cfg = UdpConfig {
        bind: bind.iter().map(|a| a.parse().unwrap()).collect(),
        gso,
        gro,
        ..UdpConfig::default()
    };
    UdpPort::open(&cfg).expect("open udp port")
}

/// A payload that encodes its index, so order and content can be checked.
fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 7 + k * 13) as u8).collect()
}

fn send_all(p: &mut UdpPort, pkts: &[(SocketAddr, SocketAddr, Vec<u8>)]) -> usize {
    let mut bufs = PacketBuf::alloc(pkts.len());
    for (b, (src, dst, data)) in bufs.iter_mut().zip(pkts) {
        assert!(b.fill(data));
        b.meta.src = *src;
        b.meta.dst = *dst;
    }
    p.tx_burst(&mut bufs).expect("tx_burst")
}

/// Polls `p` until `want` packets arrived or two seconds passed (bounded busy loop).
fn recv_n(p: &mut UdpPort, want: usize, burst: usize) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut bufs = PacketBuf::alloc(burst);
    let deadline = Instant::now() + Duration::from_secs(2);
    while out.len() < want && Instant::now() < deadline {
        for b in bufs.iter_mut() {
            b.reset();
        }
        let n = p.rx_burst(&mut bufs).expect("rx_burst");
        for b in &bufs[..n] {
            out.push((b.meta.src, b.meta.dst, b.data().to_vec()));
        }
        if n == 0 {
            std::thread::yield_now();
        }
    }
    out
}

fn round_trip(a_bind: &str, b_bind: &str, gso: bool, gro: bool, sizes: &[usize], rx_burst: usize) {
    let mut a = port(&[a_bind], gso, gro);
    let mut b = port(&[b_bind], gso, gro);
    assert_eq!(a.layer(), Layer::Datagram);
    let (la, lb) = (a.local_addrs()[0], b.local_addrs()[0]);
    assert_ne!(la.port(), 0);
    let pkts: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| (la, lb, payload(i, len)))
        .collect();
    assert_eq!(send_all(&mut a, &pkts), pkts.len(), "all taken");
    let got = recv_n(&mut b, pkts.len(), rx_burst);
    assert_eq!(got.len(), pkts.len());
    for (i, (g, p)) in got.iter().zip(&pkts).enumerate() {
        assert_eq!(g.0, la, "meta.src is the sender ({i})");
        assert_eq!(g.1, lb, "meta.dst is the bound address ({i})");
        assert_eq!(g.2, p.2, "payload {i}");
    }
    if gso {
        assert!(a.gso_active(), "this kernel supports UDP GSO");
        let equal_runs = sizes.windows(2).any(|w| w[0] == w[1] && w[0] > 0);
        assert_eq!(a.stats().tx_gso_sends > 0, equal_runs);
    } else {
        assert_eq!(a.stats().tx_gso_sends, 0);
    }
    if gso && gro {
        assert!(b.gro_active());
        assert!(b.stats().rx_coalesced > 0, "super-datagrams were split");
    }
}

#[test]
fn plain_round_trip() {
    round_trip("127.0.0.1:0", "127.0.0.1:0", false, false, &[1200; 40], 64);
}

#[test]
fn gso_gro_round_trip() {
    round_trip("127.0.0.1:0", "127.0.0.1:0", true, true, &[1200; 100], 64);
}

#[test]
fn gso_gro_small_rx_bursts_carry_leftovers() {
    // 64 equal datagrams arrive as one super-datagram; bursts of 5 must split it over
    // many calls without losing or reordering a segment.
    round_trip("127.0.0.1:0", "127.0.0.1:0", true, true, &[700; 64], 5);
}

#[test]
fn mixed_sizes() {
    let sizes = [
        100, 100, 100, 40, 1400, 1400, 1400, 1400, 0, 9, 9, 2000, 2000, 1, 512, 512, 511, 512,
    ];
    for (gso, gro) in [(false, false), (true, false), (false, true), (true, true)] {
        round_trip("127.0.0.1:0", "127.0.0.1:0", gso, gro, &sizes, 7);
    }
}

#[test]
fn ipv6_round_trip() {
    round_trip("[::1]:0", "[::1]:0", true, true, &[1300; 50], 32);
    round_trip(
        "[::1]:0",
        "[::1]:0",
        false,
        false,
        &[64, 65, 1300, 1300],
        32,
    );
}

#[test]
fn source_selection_between_two_bound_addresses() {
    let mut a = port(&["127.0.0.2:0", "127.0.0.3:0"], true, true);
    let mut b = port(&["127.0.0.1:0"], true, true);
    let (a2, a3) = (a.local_addrs()[0], a.local_addrs()[1]);
    let lb = b.local_addrs()[0];
    // Runs of each source, interleaved, so GSO groups break at every change.
    let pkts: Vec<_> = (0..30)
        .map(|i| {
            let src = if (i / 4) % 2 == 0 { a2 } else { a3 };
            (src, lb, payload(i, 300))
        })
        .collect();
    assert_eq!(send_all(&mut a, &pkts), pkts.len());
    let got = recv_n(&mut b, pkts.len(), 64);
    assert_eq!(got.len(), pkts.len());
    // Different sockets may interleave; match per source, in order.
    for src in [a2, a3] {
        let sent: Vec<_> = pkts.iter().filter(|p| p.0 == src).map(|p| &p.2).collect();
        let recv: Vec<_> = got.iter().filter(|g| g.0 == src).map(|g| &g.2).collect();
        assert_eq!(sent, recv, "datagrams from {src}");
    }
}

#[test]
fn wildcard_bind_uses_pktinfo_both_ways() {
    let mut a = port(&["0.0.0.0:0"], true, true);
    let pa = a.local_addrs()[0].port();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let lp = peer.local_addr().unwrap();
    let d5: SocketAddr = format!("127.0.0.5:{pa}").parse().unwrap();
    let d6: SocketAddr = format!("127.0.0.6:{pa}").parse().unwrap();
    peer.send_to(b"to five", d5).unwrap();
    peer.send_to(b"to six", d6).unwrap();
    let got = recv_n(&mut a, 2, 8);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], (lp, d5, b"to five".to_vec()));
    assert_eq!(got[1], (lp, d6, b"to six".to_vec()));
    // Reply from each address: the kernel must put the chosen source on the wire.
    let replies = vec![
        (d6, lp, b"from six".to_vec()),
        (d5, lp, b"from five".to_vec()),
        (d5, lp, b"from five".to_vec()),
    ];
    assert_eq!(send_all(&mut a, &replies), 3);
    let mut buf = [0u8; 64];
    for want in &replies {
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((from, &buf[..n]), (want.0, &want.2[..]));
    }
}

#[test]
fn ipv6_wildcard_bind_uses_pktinfo() {
    let mut a = port(&["[::]:0"], false, false);
    let pa = a.local_addrs()[0].port();
    let peer = UdpSocket::bind("[::1]:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let lp = peer.local_addr().unwrap();
    let dst: SocketAddr = format!("[::1]:{pa}").parse().unwrap();
    peer.send_to(b"v6", dst).unwrap();
    let got = recv_n(&mut a, 1, 8);
    assert_eq!(got, vec![(lp, dst, b"v6".to_vec())]);
    assert_eq!(send_all(&mut a, &[(dst, lp, b"back".to_vec())]), 1);
    let mut buf = [0u8; 16];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((from, &buf[..n]), (dst, &b"back"[..]));
}

#[test]
fn oversize_datagrams_are_dropped_and_counted() {
    for gro in [false, true] {
        let mut a = port(&["127.0.0.1:0"], false, gro);
        let la = a.local_addrs()[0];
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let lp = peer.local_addr().unwrap();
        peer.send_to(&vec![0xaa; MAX_FRAME + 1], la).unwrap();
        peer.send_to(&vec![0xbb; MAX_FRAME], la).unwrap();
        peer.send_to(&vec![0xcc; 5000], la).unwrap();
        peer.send_to(b"small", la).unwrap();
        let got = recv_n(&mut a, 2, 8);
        assert_eq!(got.len(), 2, "gro={gro}");
        assert_eq!(got[0], (lp, la, vec![0xbb; MAX_FRAME]));
        assert_eq!(got[1], (lp, la, b"small".to_vec()));
        assert_eq!(a.stats().rx_oversize, 2, "gro={gro}");
    }
}

/// An IKE message of `len` bytes behind the non-ESP marker (RFC 3948 2.2), its content
/// derived from `len` so that each size is told apart.
fn marked_ike(len: usize) -> Vec<u8> {
    let mut d: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
    d[..4].fill(0);
    d[4] |= 1;
    d
}

#[test]
fn large_ike_reaches_the_control_plane_whole() {
    let sizes = [MAX_FRAME + 1, 3000, 8000, 65_000];
    for gro in [false, true] {
        let mut a = port(&["127.0.0.1:0"], false, gro);
        let queue = Arc::new(
            Channel::with_buffers(8, LARGE_FRAME).woken_by(Wakeup::new().ok().map(Arc::new)),
        );
        a.attach_large_punt(queue.clone());
        let la = a.local_addrs()[0];
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let lp = peer.local_addr().unwrap();
        assert!(queue.prepare_wait(), "the consumer sleeps");
        // Back to back, so that one receive call may see several.
        for &n in &sizes {
            peer.send_to(&marked_ike(n), la).unwrap();
        }
        // Too long for a packet buffer and not IKE: dropped and counted.
        peer.send_to(&vec![0xcc; 5000], la).unwrap();
        peer.send_to(b"small", la).unwrap();
        let got = recv_n(&mut a, 1, 8);
        assert_eq!(got, vec![(lp, la, b"small".to_vec())], "gro={gro}");
        let mut cnt = LocalCounters::default();
        a.take_counts(&mut cnt);
        assert_eq!(cnt.get(Counter::PuntIkeLarge), 4, "gro={gro}");
        assert_eq!(cnt.get(Counter::DropOversize), 1, "gro={gro}");
        assert_eq!(cnt.get(Counter::DropPuntLargeFull), 0, "gro={gro}");
        // The counts move once.
        let mut again = LocalCounters::default();
        a.take_counts(&mut again);
        assert_eq!(again.get(Counter::PuntIkeLarge), 0);

        // The consumer was woken, and finds every message intact, marker stripped.
        let fd = queue.wakeup_fd().unwrap();
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        assert_eq!(sys::poll(std::slice::from_mut(&mut p), 0).unwrap(), 1);
        queue.finish_wait_readable(true);
        let mut b = PacketBuf::with_frame(LARGE_FRAME);
        for &n in &sizes {
            assert!(queue.recv_swap(&mut b), "gro={gro}: {n} bytes missing");
            assert_eq!(b.data(), &marked_ike(n)[4..], "gro={gro}: {n} bytes");
            assert_eq!((b.meta.src, b.meta.dst), (lp, la));
        }
        assert!(!queue.recv_swap(&mut b));
        assert_eq!(a.stats().rx_oversize, 1);
    }
}

#[test]
fn large_ike_beyond_the_large_buffers_is_counted() {
    let mut a = port(&["127.0.0.1:0"], false, false);
    let queue = Arc::new(Channel::with_buffers(2, LARGE_FRAME));
    a.attach_large_punt(queue.clone());
    let la = a.local_addrs()[0];
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        peer.send_to(&marked_ike(4000), la).unwrap();
    }
    peer.send_to(b"small", la).unwrap();
    assert_eq!(recv_n(&mut a, 1, 8).len(), 1);
    let mut cnt = LocalCounters::default();
    a.take_counts(&mut cnt);
    assert_eq!(cnt.get(Counter::PuntIkeLarge), 2);
    assert_eq!(cnt.get(Counter::DropPuntLargeFull), 1);
    assert_eq!(queue.len(), 2);
}

#[test]
fn a_large_buffer_is_sent_as_one_datagram_never_in_a_gso_run() {
    let mut a = port(&["127.0.0.1:0"], true, true);
    let la = a.local_addrs()[0];
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let lp = peer.local_addr().unwrap();
    let big = marked_ike(9000);
    let mut bufs = vec![
        PacketBuf::with_frame(LARGE_FRAME),
        PacketBuf::new(),
        PacketBuf::new(),
    ];
    assert!(bufs[0].fill(&big));
    assert!(bufs[1].fill(&[7; 1000]));
    assert!(bufs[2].fill(&[7; 1000]));
    for b in &mut bufs {
        b.meta.src = la;
        b.meta.dst = lp;
    }
    assert_eq!(a.tx_burst(&mut bufs).unwrap(), 3);
    let mut got = vec![0u8; 70_000];
    let n = peer.recv(&mut got).unwrap();
    assert_eq!(&got[..n], &big[..]);
    for _ in 0..2 {
        assert_eq!(peer.recv(&mut got).unwrap(), 1000);
    }
}

#[test]
fn unknown_source_is_not_taken() {
    let mut a = port(&["127.0.0.1:0"], true, true);
    let la = a.local_addrs()[0];
    let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let other: SocketAddr = "127.0.0.9:1234".parse().unwrap();
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    let mut b = port(&["127.0.0.1:0"], false, false);
    let lb = b.local_addrs()[0];
    // Middle packet has a source we do not own and one has mismatched families.
    let pkts = vec![
        (la, lb, b"one".to_vec()),
        (other, dst, b"x".to_vec()),
        (la, v6, b"y".to_vec()),
        (la, lb, b"two".to_vec()),
    ];
    assert_eq!(send_all(&mut a, &pkts), 2);
    assert_eq!(a.stats().tx_no_socket, 2);
    let got = recv_n(&mut b, 2, 8);
    let data: Vec<_> = got.iter().map(|g| g.2.clone()).collect();
    assert_eq!(data, vec![b"one".to_vec(), b"two".to_vec()]);
}

/// Informational: bounded send/receive loop; prints packets per second, asserts only
/// that traffic flowed.
fn smoke(gso: bool, gro: bool) {
    let mut a = port(&["127.0.0.1:0"], gso, gro);
    let mut b = port(&["127.0.0.1:0"], gso, gro);
    let (la, lb) = (a.local_addrs()[0], b.local_addrs()[0]);
    let burst = 64;
    let mut tx = PacketBuf::alloc(burst);
    let mut rx = PacketBuf::alloc(burst);
    let (mut sent, mut recvd) = (0u64, 0u64);
    let start = Instant::now();
    let limit = Duration::from_millis(700);
    let mut rounds = 0u64;
    let data = payload(0, 1000);
    while start.elapsed() < limit && rounds < 200_000 {
        rounds += 1;
        for t in tx.iter_mut() {
            t.fill(&data);
            t.meta.src = la;
            t.meta.dst = lb;
        }
        sent += a.tx_burst(&mut tx).unwrap() as u64;
        loop {
            let n = b.rx_burst(&mut rx).unwrap();
            recvd += n as u64;
            if n < burst {
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "udp smoke gso={gso} gro={gro}: sent {sent} ({:.0} pps), received {recvd} ({:.0} pps), 1000 B, burst {burst}",
        sent as f64 / secs,
        recvd as f64 / secs
    );
    assert!(recvd > 0);
}

#[test]
fn throughput_smoke() {
    smoke(false, false);
    smoke(true, true);
}
