//! The AF_PACKET port on a veth pair inside a private network namespace (needs root):
//! bursts across the pair byte for byte, ring wrap-around, fanout over two sockets,
//! neighbour lookups, and the kernel shield against ICMP unreachables.
//!
//! Each test runs on a thread that `unshare(CLONE_NEWNET)`s itself: the namespace is
//! anonymous, so it and its veth pair vanish when the thread ends, whatever happened.
//! A guard still deletes the veth pair explicitly on the way out.

extern crate mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::io::afpacket::{
    interface_index, interface_mac, resolve_neighbor, AfPacketConfig, AfPacketPort, KernelShield,
};
use dataplane::io::{BurstIo, Layer};
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?}");
}

/// A veth pair in the calling thread's namespace, deleted on drop.
struct Veth {
    a: String,
    b: String,
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

impl Veth {
    fn new(tag: &str) -> Veth {
        let pid = std::process::id();
        let v = Veth {
            a: format!("va{tag}{pid}"),
            b: format!("vb{tag}{pid}"),
        };
        ip(&["link", "add", &v.a, "type", "veth", "peer", "name", &v.b]);
        ip(&["link", "set", &v.a, "address", "02:00:00:00:00:0a", "up"]);
        ip(&["link", "set", &v.b, "address", "02:00:00:00:00:0b", "up"]);
        v
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.a]).status();
    }
}

/// Runs `f` on a thread in a fresh, anonymous network namespace with a veth pair.
fn with_veth<T: Send>(tag: &str, f: impl FnOnce(&Veth) -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare affects only this thread's namespaces.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
            ip(&["link", "set", "lo", "up"]);
            let v = Veth::new(tag);
            f(&v)
        })
        .join()
        .expect("namespace thread")
    })
}

fn open(ifname: &str, cfg: AfPacketConfig) -> AfPacketPort {
    AfPacketPort::open(&AfPacketConfig {
        interface: ifname.into(),
        ..cfg
    })
    .expect("open afpacket")
}

/// A test frame: Ethernet to B with the local-experimental EtherType 0x88b5, a 4-byte
/// sequence number and a pattern.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(18)];
    f[0..6].copy_from_slice(&MAC_B);
    f[6..12].copy_from_slice(&MAC_A);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (k, b) in f[18..].iter_mut().enumerate() {
        *b = (seq as usize * 31 + k) as u8;
    }
    f
}

fn seqs(frames: &[Vec<u8>]) -> Vec<(u32, usize)> {
    frames
        .iter()
        .map(|f| (u32::from_be_bytes([f[14], f[15], f[16], f[17]]), f.len()))
        .collect()
}

fn ours(d: &[u8]) -> bool {
    d.len() >= 18 && d[12..14] == [0x88, 0xb5]
}

fn send(port: &mut AfPacketPort, frames: &[Vec<u8>]) {
    let mut bufs = PacketBuf::alloc(frames.len());
    for (b, f) in bufs.iter_mut().zip(frames) {
        assert!(b.fill(f));
    }
    // Bounded retry while TX slots are still owned by the kernel.
    let mut off = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while off < frames.len() && Instant::now() < deadline {
        off += port.tx_burst(&mut bufs[off..]).unwrap();
    }
    assert_eq!(off, frames.len(), "all frames taken");
}

/// Polls until `want` test frames arrived (or two seconds passed).
fn recv(port: &mut AfPacketPort, want: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut bufs = PacketBuf::alloc(64);
    let deadline = Instant::now() + Duration::from_secs(2);
    while out.len() < want && Instant::now() < deadline {
        let n = port.rx_burst(&mut bufs).unwrap();
        out.extend(
            bufs[..n]
                .iter()
                .map(|b| b.data().to_vec())
                .filter(|d| ours(d)),
        );
        if n == 0 {
            std::thread::yield_now();
        }
    }
    out
}

#[test]
fn bursts_cross_the_veth_pair() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    with_veth("x", |v| {
        assert_eq!(interface_mac(&v.a).unwrap(), MAC_A);
        assert!(interface_index(&v.b).unwrap() > 0);
        assert!(interface_index("no-such-if0").is_err());
        let mut a = open(&v.a, AfPacketConfig::default());
        let mut b = open(&v.b, AfPacketConfig::default());
        assert_eq!(a.layer(), Layer::Ethernet);
        println!("afpacket tx ring: TPACKET_V{}", a.tx_version());
        assert!(a.tx_version() == 3 || a.tx_version() == 2);
        // Up to the veth MTU (1500) plus the Ethernet header.
        let sizes = [60usize, 64, 128, 1000, 1514, 18, 1513, 333];
        let mut seq = 0u32;
        for _ in 0..10 {
            let frames: Vec<_> = (0..32)
                .map(|i| {
                    seq += 1;
                    frame(seq, sizes[i % sizes.len()])
                })
                .collect();
            send(&mut a, &frames);
            let got = recv(&mut b, frames.len());
            assert!(got == frames, "got {:?}", seqs(&got));
        }
        // Our own transmissions never show up in A's RX ring.
        assert!(recv_nonblocking(&mut a).is_empty());
        // Runts and oversize frames are not taken.
        let mut bad = PacketBuf::alloc(1);
        assert!(bad[0].fill(&[0u8; 10]));
        assert_eq!(a.tx_burst(&mut bad).unwrap(), 0);
        assert_eq!(a.stats().tx_bad_len, 1);
    });
}

fn recv_nonblocking(port: &mut AfPacketPort) -> Vec<Vec<u8>> {
    let mut bufs = PacketBuf::alloc(64);
    let n = port.rx_burst(&mut bufs).unwrap();
    bufs[..n]
        .iter()
        .map(|b| b.data().to_vec())
        .filter(|d| ours(d))
        .collect()
}

#[test]
fn rings_wrap_around() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    with_veth("w", |v| {
        // Tiny rings: 16 TX slots, 4 RX blocks of 8 KiB, so both wrap many times.
        let small = AfPacketConfig {
            block_size: 8192,
            block_count: 4,
            frame_size: 2048,
            ..AfPacketConfig::default()
        };
        let mut a = open(&v.a, small.clone());
        let mut b = open(&v.b, small);
        let mut seq = 0u32;
        let start = Instant::now();
        for round in 0..300u32 {
            let frames: Vec<_> = (0..12)
                .map(|i| {
                    seq += 1;
                    frame(seq, 60 + ((round as usize * 97 + i * 131) % 1400))
                })
                .collect();
            send(&mut a, &frames);
            let got = recv(&mut b, frames.len());
            assert!(got == frames, "round {round}: got {:?}", seqs(&got));
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "afpacket wrap: {seq} frames in {secs:.3}s ({:.0} pps, one burst in flight)",
            seq as f64 / secs
        );
        assert_eq!(b.stats().rx_bad_block, 0);
    });
}

/// An IPv4/UDP frame to B with the given source port (so flows hash differently).
fn udp_frame(sport: u16, seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 4];
    f[0..6].copy_from_slice(&MAC_B);
    f[6..12].copy_from_slice(&MAC_A);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&32u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 76, 0, 1]);
    f[30..34].copy_from_slice(&[10, 76, 0, 2]);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&12u16.to_be_bytes());
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    f
}

#[test]
fn fanout_spreads_flows_over_two_sockets() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    with_veth("f", |v| {
        let group = (std::process::id() % 60000) as u16 + 1;
        let fan = AfPacketConfig {
            fanout: Some(group),
            ..AfPacketConfig::default()
        };
        let mut b1 = open(&v.b, fan.clone());
        let mut b2 = open(&v.b, fan);
        let mut a = open(&v.a, AfPacketConfig::default());
        let frames: Vec<_> = (0..64u32)
            .map(|i| udp_frame(10_000 + i as u16 * 7, i))
            .collect();
        send(&mut a, &frames);
        let is_test = |d: &Vec<u8>| d.len() == 46 && d[23] == 17 && d[36..38] == [0, 9];
        let mut got1 = Vec::new();
        let mut got2 = Vec::new();
        let mut bufs = PacketBuf::alloc(64);
        let deadline = Instant::now() + Duration::from_secs(2);
        while got1.len() + got2.len() < frames.len() && Instant::now() < deadline {
            let n = b1.rx_burst(&mut bufs).unwrap();
            got1.extend(bufs[..n].iter().map(|b| b.data().to_vec()).filter(is_test));
            let n = b2.rx_burst(&mut bufs).unwrap();
            got2.extend(bufs[..n].iter().map(|b| b.data().to_vec()).filter(is_test));
        }
        println!("fanout: {} / {}", got1.len(), got2.len());
        assert_eq!(
            got1.len() + got2.len(),
            frames.len(),
            "each frame exactly once"
        );
        assert!(
            !got1.is_empty() && !got2.is_empty(),
            "both sockets got flows"
        );
        let mut all: Vec<_> = got1.into_iter().chain(got2).collect();
        all.sort_by_key(|d| u32::from_be_bytes([d[42], d[43], d[44], d[45]]));
        assert_eq!(all, frames);
    });
}

#[test]
fn neighbor_lookup_reads_the_kernel_table() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    with_veth("n", |v| {
        ip(&["addr", "add", "10.75.0.1/24", "dev", &v.a]);
        ip(&[
            "neigh",
            "add",
            "10.75.0.9",
            "lladdr",
            "02:11:22:33:44:55",
            "dev",
            &v.a,
            "nud",
            "permanent",
        ]);
        ip(&[
            "-6",
            "neigh",
            "add",
            "fd75::9",
            "lladdr",
            "02:66:77:88:99:aa",
            "dev",
            &v.a,
            "nud",
            "permanent",
        ]);
        let t = Duration::from_millis(300);
        let v4: IpAddr = "10.75.0.9".parse().unwrap();
        let v6: IpAddr = "fd75::9".parse().unwrap();
        assert_eq!(
            resolve_neighbor(&v.a, v4, t).unwrap(),
            [0x02, 0x11, 0x22, 0x33, 0x44, 0x55]
        );
        assert_eq!(
            resolve_neighbor(&v.a, v6, t).unwrap(),
            [0x02, 0x66, 0x77, 0x88, 0x99, 0xaa]
        );
        // The entry belongs to A, not B.
        let e = resolve_neighbor(&v.b, v4, Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        // Nobody answers for .50: ARP is triggered, then the bounded wait gives up.
        let start = Instant::now();
        let e = resolve_neighbor(&v.a, "10.75.0.50".parse().unwrap(), t).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(2));
    });
}

/// An IPv4 packet from 10.77.0.3 to 10.77.0.2 in a frame to B, with `proto` and payload.
fn ip_frame(proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut f = vec![0u8; 14 + total];
    f[0..6].copy_from_slice(&MAC_B);
    f[6..12].copy_from_slice(&MAC_A);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let h = &mut f[14..34];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&[10, 77, 0, 3]);
    h[16..20].copy_from_slice(&[10, 77, 0, 2]);
    let mut sum = 0u32;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..].copy_from_slice(payload);
    f
}

fn udp_to(dport: u16) -> Vec<u8> {
    let mut u = vec![0u8; 8 + 4];
    u[0..2].copy_from_slice(&4500u16.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&12u16.to_be_bytes());
    ip_frame(17, &u)
}

/// ICMP destination-unreachable frames seen on A: (code, quoted protocol, quoted port).
fn icmp_unreachables(
    port: &mut AfPacketPort,
    until: impl Fn(&[(u8, u8, u16)]) -> bool,
) -> Vec<(u8, u8, u16)> {
    let mut out = Vec::new();
    let mut bufs = PacketBuf::alloc(64);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !until(&out) && Instant::now() < deadline {
        let n = port.rx_burst(&mut bufs).unwrap();
        for b in &bufs[..n] {
            let d = b.data();
            // Ethernet + IPv4 (20) + ICMP (8) + quoted IPv4 (20) + 4 bytes of its payload.
            if d.len() >= 14 + 20 + 8 + 20 + 4 && d[12..14] == [8, 0] && d[23] == 1 && d[34] == 3 {
                let q = &d[42..];
                let dport = u16::from_be_bytes([q[22], q[23]]);
                out.push((d[35], q[9], dport));
            }
        }
    }
    out
}

#[test]
fn kernel_shield_silences_icmp_unreachable() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    with_veth("s", |v| {
        // B is the host stack at 10.77.0.2; the sender 10.77.0.3 lives behind A.
        ip(&["addr", "add", "10.77.0.2/24", "dev", &v.b]);
        ip(&[
            "neigh",
            "add",
            "10.77.0.3",
            "lladdr",
            "02:00:00:00:00:0a",
            "dev",
            &v.b,
            "nud",
            "permanent",
        ]);
        let mut a = open(&v.a, AfPacketConfig::default());
        let esp = ip_frame(50, &[0, 0, 0x10, 0x01, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
        // Control: unshielded, the host answers UDP 4500 and ESP with unreachables.
        send(&mut a, &[udp_to(4500), esp.clone()]);
        let seen = icmp_unreachables(&mut a, |s| s.len() >= 2);
        assert!(
            seen.contains(&(3, 17, 4500)),
            "port unreachable without shield: {seen:?}"
        );
        assert!(
            seen.iter().any(|s| s.0 == 2 && s.1 == 50),
            "protocol unreachable: {seen:?}"
        );
        // Shielded: silence for 4500 and ESP, while 4501 (unshielded) still gets one,
        // which marks the point by which any earlier answer would have arrived.
        let shield = KernelShield::open(Some(("10.77.0.2".parse().unwrap(), 4500)), true).unwrap();
        send(&mut a, &[udp_to(4500), esp, udp_to(4501)]);
        let seen = icmp_unreachables(&mut a, |s| s.iter().any(|x| x.2 == 4501));
        assert_eq!(
            seen,
            vec![(3, 17, 4501)],
            "only the unshielded port answers"
        );
        drop(shield);
    });
}
