//! `mobiked run`: static SAs from a configuration file, until SIGINT/SIGTERM.
//!
//! The main thread is the control plane: it installs the configuration into the shared
//! tables, starts one worker per configured core, and then serves the control socket,
//! drains the punt queues and worker events, and reclaims retired table versions,
//! sleeping in poll(2) in between (`wait`).

use crate::wait::{self, PollSet, StopSignal};
use control::config::{CipherBackend, ClearBackend, Mode, NextHop, PathConf, Poll, StaticConfig};
use control::ctl::{CtlServer, PathInfo, Request, Response};
use dataplane::buf::LARGE_FRAME;
use dataplane::io::afpacket::{self, AfPacketConfig, AfPacketPort, KernelShield};
use dataplane::io::pcap::Pcap;
use dataplane::io::tun::{TunConfig, TunPort};
use dataplane::io::udp::{UdpConfig, UdpPort};
use dataplane::io::BurstIo;
use dataplane::worker::{
    Fabric, FabricConfig, ForwardMode, Idle, Worker, WorkerConfig, WorkerEvent,
};
use dataplane::PacketBuf;
use shared::clock::now_ns;
use shared::path::{Encap, L2};
use shared::table::TableWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{info, warn};

pub(crate) type Port = Box<dyn BurstIo>;

/// How long `next_hop_mac: auto` waits for the kernel to resolve a neighbour.
pub(crate) const NEIGHBOUR_TIMEOUT: Duration = Duration::from_secs(3);

pub fn main(config: &Path) -> Result<(), String> {
    let cfg = control::config::load(config)
        .map_err(|e| format!("{}: configuration has errors:\n{e}", config.display()))?;
    let tc = cfg.table_config();
    let mut writer = TableWriter::new(tc);
    let names = cfg
        .install(&mut writer, |p| resolve_l2(&cfg, p))
        .map_err(|e| format!("installing the configuration: {e}"))?;
    let fabric = Fabric::with_config(fabric_config(&cfg));

    // Keep the host stack from answering our outer packets with ICMP errors when it sees
    // them too (AF_PACKET is a tap, not a diversion).
    let _shields = shields(&cfg)?;

    let mut handles = Vec::new();
    for w in 0..cfg.dataplane.workers {
        let (cipher, clear) = open_ports(&cfg, w)?;
        let wc = worker_config(&cfg, w, &tc)?;
        let reader = writer
            .reader(w)
            .ok_or_else(|| format!("worker {w}: no table reader slot"))?;
        let worker = Worker::new(wc, cipher, clear, reader, fabric.clone());
        handles.push(
            worker
                .spawn(format!("mobiked-w{w}"))
                .map_err(|e| format!("starting worker {w}: {e}"))?,
        );
    }
    info!(
        workers = cfg.dataplane.workers,
        paths = cfg.paths.len(),
        tunnels = cfg.tunnels.len(),
        "running"
    );

    let signals = StopSignal::register().map_err(|e| format!("signal: {e}"))?;
    let mut ctl = match &cfg.control.socket {
        Some(p) => {
            Some(CtlServer::bind(p).map_err(|e| format!("control.socket {}: {e}", p.display()))?)
        }
        None => None,
    };
    let mut punted = PacketBuf::new();
    let mut punted_large = PacketBuf::with_frame(LARGE_FRAME);
    let mut ike_dropped = 0u64;
    let mut set = PollSet::default();
    while !signals.requested() {
        if let Some(server) = ctl.as_mut() {
            server.poll(|req| handle(req, &cfg, &names, &mut writer, &fabric));
        }
        // There is no IKE in static mode: count what peers send and let it go.
        while fabric.punt.recv_swap(&mut punted) {
            ike_dropped += 1;
        }
        while fabric.punt_large.recv_swap(&mut punted_large) {
            ike_dropped += 1;
        }
        while let Some(ev) = fabric.events.pop() {
            match ev {
                WorkerEvent::PathOnWire {
                    path,
                    generation,
                    published_ns,
                    wire_ns,
                    ..
                } => info!(
                    path,
                    generation,
                    publish_to_wire_us = wire_ns.saturating_sub(published_ns) as f64 / 1e3,
                    "path on the wire"
                ),
                WorkerEvent::PeerMoved { spi, from, to, .. } => {
                    info!(spi = format_args!("{spi:#010x}"), %from, %to, "peer sends from a new address")
                }
            }
        }
        writer.reclaim();

        // Sleep until a request, punted IKE or a signal; reclaim soon after a publication.
        let now = now_ns();
        let reclaim = (writer.pending_reclaim() > 0).then_some(now + wait::RECLAIM_NS);
        let mut timeout = wait::timeout_ms(now, [reclaim], wait::IDLE_CAP_MS);
        set.clear();
        let signal = set.add(signals.fd(), libc::POLLIN);
        if let Some(server) = ctl.as_ref() {
            for (fd, events) in server.wait_fds() {
                set.add(fd, events);
            }
        }
        let (punt_i, punt_empty) = wait::arm_punt(&mut set, &fabric.punt);
        let (large_i, large_empty) = wait::arm_punt(&mut set, &fabric.punt_large);
        if !(punt_empty && large_empty) {
            timeout = 0;
        }
        set.wait(timeout);
        wait::finish_punt(&set, &fabric.punt, punt_i);
        wait::finish_punt(&set, &fabric.punt_large, large_i);
        if set.ready(signal) {
            signals.drain();
        }
    }
    info!(ike_dropped, "stopping");
    fabric.stop();
    for h in handles {
        let _ = h.join();
    }
    for (name, v) in fabric.counters.nonzero() {
        info!(counter = name, value = v);
    }
    Ok(())
}

/// The queues between the planes as the `dataplane` section sizes them: the punt queue
/// by `punt_queue` (a fixed default, not scaled by `max_sas`), wakeups for workers that
/// may sleep.
pub(crate) fn fabric_config(cfg: &StaticConfig) -> FabricConfig {
    FabricConfig {
        workers: cfg.dataplane.workers,
        punt_queue: cfg.dataplane.punt_queue,
        sleeping_workers: cfg.dataplane.poll == Poll::Adaptive,
    }
}

/// A worker's configuration from the `dataplane` and `clear` sections.
pub(crate) fn worker_config(
    cfg: &StaticConfig,
    w: usize,
    tc: &shared::table::TableConfig,
) -> Result<WorkerConfig, String> {
    let mut wc = WorkerConfig::new(w as u16, tc);
    wc.core = cfg.dataplane.cores.as_ref().and_then(|c| c.get(w).copied());
    wc.burst = cfg.dataplane.burst;
    wc.mode = match cfg.dataplane.mode {
        Mode::Esp => ForwardMode::Esp,
        Mode::Plain => ForwardMode::Plain,
    };
    wc.idle = match cfg.dataplane.poll {
        Poll::Busy => Idle::Busy,
        Poll::Adaptive => Idle::Adaptive,
    };
    wc.replay_capacity = cfg
        .tunnels
        .iter()
        .map(|t| t.inbound.replay_window)
        .chain([cfg.dataplane.replay_window])
        .max()
        .unwrap_or(dataplane::replay::DEFAULT_WINDOW);
    if let ClearBackend::AfPacket {
        interface,
        next_hop_mac,
        ..
    } = &cfg.clear.backend
    {
        wc.clear_l2 = Some(L2 {
            src_mac: afpacket::interface_mac(interface)
                .map_err(|e| format!("clear.interface `{interface}`: {e}"))?,
            // Without a configured next hop, broadcast: a point-to-point LAN link
            // delivers it to the one host there.
            dst_mac: next_hop_mac.unwrap_or([0xff; 6]),
        });
    }
    Ok(wc)
}

fn handle(
    req: Request,
    cfg: &StaticConfig,
    names: &control::config::InstalledNames,
    writer: &mut TableWriter,
    fabric: &Fabric,
) -> Response {
    match req {
        Request::PathSet {
            name,
            local,
            remote,
        } => {
            let Some(id) = names.path(&name) else {
                return Response::Error {
                    message: format!("no path named `{name}`"),
                };
            };
            let Some(old) = writer.path(id).copied() else {
                return Response::Error {
                    message: format!("path `{name}` is not installed"),
                };
            };
            let conf = &cfg.paths[id as usize];
            let moved = PathConf {
                local,
                remote,
                ..conf.clone()
            };
            let l2 = match old.spec.l2 {
                Some(_) => match resolve_l2(cfg, &moved) {
                    Ok(l2) => l2,
                    Err(e) => return Response::Error { message: e },
                },
                None => None,
            };
            let mut spec = old.spec;
            spec.local = local;
            spec.remote = remote;
            spec.l2 = l2;
            match writer.set_path(id, spec) {
                Ok(generation) => {
                    let p = writer.publish();
                    info!(path = %name, %local, %remote, generation, published_ns = p.published_ns, "path moved");
                    Response::PathMoved { name, generation }
                }
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            }
        }
        Request::Sas | Request::Move { .. } => Response::Error {
            message: "`mobiked run` has static SAs only; IKE SAs are listed by `mobiked gateway` and `mobiked client`".into(),
        },
        Request::Stats => Response::Stats {
            counters: fabric
                .counters
                .nonzero()
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
        },
        Request::Paths => {
            let snap = writer.published();
            Response::Paths {
                paths: names
                    .paths
                    .iter()
                    .filter_map(|(name, &id)| {
                        let r = snap.path(id)?;
                        Some(PathInfo {
                            name: name.clone(),
                            id,
                            local: r.spec.local,
                            remote: r.spec.remote,
                            encap: match r.spec.encap {
                                Encap::Udp => "udp".into(),
                                Encap::Esp => "esp".into(),
                            },
                            generation: r.generation,
                            published_ns: r.published_ns,
                        })
                    })
                    .collect(),
            }
        }
    }
}

/// Ethernet addresses of a path on the afpacket backend; `None` where the kernel routes.
fn resolve_l2(cfg: &StaticConfig, p: &PathConf) -> Result<Option<L2>, String> {
    let CipherBackend::AfPacket { interface, .. } = &cfg.cipher.backend else {
        return Ok(None);
    };
    let src_mac = afpacket::interface_mac(interface)
        .map_err(|e| format!("cipher.interface `{interface}`: {e}"))?;
    let dst_mac = match p.next_hop_mac.unwrap_or(NextHop::Auto) {
        NextHop::Mac(m) => m,
        NextHop::Auto => afpacket::resolve_neighbor(interface, p.remote.ip(), NEIGHBOUR_TIMEOUT)
            .map_err(|e| {
                format!(
                    "paths `{}`: cannot resolve the MAC of {} on {interface}: {e}; \
                     check the route or set next_hop_mac",
                    p.name,
                    p.remote.ip()
                )
            })?,
    };
    Ok(Some(L2 { src_mac, dst_mac }))
}

fn shields(cfg: &StaticConfig) -> Result<Vec<KernelShield>, String> {
    if !matches!(cfg.cipher.backend, CipherBackend::AfPacket { .. }) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let esp = cfg.paths.iter().any(|p| p.encap == Encap::Esp);
    for p in &cfg.paths {
        if p.encap == Encap::Udp && !seen.contains(&p.local) {
            seen.push(p.local);
            out.push(
                KernelShield::open(Some((p.local.ip(), p.local.port())), false)
                    .map_err(|e| format!("paths `{}`: guarding {}: {e}", p.name, p.local))?,
            );
        }
    }
    if esp {
        out.push(KernelShield::open(None, true).map_err(|e| format!("guarding ESP: {e}"))?);
    }
    Ok(out)
}

fn pcap_path(base: &Path, worker: usize, workers: usize) -> PathBuf {
    if workers == 1 {
        return base.to_path_buf();
    }
    let mut s = base.as_os_str().to_owned();
    s.push(format!(".w{worker}"));
    PathBuf::from(s)
}

fn with_pcap(port: Port, pcap: &Option<PathBuf>, w: usize, workers: usize) -> Result<Port, String> {
    match pcap {
        Some(p) => {
            let path = pcap_path(p, w, workers);
            Ok(Box::new(
                Pcap::new(port, &path).map_err(|e| format!("pcap {}: {e}", path.display()))?,
            ))
        }
        None => Ok(port),
    }
}

fn open_ports(cfg: &StaticConfig, w: usize) -> Result<(Port, Port), String> {
    let workers = cfg.dataplane.workers;
    let cipher = open_cipher(cfg, w)?;
    let clear = open_clear(cfg, w)?;
    if workers > 1 {
        warn!("several workers: SAs are spread round-robin; packets reaching the wrong worker are handed over");
    }
    Ok((cipher, clear))
}

/// Worker `w`'s cipher-side port (with its pcap writer if configured).
pub(crate) fn open_cipher(cfg: &StaticConfig, w: usize) -> Result<Port, String> {
    open_cipher_shared(cfg, w, false)
}

/// As [`open_cipher`]; `reuse_addr`: the `udp` backend's sockets share their port with
/// other sockets of this host (`SO_REUSEADDR`, see `UdpConfig::reuse_addr`).
pub(crate) fn open_cipher_shared(
    cfg: &StaticConfig,
    w: usize,
    reuse_addr: bool,
) -> Result<Port, String> {
    let workers = cfg.dataplane.workers;
    let cipher: Port = match &cfg.cipher.backend {
        CipherBackend::Udp { bind, gso, gro } => Box::new(
            UdpPort::open(&UdpConfig {
                bind: bind.clone(),
                gso: *gso,
                gro: *gro,
                reuse_port: workers > 1,
                reuse_addr,
                ..UdpConfig::default()
            })
            .map_err(|e| format!("cipher.bind {bind:?}: {e}"))?,
        ),
        CipherBackend::AfPacket { interface, rx } => Box::new(
            AfPacketPort::open(&AfPacketConfig {
                interface: interface.clone(),
                fanout: (workers > 1).then_some(0x6d6b),
                rx_ring: rx.ring,
                rx_block_timeout_ms: rx.block_timeout_ms,
                ..AfPacketConfig::default()
            })
            .map_err(|e| format!("cipher.interface `{interface}`: {e}"))?,
        ),
    };
    with_pcap(cipher, &cfg.cipher.pcap, w, workers)
}

/// Worker `w`'s clear-side port (with its pcap writer if configured).
pub(crate) fn open_clear(cfg: &StaticConfig, w: usize) -> Result<Port, String> {
    let workers = cfg.dataplane.workers;
    let clear: Port = match &cfg.clear.backend {
        ClearBackend::Tun { name } => Box::new(
            TunPort::open(&TunConfig {
                name: name.clone(),
                mtu: None,
                up: true,
            })
            .map_err(|e| format!("clear.name `{name}`: {e}"))?,
        ),
        ClearBackend::AfPacket { interface, rx, .. } => Box::new(
            AfPacketPort::open(&AfPacketConfig {
                interface: interface.clone(),
                fanout: (workers > 1).then_some(0x6d6c),
                rx_ring: rx.ring,
                rx_block_timeout_ms: rx.block_timeout_ms,
                ..AfPacketConfig::default()
            })
            .map_err(|e| format!("clear.interface `{interface}`: {e}"))?,
        ),
    };
    with_pcap(clear, &cfg.clear.pcap, w, workers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::io::mem;
    use dataplane::io::null::NullPort;
    use dataplane::io::Layer;
    use shared::counters::Counter;

    /// Sends `n` IKE messages (non-ESP marker, then the message number) from `peer` to
    /// `me` through `wire`, the worker handling each burst but nobody draining the punt
    /// queue, numbered from `first`.
    fn send_ike(
        wire: &mut mem::MemPort,
        w: &mut Worker<mem::MemPort, NullPort>,
        first: usize,
        n: usize,
        peer: std::net::SocketAddr,
        me: std::net::SocketAddr,
    ) {
        let mut sent = 0;
        let mut bufs = PacketBuf::alloc(256);
        while sent < n {
            let k = (n - sent).min(bufs.len());
            for (i, b) in bufs[..k].iter_mut().enumerate() {
                let mut m = [0u8; 32];
                m[4..12].copy_from_slice(&((first + sent + i) as u64).to_be_bytes());
                assert!(b.fill(&m));
                b.meta.src = peer;
                b.meta.dst = me;
            }
            assert_eq!(wire.tx_burst(&mut bufs[..k]).unwrap(), k);
            sent += k;
            while w.poll_once() > 0 {}
        }
    }

    /// The punt queue has its default size whatever `max_sas` (the memory of a gateway
    /// with no tunnel does not follow the table's size). A burst as large as the queue
    /// reaches the control plane whole even when the control plane drains only after
    /// it; what goes beyond is dropped and counted as `drop_punt_full`, and once the
    /// queue is drained IKE is punted again.
    #[test]
    fn the_punt_queue_holds_its_size_and_counts_what_goes_beyond() {
        const OVER: usize = 500;
        let q = control::config::PUNT_QUEUE_DEFAULT;
        let cfg = control::config::parse(
            "dataplane: { max_sas: 200000 }\n\
             cipher: { backend: udp, bind: ['127.0.0.1:4500'] }\n\
             clear: { backend: tun, name: t0 }\n\
             connections: [{ name: c, psk: 'a long secret' }]\n",
        )
        .expect("configuration");
        assert_eq!(cfg.dataplane.punt_queue, q);
        let tc = cfg.table_config();
        let mut writer = TableWriter::new(tc);
        writer.publish();
        let fabric = Fabric::with_config(fabric_config(&cfg));
        assert_eq!(fabric.punt.spare(), q, "buffers preallocated");
        let (port, mut wire) = mem::pair(256, Layer::Datagram);
        let mut wc = worker_config(&cfg, 0, &tc).unwrap();
        wc.idle = Idle::Busy;
        let reader = writer.reader(0).unwrap();
        let mut w = Worker::new(wc, port, NullPort::new(Layer::Ip), reader, fabric.clone());
        let peer: std::net::SocketAddr = "192.0.2.7:4500".parse().unwrap();
        let me: std::net::SocketAddr = "127.0.0.1:4500".parse().unwrap();
        send_ike(&mut wire, &mut w, 0, q + OVER, peer, me);
        assert_eq!(fabric.counters.total(Counter::PuntIke), q as u64);
        assert_eq!(fabric.counters.total(Counter::DropPuntFull), OVER as u64);
        let mut got = PacketBuf::new();
        for i in 0..q {
            assert!(fabric.punt.recv_swap(&mut got), "message {i} missing");
            assert_eq!(got.data()[..8], (i as u64).to_be_bytes());
            assert_eq!((got.meta.src, got.meta.dst), (peer, me));
        }
        assert!(
            !fabric.punt.recv_swap(&mut got),
            "the overflow was not queued"
        );
        // Drained: the queue takes IKE again, with the same buffers.
        send_ike(&mut wire, &mut w, q + OVER, 10, peer, me);
        assert_eq!(fabric.counters.total(Counter::PuntIke), q as u64 + 10);
        assert_eq!(fabric.counters.total(Counter::DropPuntFull), OVER as u64);
        for i in 0..10 {
            assert!(fabric.punt.recv_swap(&mut got));
            assert_eq!(got.data()[..8], ((q + OVER + i) as u64).to_be_bytes());
        }
        assert_eq!(fabric.punt.spare(), q);
        assert!(!fabric.punt.recv_swap(&mut got));
    }
}
