//! One IKE node: the sans-IO engine ([`Engine`]) driven by real sockets, its workers,
//! and the control plane's turn. `mobiked gateway` and `mobiked client` run one node
//! until a signal; `mobiked lab` runs a gateway node and a client node in one process.
//!
//! Sockets: one UDP socket per IKE listen address on the IKE port (500). The NAT-T port
//! (4500) belongs to the dataplane, which carries ESP-in-UDP, keepalives and IKE on one
//! port (RFC 3948 2.2): IKE arriving there is punted to the control thread with the
//! non-ESP marker stripped, and IKE leaving there is injected into a worker with the
//! marker put back.
//!
//! A turn: poll(2) on the IKE sockets, netlink, the punt queues' wakeup eventfds, the
//! control socket and the stop signal until the next timer is due (`wait`), feed the
//! engine, send what it asks, install its events with one publication, reclaim
//! retired table versions, serve the control socket.

use crate::run::{self, Port};
use crate::wait::{self, PollSet, StopSignal};
use control::addrwatch::AddrWatch;
use control::config::{CipherBackend, StaticConfig};
use control::ctl::CtlServer;
use control::engine::{Engine, Role};
use control::ike::crypto::random::SystemRandom;
use control::ike::sa::Transmit;
use control::installer::L2Resolver;
use dataplane::buf::LARGE_FRAME;
use dataplane::inject::Injector;
use dataplane::io::afpacket::{self, KernelShield};
use dataplane::io::{sys, BurstIo};
use dataplane::worker::{Fabric, Worker, WorkerEvent};
use dataplane::PacketBuf;
use shared::clock::now_ns;
use shared::path::{PathId, L2};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use tracing::{debug, info, warn};

/// SO_RCVBUF/SO_SNDBUF of the IKE sockets.
const IKE_SOCKET_BUFFER: usize = 4 << 20;
/// Largest IKE datagram read (RFC 7296 2: at least 1280 must be accepted; 64 KiB is
/// the UDP limit).
const MAX_DATAGRAM: usize = 65_535;
/// IKE messages held for the dataplane's inject channels before new ones are dropped
/// (at least; as many as the punt queue holds when that is larger, so that answering a
/// full punt queue loses nothing).
const INJECT_BACKLOG_MAX: usize = 8192;
/// While NAT-T messages wait for room in a worker's inject queue, look again this soon
/// (the worker empties its queue within a burst).
const INJECT_RETRY_NS: u64 = 1_000_000;
/// Datagrams fed to the engine per turn (punted and from the IKE sockets together).
/// A turn's answers leave only at its end: a peer whose whole window arrived in one
/// turn would wait for all of it to be answered, then send its next window in one
/// burst while this side idles. Short turns keep both ends busy (what is left is read
/// on the next turn, which does not sleep).
const TURN_DATAGRAMS: usize = 64;

/// How a node is set up besides its configuration.
pub struct NodeOptions<L> {
    /// Worker `w`'s clear-side port.
    pub clear: Box<dyn FnMut(usize) -> Result<L, String>>,
    /// Sockets share their ports with other sockets of this host (`SO_REUSEADDR`):
    /// two nodes in one process, one on specific addresses, one on the wildcard.
    pub reuse_addr: bool,
    /// Follow the host's addresses over netlink (MOBIKE's trigger).
    pub watch_addresses: bool,
    /// Keep the engine's timed events ([`Engine::observe`]).
    pub observe: bool,
    /// Worker thread names: `{prefix}-w{n}`.
    pub thread_prefix: &'static str,
}

/// A running node: see the module documentation.
pub struct Node<L: BurstIo + 'static> {
    pub engine: Engine,
    pub fabric: Arc<Fabric>,
    handles: Vec<JoinHandle<(Port, L)>>,
    io: Io,
    ctl: Option<CtlServer>,
    watch: Option<AddrWatch>,
    rx: Vec<u8>,
    punted: PacketBuf,
    punted_large: PacketBuf,
    _shields: Vec<KernelShield>,
}

control::named_counters! {
/// What the control plane's sockets counted (reported by `mobiked ctl stats`).
pub struct IoCounters {
    /// IKE messages for the NAT-T port dropped: the workers' inject queues and the
    /// backlog were full, or the message did not fit a buffer (retransmission recovers).
    inject_dropped => "inject_dropped",
    /// IKE messages the IKE socket did not take (or no socket for their address).
    send_failed => "ike_send_failed",
}
}

impl<L: BurstIo + 'static> Node<L> {
    /// Starts the workers and opens the sockets of `cfg` in `role`.
    pub fn open(
        cfg: &StaticConfig,
        role: Role,
        mut opts: NodeOptions<L>,
    ) -> Result<Node<L>, String> {
        let start = now_ns();
        let mut engine = Engine::new(cfg, role, Box::new(SystemRandom::new()), start)?;
        if opts.observe {
            engine.observe();
        }
        if let CipherBackend::AfPacket { interface, .. } = &cfg.cipher.backend {
            engine = engine.with_l2(l2_resolver(interface)?);
        }
        let tc = cfg.table_config();
        let fabric = Fabric::with_config(run::fabric_config(cfg));
        let shields = shields(cfg)?;

        let mut handles = Vec::new();
        for w in 0..cfg.dataplane.workers {
            let cipher = run::open_cipher_shared(cfg, w, opts.reuse_addr)?;
            let clear = (opts.clear)(w)?;
            let wc = run::worker_config(cfg, w, &tc)?;
            let reader = engine
                .table_reader(w)
                .ok_or_else(|| format!("worker {w}: no table reader slot"))?;
            let worker = Worker::new(wc, cipher, clear, reader, fabric.clone());
            handles.push(
                worker
                    .spawn(format!("{}-w{w}", opts.thread_prefix))
                    .map_err(|e| format!("starting worker {w}: {e}"))?,
            );
        }

        let mut sockets = Vec::new();
        for ip in &cfg.ike.listen {
            let local = SocketAddr::new(*ip, cfg.ike.port);
            let sock = ike_socket(local, opts.reuse_addr)
                .map_err(|e| format!("ike.listen {local}: {e}"))?;
            sockets.push(IkeSocket { sock, local });
        }
        // MOBIKE tries first the pairs the kernel has a route for.
        engine.set_route_oracle(Box::new(|from, to| {
            UdpSocket::bind(SocketAddr::new(from, 0))
                .and_then(|s| s.connect(SocketAddr::new(to, 9)))
                .is_ok()
        }));
        let mut watch = None;
        if opts.watch_addresses {
            match AddrWatch::open() {
                Ok(w) => watch = Some(w),
                Err(e) => {
                    warn!(error = %e, "no netlink address watch: MOBIKE will not see address changes")
                }
            }
        }
        if let Some(w) = watch.as_mut() {
            match w.dump() {
                Ok(addrs) => engine.set_host_addresses(start, addrs),
                Err(e) => warn!(error = %e, "netlink address dump"),
            }
        } else {
            engine.set_host_addresses(start, Vec::new());
        }
        info!(
            role = ?role,
            connections = engine.names().len(),
            listen = ?sockets.iter().map(|s| s.local).collect::<Vec<_>>(),
            nat_t = cfg.ike.port_nat_t,
            workers = cfg.dataplane.workers,
            udp_only = engine.installer().udp_only(),
            "running"
        );
        let ctl = match &cfg.control.socket {
            Some(p) => Some(
                CtlServer::bind(p).map_err(|e| format!("control.socket {}: {e}", p.display()))?,
            ),
            None => None,
        };
        let io = Io {
            sockets,
            fabric: fabric.clone(),
            port_nat_t: cfg.ike.port_nat_t,
            inject: Injector::new(
                cfg.dataplane.workers,
                cfg.dataplane.punt_queue.max(INJECT_BACKLOG_MAX),
            ),
            send_failed: 0,
            watch_fd: watch.as_ref().map(AddrWatch::fd),
            set: PollSet::default(),
        };
        Ok(Node {
            engine,
            fabric,
            handles,
            io,
            ctl,
            watch,
            rx: vec![0u8; MAX_DATAGRAM],
            punted: PacketBuf::new(),
            punted_large: PacketBuf::with_frame(LARGE_FRAME),
            _shields: shields,
        })
    }

    /// One turn of the control plane. `stop`: start deleting every IKE SA (once);
    /// sleeps at most `cap_ms` or until a descriptor (or `signals`) has work.
    /// Every worker event goes to `on_worker_event` too.
    pub fn turn(
        &mut self,
        stop: bool,
        cap_ms: u64,
        signals: Option<&StopSignal>,
        mut on_worker_event: impl FnMut(&WorkerEvent),
    ) {
        let now = now_ns();
        let engine = &mut self.engine;
        if !engine.is_stopping() && stop {
            // Delete every IKE SA so that peers do not keep sending into the void.
            engine.stop(now);
            engine.poll(now);
        }
        if engine.is_finished() {
            return;
        }
        // Sleep until the engine's next deadline or a descriptor has work.
        let timeout = wait::timeout_ns(
            now,
            [
                engine.next_deadline(now),
                (!self.io.inject.is_empty()).then_some(now + INJECT_RETRY_NS),
            ],
            cap_ms,
        );
        self.io.wait_readable(timeout, self.ctl.as_ref(), signals);
        let now = now_ns();
        if let Some(addrs) = self.watch.as_mut().and_then(AddrWatch::addresses_changed) {
            engine.host_addresses_changed(now, addrs);
        }
        // Punted first: those mostly complete setups already under way.
        let fabric = &self.fabric;
        let mut budget = TURN_DATAGRAMS;
        while budget > 0 && fabric.punt.recv_swap(&mut self.punted) {
            budget -= 1;
            let p = &self.punted;
            engine.handle_datagram(now, p.meta.dst, p.meta.src, p.data());
        }
        while budget > 0 && fabric.punt_large.recv_swap(&mut self.punted_large) {
            budget -= 1;
            let p = &self.punted_large;
            engine.handle_datagram(now, p.meta.dst, p.meta.src, p.data());
        }
        self.io.receive(engine, now, &mut self.rx, budget);
        while let Some(ev) = fabric.events.pop() {
            if let WorkerEvent::PeerMoved { spi, from, to, .. } = ev {
                engine.peer_moved(spi, from, to);
            }
            on_worker_event(&ev);
        }
        engine.poll(now);
        self.io.inject.flush(&self.io.fabric);
        while let Some((t, tag)) = engine.poll_transmit() {
            self.io.send(t, tag);
        }
        if let Some(server) = self.ctl.as_mut() {
            let io = &self.io;
            server.poll(|req| {
                let extra = stats_extra(&io.fabric, &io.counters());
                engine.command(now_ns(), req, extra)
            });
        }
    }

    /// Every counter of the node: the engine's, the dataplane's (summed over the
    /// workers) and the sockets'.
    pub fn stats(&self) -> Vec<(String, u64)> {
        let mut v = self.engine.stats();
        v.extend(stats_extra(&self.fabric, &self.io.counters()));
        v
    }

    /// After the engine finished (or to end at once): removes what is left from the
    /// tables, stops the workers and hands back their ports.
    pub fn close(mut self) -> Vec<(Port, L)> {
        self.engine.finish(now_ns());
        self.fabric.stop();
        let ports = self
            .handles
            .drain(..)
            .filter_map(|h| h.join().ok())
            .collect();
        let nonzero: Vec<(String, u64)> = self
            .engine
            .stats()
            .into_iter()
            .chain(
                self.io
                    .counters()
                    .entries()
                    .map(|(n, v)| (n.to_string(), v)),
            )
            .filter(|(_, v)| *v != 0)
            .collect();
        info!(counters = ?nonzero, "IKE counters");
        for (name, v) in self.fabric.counters.nonzero() {
            info!(counter = name, value = v);
        }
        ports
    }
}

/// A non-blocking UDP socket on `local` with large buffers (a burst of IKE_SA_INITs,
/// many clients at once or a flood, must queue in the kernel rather than be dropped
/// before the loop's next turn); `reuse_addr` as in [`NodeOptions`].
fn ike_socket(local: SocketAddr, reuse_addr: bool) -> std::io::Result<UdpSocket> {
    let opts = sys::UdpSocketOpts {
        reuse_port: false,
        reuse_addr,
        buffer: IKE_SOCKET_BUFFER,
    };
    let fd = sys::udp_socket(&local, &opts)?;
    Ok(UdpSocket::from(fd))
}

/// What `ctl stats` reports besides the engine's counters: every dataplane counter
/// (summed over the workers) and the sockets', zeros included.
fn stats_extra(fabric: &Fabric, io: &IoCounters) -> Vec<(String, u64)> {
    let totals = fabric.counters.totals();
    shared::counters::Counter::ALL
        .iter()
        .zip(totals)
        .map(|(c, v)| (c.name(), v))
        .chain(io.entries())
        .map(|(n, v)| (n.to_string(), v))
        .collect()
}

/// Ethernet addresses of a path on the afpacket backend: the interface's MAC and the
/// peer's (or its next hop's) from the kernel's neighbour table.
fn l2_resolver(interface: &str) -> Result<L2Resolver, String> {
    let src_mac = afpacket::interface_mac(interface)
        .map_err(|e| format!("cipher.interface `{interface}`: {e}"))?;
    let interface = interface.to_string();
    Ok(Box::new(
        move |_local: SocketAddr, remote: SocketAddr| match afpacket::resolve_neighbor(
            &interface,
            remote.ip(),
            run::NEIGHBOUR_TIMEOUT,
        ) {
            Ok(dst_mac) => Some(L2 { src_mac, dst_mac }),
            Err(e) => {
                warn!(%remote, error = %e, "cannot resolve the peer's MAC; its path stays unsendable");
                None
            }
        },
    ))
}

/// With afpacket, keep the host stack from answering our NAT-T and ESP packets with
/// ICMP errors (AF_PACKET is a tap, not a diversion).
fn shields(cfg: &StaticConfig) -> Result<Vec<KernelShield>, String> {
    if !matches!(cfg.cipher.backend, CipherBackend::AfPacket { .. }) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for ip in &cfg.ike.listen {
        out.push(
            KernelShield::open(Some((*ip, cfg.ike.port_nat_t)), false)
                .map_err(|e| format!("guarding {ip}:{}: {e}", cfg.ike.port_nat_t))?,
        );
    }
    out.push(KernelShield::open(None, true).map_err(|e| format!("guarding ESP: {e}"))?);
    Ok(out)
}

/// One IKE socket on the IKE port of a listen address.
struct IkeSocket {
    sock: UdpSocket,
    local: SocketAddr,
}

/// The control plane's datagram I/O.
struct Io {
    sockets: Vec<IkeSocket>,
    fabric: Arc<Fabric>,
    port_nat_t: u16,
    /// IKE messages for the NAT-T port, into the workers' inject channels.
    inject: Injector,
    /// IKE messages the IKE socket did not take (`IoCounters::send_failed`).
    send_failed: u64,
    /// The address watch (netlink), polled with the sockets.
    watch_fd: Option<std::os::fd::RawFd>,
    set: PollSet,
}

impl Io {
    /// Waits up to `timeout_ns` for an IKE socket, netlink, the dataplane's punt queues, the
    /// control socket or a stop signal.
    fn wait_readable(
        &mut self,
        timeout_ns: u64,
        ctl: Option<&CtlServer>,
        signals: Option<&StopSignal>,
    ) {
        let set = &mut self.set;
        set.clear();
        for s in &self.sockets {
            set.add(s.sock.as_raw_fd(), libc::POLLIN);
        }
        if let Some(fd) = self.watch_fd {
            set.add(fd, libc::POLLIN);
        }
        let signal = signals.map(|s| set.add(s.fd(), libc::POLLIN));
        for (fd, events) in ctl.into_iter().flat_map(CtlServer::wait_fds) {
            set.add(fd, events);
        }
        // IKE punted since the last drain must not wait for the timeout.
        let (punt, punt_empty) = wait::arm_punt(set, &self.fabric.punt);
        let (large, large_empty) = wait::arm_punt(set, &self.fabric.punt_large);
        set.wait_ns(if punt_empty && large_empty {
            timeout_ns
        } else {
            0
        });
        wait::finish_punt(set, &self.fabric.punt, punt);
        wait::finish_punt(set, &self.fabric.punt_large, large);
        if let (Some(s), Some(i)) = (signals, signal) {
            if set.ready(i) {
                s.drain();
            }
        }
    }

    /// Feeds up to `budget` datagrams waiting on the IKE sockets to the endpoint (a
    /// flood cannot keep the loop from its other duties; the rest stays readable).
    fn receive(&mut self, engine: &mut Engine, now: u64, buf: &mut [u8], mut budget: usize) {
        for s in &self.sockets {
            while budget > 0 {
                budget -= 1;
                match s.sock.recv_from(buf) {
                    Ok((n, from)) => {
                        if let Some(data) = buf.get(..n) {
                            engine.handle_datagram(now, s.local, from, data);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // ICMP errors surface here (ECONNREFUSED): the retransmit
                        // timers deal with an absent peer.
                        debug!(local = %s.local, error = %e, "IKE socket");
                        break;
                    }
                }
            }
        }
    }

    /// What the sockets and the injector counted.
    fn counters(&self) -> IoCounters {
        IoCounters {
            inject_dropped: self.inject.dropped,
            send_failed: self.send_failed,
        }
    }

    /// Sends on the IKE port's socket, or through the dataplane on the NAT-T port with
    /// the non-ESP marker (RFC 3948 2.2). `tag`: the path whose link header to use.
    fn send(&mut self, t: Transmit, tag: PathId) {
        if t.local.port() == self.port_nat_t {
            self.inject
                .send(&self.fabric, t.local, t.remote, t.data, tag);
            return;
        }
        self.send_socket(&t);
    }

    fn send_socket(&mut self, t: &Transmit) {
        let sock = self
            .sockets
            .iter()
            .find(|s| s.local == t.local)
            .or_else(|| self.sockets.iter().find(|s| s.local.ip() == t.local.ip()))
            .or_else(|| {
                self.sockets
                    .iter()
                    .find(|s| s.local.is_ipv4() == t.remote.is_ipv4())
            });
        match sock {
            Some(s) => {
                if let Err(e) = s.sock.send_to(&t.data, t.remote) {
                    self.send_failed += 1;
                    debug!(local = %s.local, remote = %t.remote, error = %e, "IKE send");
                }
            }
            None => self.send_failed += 1,
        }
    }
}
