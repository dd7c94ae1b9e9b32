//! Workers end to end over in-process links: two endpoints with static SAs, a test-owned
//! "wire" between them, and the counters, events and queues a worker exposes.

use mobiked_dataplane as dataplane;

use dataplane::buf::PacketBuf;
use dataplane::io::mem::{self, MemPort};
use dataplane::io::{BurstIo, Layer};
use dataplane::ip;
use dataplane::worker::{Fabric, Idle, Worker, WorkerConfig, WorkerEvent};
use shared::counters::Counter;
use shared::path::{Encap, PathSpec, L2};
use shared::policy::Tunnel;
use shared::sa::{EspCipher, EspKey, InboundSpec, OutboundSpec};
use shared::table::{TableConfig, TableWriter};
use std::net::SocketAddr;
use std::sync::Arc;

const KEY_AB: [u8; 20] = [0x11; 20];
const KEY_BA: [u8; 20] = [0x22; 20];

fn key(k: &[u8]) -> EspKey {
    EspKey::new(EspCipher::AesGcm16_128, k).unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Side {
    writer: TableWriter,
    fabric: Arc<Fabric>,
    workers: Vec<Worker<MemPort, MemPort>>,
    /// The test's end of each worker's cipher port.
    wire: Vec<MemPort>,
    /// The test's end of each worker's clear port.
    lan: Vec<MemPort>,
}

struct EndpointSpec {
    local: &'static str,
    remote: &'static str,
    local_ts: &'static str,
    remote_ts: &'static str,
    out_spi: u32,
    out_key: [u8; 20],
    in_spi: u32,
    in_key: [u8; 20],
    owner: u16,
    /// Both directions' transform; the keying material repeats the key arrays' first
    /// byte to the transform's length (for AES-GCM-128 that is the arrays themselves).
    cipher: EspCipher,
}

fn key_for(cipher: EspCipher, k: &[u8; 20]) -> EspKey {
    EspKey::new(cipher, &vec![k[0]; cipher.keymat_len()]).unwrap()
}

fn endpoint(e: &EndpointSpec, workers: usize, cipher_layer: Layer, clear_layer: Layer) -> Side {
    let tc = TableConfig::sized(workers, 16);
    let mut writer = TableWriter::new(tc);
    writer
        .set_path(
            0,
            PathSpec {
                local: sa(e.local),
                remote: sa(e.remote),
                encap: Encap::Udp,
                l2: Some(L2 {
                    src_mac: [2, 0, 0, 0, 0, 1],
                    dst_mac: [2, 0, 0, 0, 0, 2],
                }),
                keepalive_ms: 0,
            },
        )
        .unwrap();
    writer
        .set_tunnel(Tunnel {
            id: 0,
            local_ts: vec![e.local_ts.parse().unwrap()],
            remote_ts: vec![e.remote_ts.parse().unwrap()],
        })
        .unwrap();
    writer
        .set_outbound(OutboundSpec {
            spi: e.out_spi,
            owner: e.owner,
            esn: false,
            key: key_for(e.cipher, &e.out_key),
            path: 0,
            tunnel: 0,
        })
        .unwrap();
    writer
        .add_inbound(InboundSpec {
            spi: e.in_spi,
            owner: e.owner,
            esn: false,
            replay_window: 64,
            key: key_for(e.cipher, &e.in_key),
            tunnel: 0,
        })
        .unwrap();
    writer.publish();
    let fabric = Fabric::new(workers);
    let mut ws = Vec::new();
    let mut wire = Vec::new();
    let mut lan = Vec::new();
    for id in 0..workers {
        let (c, cw) = mem::pair(256, cipher_layer);
        let (l, lw) = mem::pair(256, clear_layer);
        let mut cfg = WorkerConfig::new(id as u16, &tc);
        cfg.idle = Idle::Busy;
        cfg.burst = 32;
        cfg.replay_capacity = 1024;
        if clear_layer == Layer::Ethernet {
            cfg.clear_l2 = Some(L2 {
                src_mac: [2, 0, 0, 0, 1, 1],
                dst_mac: [2, 0, 0, 0, 1, 2],
            });
        }
        let r = writer.reader(id).unwrap();
        ws.push(Worker::new(cfg, c, l, r, fabric.clone()));
        wire.push(cw);
        lan.push(lw);
    }
    Side {
        writer,
        fabric,
        workers: ws,
        wire,
        lan,
    }
}

fn a_spec(owner: u16) -> EndpointSpec {
    EndpointSpec {
        local: "192.0.2.1:4500",
        remote: "198.51.100.2:4500",
        local_ts: "10.1.0.0/24",
        remote_ts: "10.2.0.0/24",
        out_spi: 0x1001,
        out_key: KEY_AB,
        in_spi: 0x2001,
        in_key: KEY_BA,
        owner,
        cipher: EspCipher::AesGcm16_128,
    }
}

fn b_spec() -> EndpointSpec {
    EndpointSpec {
        local: "198.51.100.2:4500",
        remote: "192.0.2.1:4500",
        local_ts: "10.2.0.0/24",
        remote_ts: "10.1.0.0/24",
        out_spi: 0x2001,
        out_key: KEY_BA,
        in_spi: 0x1001,
        in_key: KEY_AB,
        owner: 0,
        cipher: EspCipher::AesGcm16_128,
    }
}

/// An inner UDP packet 10.1.0.5 -> 10.2.0.7 carrying `tag` (and filler up to `len`).
fn inner(tag: u32, len: usize) -> PacketBuf {
    let mut b = PacketBuf::new();
    ip::build_udp_packet(&mut b, sa("10.1.0.5:1000"), sa("10.2.0.7:2000"), len, |p| {
        p.fill(0xab);
        p[..4].copy_from_slice(&tag.to_be_bytes());
    })
    .unwrap();
    b
}

fn send(port: &mut MemPort, pkts: Vec<PacketBuf>) {
    let mut pkts = pkts;
    let n = pkts.len();
    assert_eq!(port.tx_burst(&mut pkts).unwrap(), n);
}

fn recv_all(port: &mut MemPort) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut bufs = PacketBuf::alloc(64);
    loop {
        let n = port.rx_burst(&mut bufs).unwrap();
        if n == 0 {
            return out;
        }
        for b in bufs[..n].iter_mut() {
            out.push(b.data().to_vec());
            b.reset();
        }
    }
}

/// Moves everything from one test-owned wire end to another, returning the frames.
fn shuttle(from: &mut MemPort, to: &mut MemPort) -> Vec<Vec<u8>> {
    let frames = recv_all(from);
    let bufs: Vec<PacketBuf> = frames
        .iter()
        .map(|f| {
            let mut b = PacketBuf::new();
            assert!(b.fill(f));
            b
        })
        .collect();
    if !bufs.is_empty() {
        send(to, bufs);
    }
    frames
}

fn counter(side: &Side, c: Counter) -> u64 {
    side.fabric.counters.total(c)
}

#[test]
fn round_trip_and_path_change_follow_the_published_record() {
    for layer in [Layer::Ip, Layer::Ethernet] {
        let mut a = endpoint(&a_spec(0), 1, layer, Layer::Ip);
        let mut b = endpoint(&b_spec(), 1, layer, Layer::Ip);

        send(&mut a.lan[0], (0..10).map(|i| inner(i, 200)).collect());
        a.workers[0].poll_once();
        let frames = shuttle(&mut a.wire[0], &mut b.wire[0]);
        assert_eq!(frames.len(), 10, "{layer:?}");
        for f in &frames {
            let o = ip::parse_outer(f, layer).unwrap();
            assert_eq!(o.src, sa("192.0.2.1:4500"));
            assert_eq!(o.dst, sa("198.51.100.2:4500"));
            assert_eq!(o.encap, Encap::Udp);
        }
        b.workers[0].poll_once();
        let got = recv_all(&mut b.lan[0]);
        assert_eq!(got.len(), 10);
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g, inner(i as u32, 200).data(), "inner packet {i} intact");
        }
        assert_eq!(counter(&a, Counter::EncapPackets), 10);
        assert_eq!(counter(&b, Counter::DecapPackets), 10);

        // Move A's path: the very next packet carries the new outer header.
        let gen = a
            .writer
            .set_path(
                0,
                PathSpec {
                    local: sa("192.0.2.9:4500"),
                    remote: sa("198.51.100.2:4500"),
                    encap: Encap::Udp,
                    l2: Some(L2::default()),
                    keepalive_ms: 0,
                },
            )
            .unwrap();
        assert_eq!(gen, 2);
        let publication = a.writer.publish();
        send(&mut a.lan[0], vec![inner(100, 64)]);
        a.workers[0].poll_once();
        let frames = shuttle(&mut a.wire[0], &mut b.wire[0]);
        assert_eq!(frames.len(), 1);
        let o = ip::parse_outer(&frames[0], layer).unwrap();
        assert_eq!(o.src, sa("192.0.2.9:4500"), "new source after publication");
        let mut wire_event = None;
        while let Some(ev) = a.fabric.events.pop() {
            if let WorkerEvent::PathOnWire {
                generation,
                published_ns,
                wire_ns,
                ..
            } = ev
            {
                if generation == 2 {
                    wire_event = Some((published_ns, wire_ns));
                }
            }
        }
        let (published_ns, wire_ns) = wire_event.expect("path-on-wire event for generation 2");
        assert_eq!(published_ns, publication.published_ns);
        assert!(wire_ns >= published_ns);

        // B keeps its SA (same SPI, keys, replay window) and sees the peer move.
        b.workers[0].poll_once();
        assert_eq!(recv_all(&mut b.lan[0]).len(), 1);
        let moved = std::iter::from_fn(|| b.fabric.events.pop()).any(|e| {
            matches!(e, WorkerEvent::PeerMoved { spi: 0x1001, from, to, .. }
                if from == sa("192.0.2.1:4500") && to == sa("192.0.2.9:4500"))
        });
        assert!(moved, "receiver reports the new outer source");
    }
}

#[test]
fn hostile_packets_land_in_named_counters() {
    let mut a = endpoint(&a_spec(0), 1, Layer::Ip, Layer::Ip);
    let mut b = endpoint(&b_spec(), 1, Layer::Ip, Layer::Ip);
    send(&mut a.lan[0], (0..3).map(|i| inner(i, 100)).collect());
    a.workers[0].poll_once();
    let good = recv_all(&mut a.wire[0]);
    assert_eq!(good.len(), 3);
    let esp_off = ip::parse_outer(&good[0], Layer::Ip).unwrap().payload.start;

    let mut bad: Vec<Vec<u8>> = Vec::new();
    // Replay of a good packet (deliver it once first).
    bad.push(good[0].clone());
    bad.push(good[0].clone());
    // Corrupted ICV.
    let mut f = good[1].clone();
    let last = f.len() - 1;
    f[last] ^= 1;
    bad.push(f);
    // Unknown SPI.
    let mut f = good[2].clone();
    f[esp_off..esp_off + 4].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    bad.push(f);
    // Truncated ESP (runt) and a truncated IP header.
    let f = good[2][..esp_off + 6].to_vec();
    bad.push(f);
    bad.push(good[2][..10].to_vec());
    let frames: Vec<PacketBuf> = bad
        .iter()
        .map(|f| {
            let mut b = PacketBuf::new();
            b.fill(f);
            b
        })
        .collect();
    send(&mut b.wire[0], frames);
    b.workers[0].poll_once();
    assert_eq!(
        recv_all(&mut b.lan[0]).len(),
        1,
        "only the first copy is delivered"
    );
    assert_eq!(counter(&b, Counter::DropReplay), 1);
    assert_eq!(counter(&b, Counter::DropAuthFail), 1);
    assert_eq!(counter(&b, Counter::DropUnknownSpi), 1);
    assert!(counter(&b, Counter::DropRunt) + counter(&b, Counter::DropBadInner) >= 2);

    // A clear packet no tunnel covers.
    let mut stray = PacketBuf::new();
    ip::build_udp_packet(&mut stray, sa("10.9.0.1:1"), sa("10.2.0.1:2"), 10, |_| {}).unwrap();
    send(&mut a.lan[0], vec![stray]);
    a.workers[0].poll_once();
    assert_eq!(counter(&a, Counter::DropNoPolicy), 1);
}

#[test]
fn ike_is_punted_keepalives_absorbed_and_injected_packets_sent() {
    let mut b = endpoint(&b_spec(), 1, Layer::Datagram, Layer::Ip);
    let mk = |payload: &[u8]| {
        let mut p = PacketBuf::new();
        p.fill(payload);
        p.meta.src = sa("192.0.2.1:4500");
        p.meta.dst = sa("198.51.100.2:4500");
        p
    };
    let mut ike = vec![0u8; 4];
    ike.extend_from_slice(b"IKE message bytes");
    send(&mut b.wire[0], vec![mk(&ike), mk(&[0xff]), mk(&[1, 2])]);
    b.workers[0].poll_once();
    assert_eq!(counter(&b, Counter::PuntIke), 1);
    assert_eq!(counter(&b, Counter::KeepaliveRx), 1);
    assert_eq!(counter(&b, Counter::DropRunt), 1);
    let mut got = PacketBuf::new();
    assert!(b.fabric.punt.recv_swap(&mut got));
    assert_eq!(got.data(), b"IKE message bytes", "marker stripped");
    assert_eq!(got.meta.src, sa("192.0.2.1:4500"));

    // The control plane answers through the worker's socket.
    let mut reply = PacketBuf::new();
    reply.fill(b"\0\0\0\0reply");
    reply.meta.src = sa("198.51.100.2:4500");
    reply.meta.dst = sa("192.0.2.1:4500");
    assert!(b.fabric.inject[0].send_swap(&mut reply));
    b.workers[0].poll_once();
    let mut out = PacketBuf::alloc(4);
    assert_eq!(b.wire[0].rx_burst(&mut out).unwrap(), 1);
    assert_eq!(out[0].data(), b"\0\0\0\0reply");
    assert_eq!(out[0].meta.dst, sa("192.0.2.1:4500"));
}

#[test]
fn keepalive_follows_injected_time() {
    let mut b = endpoint(&b_spec(), 1, Layer::Datagram, Layer::Ip);
    let rec = *b.writer.path(0).unwrap();
    let mut spec = rec.spec;
    spec.keepalive_ms = 20_000;
    b.writer.set_path(0, spec).unwrap();
    b.writer.publish();
    let t0 = 1_000_000_000_000;
    b.workers[0].poll_at(t0);
    // The path has never carried traffic: one keepalive now, none again within 20 s.
    let mut out = PacketBuf::alloc(4);
    assert_eq!(b.wire[0].rx_burst(&mut out).unwrap(), 1);
    assert_eq!(out[0].data(), &[0xff]);
    b.workers[0].poll_at(t0 + 19_000_000_000);
    assert_eq!(b.wire[0].rx_burst(&mut out).unwrap(), 0);
    b.workers[0].poll_at(t0 + 20_000_000_000);
    assert_eq!(b.wire[0].rx_burst(&mut out).unwrap(), 1);
    assert_eq!(counter(&b, Counter::KeepaliveTx), 2);
}

#[test]
fn packets_for_another_workers_sa_are_handed_over() {
    // Two workers; the SAs belong to worker 1, traffic arrives at worker 0.
    let mut a = endpoint(&a_spec(1), 2, Layer::Ip, Layer::Ip);
    send(&mut a.lan[0], (0..5).map(|i| inner(i, 80)).collect());
    a.workers[0].poll_once();
    assert_eq!(counter(&a, Counter::HandoffOut), 5);
    assert!(recv_all(&mut a.wire[0]).is_empty());
    a.workers[1].poll_once();
    assert_eq!(counter(&a, Counter::HandoffIn), 5);
    let frames = recv_all(&mut a.wire[1]);
    assert_eq!(frames.len(), 5, "owner encrypts and sends");
    // Sequence numbers come from the owner's counter: 1..=5 in order.
    for (i, f) in frames.iter().enumerate() {
        let o = ip::parse_outer(f, Layer::Ip).unwrap();
        let esp = &f[o.payload];
        assert_eq!(
            u32::from_be_bytes(esp[4..8].try_into().unwrap()),
            i as u32 + 1
        );
    }
}

#[test]
fn seq_starts_over_for_a_new_sa_in_the_same_tunnel() {
    let mut a = endpoint(&a_spec(0), 1, Layer::Ip, Layer::Ip);
    send(&mut a.lan[0], (0..3).map(|i| inner(i, 80)).collect());
    a.workers[0].poll_once();
    assert_eq!(recv_all(&mut a.wire[0]).len(), 3);
    // Rekey: a new outbound SA for the tunnel.
    a.writer
        .set_outbound(OutboundSpec {
            spi: 0x1002,
            owner: 0,
            esn: false,
            key: key(&[0x33; 20]),
            path: 0,
            tunnel: 0,
        })
        .unwrap();
    a.writer.publish();
    send(&mut a.lan[0], vec![inner(9, 80)]);
    a.workers[0].poll_once();
    let f = recv_all(&mut a.wire[0]);
    let o = ip::parse_outer(&f[0], Layer::Ip).unwrap();
    let esp = &f[0][o.payload];
    assert_eq!(&esp[..4], &0x1002u32.to_be_bytes());
    assert_eq!(&esp[4..8], &1u32.to_be_bytes());
}

#[test]
fn ipv6_outer_and_inner_in_every_combination() {
    let outers = [
        ("192.0.2.1:4500", "198.51.100.2:4500"),
        ("[2001:db8::1]:4500", "[2001:db8:1::2]:4500"),
    ];
    let inners = [
        (
            "10.1.0.0/24",
            "10.2.0.0/24",
            "10.1.0.5:1000",
            "10.2.0.7:2000",
        ),
        (
            "fd00:1::/64",
            "fd00:2::/64",
            "[fd00:1::5]:1000",
            "[fd00:2::7]:2000",
        ),
    ];
    for (oa, ob) in outers {
        for (ts_a, ts_b, src, dst) in inners {
            for layer in [Layer::Ip, Layer::Ethernet] {
                let spec_a = EndpointSpec {
                    local: oa,
                    remote: ob,
                    local_ts: ts_a,
                    remote_ts: ts_b,
                    ..a_spec(0)
                };
                let spec_b = EndpointSpec {
                    local: ob,
                    remote: oa,
                    local_ts: ts_b,
                    remote_ts: ts_a,
                    ..b_spec()
                };
                let mut a = endpoint(&spec_a, 1, layer, Layer::Ip);
                let mut b = endpoint(&spec_b, 1, layer, Layer::Ip);
                let pkts: Vec<PacketBuf> = (0..4u8)
                    .map(|i| {
                        let mut p = PacketBuf::new();
                        ip::build_udp_packet(&mut p, sa(src), sa(dst), 300 + i as usize, |d| {
                            d.fill(i)
                        })
                        .unwrap();
                        p
                    })
                    .collect();
                let sent: Vec<Vec<u8>> = pkts.iter().map(|p| p.data().to_vec()).collect();
                send(&mut a.lan[0], pkts);
                a.workers[0].poll_once();
                let frames = shuttle(&mut a.wire[0], &mut b.wire[0]);
                assert_eq!(frames.len(), 4);
                let o = ip::parse_outer(&frames[0], layer).unwrap();
                assert_eq!((o.src, o.dst), (sa(oa), sa(ob)));
                b.workers[0].poll_once();
                let got = recv_all(&mut b.lan[0]);
                assert_eq!(got, sent, "outer {oa} inner {src} {layer:?}");
            }
        }
    }
}

#[test]
fn every_transform_round_trips_through_workers_and_counts_forgeries() {
    for cipher in EspCipher::ALL {
        let mut a = endpoint(
            &EndpointSpec {
                cipher,
                ..a_spec(0)
            },
            1,
            Layer::Ethernet,
            Layer::Ip,
        );
        let mut b = endpoint(
            &EndpointSpec { cipher, ..b_spec() },
            1,
            Layer::Ethernet,
            Layer::Ip,
        );
        // Sizes around the CBC block and a near-largest frame: padding, trailer and ICV
        // must fit the tail room.
        let sizes = [28, 29, 43, 44, 45, 1400, 1900];
        let batch = |a: &mut Side| {
            send(
                &mut a.lan[0],
                sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| inner(i as u32, n))
                    .collect(),
            );
            a.workers[0].poll_once();
            recv_all(&mut a.wire[0])
        };
        let deliver = |b: &mut Side, frames: &[Vec<u8>]| {
            let bufs: Vec<PacketBuf> = frames
                .iter()
                .map(|f| {
                    let mut p = PacketBuf::new();
                    assert!(p.fill(f));
                    p
                })
                .collect();
            send(&mut b.wire[0], bufs);
            b.workers[0].poll_once();
            recv_all(&mut b.lan[0])
        };
        let frames = batch(&mut a);
        assert_eq!(frames.len(), sizes.len(), "{cipher}");
        let got = deliver(&mut b, &frames);
        assert_eq!(got.len(), sizes.len(), "{cipher}");
        for (i, (g, &n)) in got.iter().zip(&sizes).enumerate() {
            assert_eq!(g, inner(i as u32, n).data(), "{cipher}: inner packet {i}");
        }
        // A second batch with one byte of each ICV flipped on the wire: counted as
        // forgeries, and the window does not move, so the genuine packets still pass.
        let frames = batch(&mut a);
        let forged: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| {
                let mut f = f.clone();
                let last = f.len() - 1;
                f[last] ^= 0x10;
                f
            })
            .collect();
        assert!(deliver(&mut b, &forged).is_empty(), "{cipher}");
        assert_eq!(
            counter(&b, Counter::DropAuthFail),
            sizes.len() as u64,
            "{cipher}"
        );
        assert_eq!(deliver(&mut b, &frames).len(), sizes.len(), "{cipher}");
        assert_eq!(counter(&b, Counter::DropReplay), 0, "{cipher}");
        assert_eq!(counter(&a, Counter::DropNoTailroom), 0, "{cipher}");
        assert_eq!(counter(&b, Counter::DecapPackets), 2 * sizes.len() as u64);
    }
}
