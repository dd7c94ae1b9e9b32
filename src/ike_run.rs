//! `mobiked gateway` and `mobiked client`: the sans-IO IKE core ([`Endpoint`]) driven by
//! real sockets, its events installed into the dataplane's tables.
//!
//! Sockets: one UDP socket per IKE listen address on the IKE port (500). The NAT-T port
//! (4500) belongs to the dataplane, which carries ESP-in-UDP, keepalives and IKE on one
//! port (RFC 3948 2.2): IKE arriving there is punted to this thread with the non-ESP
//! marker stripped, and IKE leaving there is injected into a worker with the marker put
//! back.
//!
//! The main thread is the control plane: poll(2) on the IKE sockets, netlink, the punt
//! queues' wakeup eventfds, the control socket and the stop signal until the next timer
//! is due (`wait`), feed the endpoint, send what it asks, install its events through
//! [`Installer`] with one publication per turn, reclaim retired table versions, serve the
//! control socket.

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
use dataplane::io::null::NullPort;
use dataplane::io::Layer;
use dataplane::worker::{Fabric, Worker, WorkerEvent};
use dataplane::PacketBuf;
use shared::clock::now_ns;
use shared::path::{PathId, L2};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{debug, info, warn};

/// SO_RCVBUF/SO_SNDBUF of the IKE sockets.
const IKE_SOCKET_BUFFER: libc::c_int = 4 << 20;
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

#[derive(clap::Args)]
pub struct IkeArgs {
    /// The YAML configuration (with `connections:`).
    #[arg(short, long)]
    config: PathBuf,
    /// Run without the protected side: SAs are negotiated and installed, inner traffic
    /// goes nowhere (signalling load tests, or runs without the privilege a TUN needs).
    #[arg(long)]
    no_clear: bool,
}

/// One IKE socket on the IKE port of a listen address.
struct IkeSocket {
    sock: UdpSocket,
    local: SocketAddr,
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

pub fn main(args: &IkeArgs, role: Role) -> Result<(), String> {
    let config = &args.config;
    let cfg = control::config::load(config)
        .map_err(|e| format!("{}: configuration has errors:\n{e}", config.display()))?;
    let start = now_ns();
    let mut engine = Engine::new(&cfg, role, Box::new(SystemRandom::new()), start)
        .map_err(|e| format!("{}: {e}", config.display()))?;
    if let CipherBackend::AfPacket { interface, .. } = &cfg.cipher.backend {
        engine = engine.with_l2(l2_resolver(interface)?);
    }
    let tc = cfg.table_config();
    let fabric = Fabric::with_config(run::fabric_config(&cfg));
    let _shields = shields(&cfg)?;

    let mut handles = Vec::new();
    for w in 0..cfg.dataplane.workers {
        let cipher = run::open_cipher(&cfg, w)?;
        let clear: Port = if args.no_clear {
            // Whatever the workers decrypt is dropped.
            Box::new(NullPort::new(Layer::Ip))
        } else {
            run::open_clear(&cfg, w)?
        };
        let wc = run::worker_config(&cfg, w, &tc)?;
        let reader = engine
            .table_reader(w)
            .ok_or_else(|| format!("worker {w}: no table reader slot"))?;
        let worker = Worker::new(wc, cipher, clear, reader, fabric.clone());
        handles.push(
            worker
                .spawn(format!("mobiked-w{w}"))
                .map_err(|e| format!("starting worker {w}: {e}"))?,
        );
    }

    let mut sockets = Vec::new();
    for ip in &cfg.ike.listen {
        let local = SocketAddr::new(*ip, cfg.ike.port);
        let sock = UdpSocket::bind(local).map_err(|e| format!("ike.listen {local}: {e}"))?;
        sock.set_nonblocking(true)
            .map_err(|e| format!("ike.listen {local}: {e}"))?;
        // A burst of IKE_SA_INITs (many clients at once, or a flood) must queue in
        // the kernel rather than be dropped before the loop's next turn.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
            let _ = dataplane::io::sys::setsockopt(fd, libc::SOL_SOCKET, opt, &IKE_SOCKET_BUFFER);
        }
        sockets.push(IkeSocket { sock, local });
    }
    // MOBIKE tries first the pairs the kernel has a route for.
    engine.set_route_oracle(Box::new(|from, to| {
        UdpSocket::bind(SocketAddr::new(from, 0))
            .and_then(|s| s.connect(SocketAddr::new(to, 9)))
            .is_ok()
    }));
    let mut watch = match AddrWatch::open() {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(error = %e, "no netlink address watch: MOBIKE will not see address changes");
            None
        }
    };
    if let Some(w) = watch.as_mut() {
        match w.dump() {
            Ok(addrs) => engine.set_host_addresses(start, addrs),
            Err(e) => warn!(error = %e, "netlink address dump"),
        }
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

    let signals = StopSignal::register().map_err(|e| format!("signal: {e}"))?;
    let stop = signals.flag();
    let mut ctl = match &cfg.control.socket {
        Some(p) => {
            Some(CtlServer::bind(p).map_err(|e| format!("control.socket {}: {e}", p.display()))?)
        }
        None => None,
    };

    let mut io = Io {
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
    let mut rx = vec![0u8; MAX_DATAGRAM];
    let mut punted = PacketBuf::new();
    let mut punted_large = PacketBuf::with_frame(LARGE_FRAME);
    loop {
        let now = now_ns();
        if !engine.is_stopping() && stop.load(Ordering::Relaxed) {
            // Delete every IKE SA so that peers do not keep sending into the void.
            engine.stop(now);
            engine.poll(now);
        }
        if engine.is_finished() {
            break;
        }
        // Sleep until the engine's next deadline or a descriptor has work.
        let timeout = wait::timeout_ms(
            now,
            [
                engine.next_deadline(now),
                (!io.inject.is_empty()).then_some(now + INJECT_RETRY_NS),
            ],
            wait::IDLE_CAP_MS,
        );
        io.wait_readable(timeout, ctl.as_ref(), &signals);
        let now = now_ns();
        if let Some(addrs) = watch.as_mut().and_then(AddrWatch::addresses_changed) {
            engine.host_addresses_changed(now, addrs);
        }
        // Punted first: those mostly complete setups already under way.
        let mut budget = TURN_DATAGRAMS;
        while budget > 0 && fabric.punt.recv_swap(&mut punted) {
            budget -= 1;
            engine.handle_datagram(now, punted.meta.dst, punted.meta.src, punted.data());
        }
        while budget > 0 && fabric.punt_large.recv_swap(&mut punted_large) {
            budget -= 1;
            let p = &punted_large;
            engine.handle_datagram(now, p.meta.dst, p.meta.src, p.data());
        }
        io.receive(&mut engine, now, &mut rx, budget);
        while let Some(ev) = fabric.events.pop() {
            if let WorkerEvent::PeerMoved { spi, from, to, .. } = ev {
                engine.peer_moved(spi, from, to);
            }
        }
        engine.poll(now);
        io.inject.flush(&io.fabric);
        while let Some((t, tag)) = engine.poll_transmit() {
            io.send(t, tag);
        }
        if let Some(server) = ctl.as_mut() {
            server.poll(|req| {
                let extra = stats_extra(&fabric, &io.counters());
                engine.command(now_ns(), req, extra)
            });
        }
    }
    engine.finish(now_ns());
    fabric.stop();
    for h in handles {
        let _ = h.join();
    }
    let nonzero: Vec<(String, u64)> = engine
        .stats()
        .into_iter()
        .chain(io.counters().entries().map(|(n, v)| (n.to_string(), v)))
        .filter(|(_, v)| *v != 0)
        .collect();
    info!(counters = ?nonzero, "IKE counters");
    for (name, v) in fabric.counters.nonzero() {
        info!(counter = name, value = v);
    }
    Ok(())
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
    /// Waits up to `ms` for an IKE socket, netlink, the dataplane's punt queues, the
    /// control socket or a stop signal.
    fn wait_readable(&mut self, ms: i32, ctl: Option<&CtlServer>, signals: &StopSignal) {
        let set = &mut self.set;
        set.clear();
        for s in &self.sockets {
            set.add(s.sock.as_raw_fd(), libc::POLLIN);
        }
        if let Some(fd) = self.watch_fd {
            set.add(fd, libc::POLLIN);
        }
        let signal = set.add(signals.fd(), libc::POLLIN);
        for (fd, events) in ctl.into_iter().flat_map(CtlServer::wait_fds) {
            set.add(fd, events);
        }
        // IKE punted since the last drain must not wait for the timeout.
        let (punt, punt_empty) = wait::arm_punt(set, &self.fabric.punt);
        let (large, large_empty) = wait::arm_punt(set, &self.fabric.punt_large);
        set.wait(if punt_empty && large_empty { ms } else { 0 });
        wait::finish_punt(set, &self.fabric.punt, punt);
        wait::finish_punt(set, &self.fabric.punt_large, large);
        if set.ready(signal) {
            signals.drain();
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

    /// Sends on the IKE port's socket, or through the dataplane on the NAT-T port with
    /// the non-ESP marker (RFC 3948 2.2). `tag`: the path whose link header to use.
    /// What the sockets and the injector counted.
    fn counters(&self) -> IoCounters {
        IoCounters {
            inject_dropped: self.inject.dropped,
            send_failed: self.send_failed,
        }
    }

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
