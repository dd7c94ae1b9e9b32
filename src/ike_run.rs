//! `mobiked gateway` and `mobiked client`: the sans-IO IKE core ([`Endpoint`]) driven by
//! real sockets, its events installed into the dataplane's tables.
//!
//! Sockets: one UDP socket per IKE listen address on the IKE port (500). The NAT-T port
//! (4500) belongs to the dataplane, which carries ESP-in-UDP, keepalives and IKE on one
//! port (RFC 3948 2.2): IKE arriving there is punted to this thread with the non-ESP
//! marker stripped, and IKE leaving there is injected into a worker with the marker put
//! back.
//!
//! The main thread is the control plane: poll(2) on the IKE sockets and on the punt
//! queue's wakeup eventfd for at most 1 ms, feed the endpoint, send what it asks, install
//! its events through [`Installer`] with one publication per turn, reclaim retired table
//! versions, serve the control socket.

use crate::addrwatch::AddrWatch;
use crate::mobility::Mobility;
use crate::run::{self, Port};
use control::config::{CipherBackend, StaticConfig};
use control::ctl::{ChildSaInfo, CtlServer, IkeSaInfo, PathInfo, Request, Response};
use control::engine::{Installer, L2Resolver};
use control::ike::conn::Conn;
use control::ike::crypto::random::Random;
use control::ike::sa::{
    ConnId, Counters, DownReason, Endpoint, EndpointConfig, Event, SaId, Transmit,
};
use dataplane::io::afpacket::{self, KernelShield};
use dataplane::io::mem;
use dataplane::io::{BurstIo, Layer};
use dataplane::worker::{Fabric, Worker, WorkerEvent};
use dataplane::PacketBuf;
use shared::clock::now_ns;
use shared::path::L2;
use shared::table::TableWriter;
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing::{debug, info, warn};

/// RFC 3948 2.2: IKE on the NAT-T port starts with four zero bytes.
const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// Client: first wait before initiating a connection again after a failure; doubles
/// up to [`RETRY_MAX_NS`].
const RETRY_FIRST_NS: u64 = 1_000_000_000;
const RETRY_MAX_NS: u64 = 32_000_000_000;
/// Client: initiations started per turn of the loop, so that thousands of instances do
/// not all send IKE_SA_INIT in one burst.
const INITIATE_PER_TURN: usize = 32;
/// Client: IKE SAs being set up at once at most. More only queue up in the peer's
/// socket and in ours and come back as retransmissions.
const MAX_INITIATING: usize = 64;
/// SO_RCVBUF/SO_SNDBUF of the IKE sockets.
const IKE_SOCKET_BUFFER: libc::c_int = 4 << 20;
/// On SIGINT/SIGTERM: how long deletions may take before the process ends anyway.
const SHUTDOWN_NS: u64 = 2_000_000_000;
/// Largest IKE datagram read (RFC 7296 2: at least 1280 must be accepted; 64 KiB is
/// the UDP limit).
const MAX_DATAGRAM: usize = 65_535;
/// IKE messages held for the dataplane's inject channels before new ones are dropped.
const INJECT_BACKLOG_MAX: usize = 8192;

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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Gateway,
    Client,
}

/// The operating system's randomness for SPIs, nonces, key shares and cookies.
struct OsRandom(ring::rand::SystemRandom);

impl Random for OsRandom {
    fn fill(&mut self, out: &mut [u8]) {
        use ring::rand::SecureRandom;
        // The system generator fails only if the kernel has no entropy source at all;
        // nothing safe can run then.
        if self.0.fill(out).is_err() {
            panic!("the system random generator failed");
        }
    }
}

/// A client connection's initiation state.
#[derive(Clone, Copy, Debug)]
enum Attempt {
    /// Waiting until this time to initiate.
    Due(u64),
    /// An IKE SA is being set up or is up.
    Active,
}

struct Client {
    attempts: Vec<Option<Attempt>>,
    backoff: Vec<u64>,
    /// Connections due to initiate, in order.
    queue: VecDeque<ConnId>,
    by_sa: HashMap<SaId, ConnId>,
}

impl Client {
    fn new(conns: &[Conn], now: u64) -> Client {
        let mut c = Client {
            attempts: vec![None; conns.len()],
            backoff: vec![RETRY_FIRST_NS; conns.len()],
            queue: VecDeque::new(),
            by_sa: HashMap::new(),
        };
        for (i, conn) in conns.iter().enumerate() {
            if !conn.peer_addrs.is_empty() {
                c.attempts[i] = Some(Attempt::Due(now));
                c.queue.push_back(i);
            }
        }
        c
    }

    fn start_due(&mut self, ep: &mut Endpoint, now: u64) {
        let room = MAX_INITIATING.saturating_sub(ep.initiating());
        for _ in 0..INITIATE_PER_TURN.min(room).min(self.queue.len()) {
            let Some(i) = self.queue.pop_front() else {
                break;
            };
            match self.attempts[i] {
                Some(Attempt::Due(t)) if t <= now => {}
                Some(Attempt::Due(_)) => {
                    self.queue.push_back(i);
                    continue;
                }
                _ => continue,
            }
            match ep.initiate(now, i, None) {
                Some(sa) => {
                    self.attempts[i] = Some(Attempt::Active);
                    self.by_sa.insert(sa, i);
                }
                None => {
                    warn!(conn = %ep.conns()[i].name, "cannot initiate: no peer or local address");
                    self.retry(i, now);
                }
            }
        }
    }

    fn retry(&mut self, i: ConnId, now: u64) {
        let wait = self.backoff[i];
        self.backoff[i] = (wait * 2).min(RETRY_MAX_NS);
        self.attempts[i] = Some(Attempt::Due(now + wait));
        self.queue.push_back(i);
    }

    fn on_event(&mut self, ev: &Event, now: u64, stopping: bool) {
        match ev {
            Event::IkeUp { sa, .. } => {
                if let Some(&i) = self.by_sa.get(sa) {
                    self.backoff[i] = RETRY_FIRST_NS;
                }
            }
            Event::IkeRekeyed { old, new } => {
                if let Some(i) = self.by_sa.remove(old) {
                    self.by_sa.insert(*new, i);
                }
            }
            Event::IkeDown { sa, reason } => {
                if let Some(i) = self.by_sa.remove(sa) {
                    if !stopping && *reason != DownReason::Rekeyed {
                        self.retry(i, now);
                    }
                }
            }
            _ => {}
        }
    }
}

/// One IKE socket on the IKE port of a listen address.
struct IkeSocket {
    sock: UdpSocket,
    local: SocketAddr,
}

pub fn main(args: &IkeArgs, role: Role) -> Result<(), String> {
    let config = &args.config;
    let cfg = control::config::load(config)
        .map_err(|e| format!("{}: configuration has errors:\n{e}", config.display()))?;
    if cfg.connections.is_empty() {
        return Err(format!(
            "{}: no `connections:`; `mobiked {}` needs at least one (static SAs run with `mobiked run`)",
            config.display(),
            match role {
                Role::Gateway => "gateway",
                Role::Client => "client",
            }
        ));
    }
    let udp_only = matches!(cfg.cipher.backend, CipherBackend::Udp { .. });
    let conns = connections(&cfg, role, udp_only);
    let tc = cfg.table_config();
    let mut writer = TableWriter::new(tc);
    let mut installer = Installer::new(&writer, udp_only, cfg.dataplane.replay_window);
    if let CipherBackend::AfPacket { interface, .. } = &cfg.cipher.backend {
        installer = installer.with_l2(l2_resolver(interface)?);
    }
    let fabric = Fabric::new(cfg.dataplane.workers);
    let _shields = shields(&cfg)?;

    let mut far_ends: Vec<mem::MemPort> = Vec::new();
    let mut handles = Vec::new();
    for w in 0..cfg.dataplane.workers {
        let cipher = run::open_cipher(&cfg, w)?;
        let clear: Port = if args.no_clear {
            let (near, far) = mem::pair(64, Layer::Ip);
            far_ends.push(far);
            Box::new(near)
        } else {
            run::open_clear(&cfg, w)?
        };
        let wc = run::worker_config(&cfg, w, &tc)?;
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
    let ecfg = EndpointConfig {
        port: cfg.ike.port,
        port_nat_t: cfg.ike.port_nat_t,
        cookie_threshold: cfg.ike.cookie_threshold,
        ..EndpointConfig::default()
    };
    let names: Vec<String> = conns.iter().map(|c| c.name.clone()).collect();
    let mut ep = Endpoint::new(
        ecfg,
        conns,
        Box::new(OsRandom(ring::rand::SystemRandom::new())),
    );
    let start = now_ns();
    let mut client = (role == Role::Client).then(|| Client::new(ep.conns(), start));
    let mut mobility = Mobility::new(&ep);
    // The host's addresses, for MOBIKE: what netlink says, plus the loopback
    // addresses we were told to use (127/8 is routed to lo, not listed on it).
    let listened: Vec<std::net::IpAddr> = cfg
        .ike
        .listen
        .iter()
        .copied()
        .chain(
            ep.conns()
                .iter()
                .flat_map(|c| c.local_addrs.iter().map(|a| a.ip())),
        )
        .filter(|a| a.is_loopback())
        .collect();
    let protected: Vec<control::ike::conn::Selector> = ep
        .conns()
        .iter()
        .flat_map(|c| c.local_ts.iter().copied())
        .collect();
    // MOBIKE tries first the pairs the kernel has a route for.
    ep.set_route_oracle(Box::new(|from, to| {
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
            Ok(addrs) => ep.set_own_addrs(start, &usable(addrs, &listened, &protected)),
            Err(e) => warn!(error = %e, "netlink address dump"),
        }
    }
    info!(
        role = ?role,
        connections = names.len(),
        listen = ?sockets.iter().map(|s| s.local).collect::<Vec<_>>(),
        nat_t = cfg.ike.port_nat_t,
        workers = cfg.dataplane.workers,
        udp_only,
        "running"
    );

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| format!("signal: {e}"))?;
    }
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
        scratch: PacketBuf::new(),
        backlog: VecDeque::new(),
        inject_dropped: 0,
        send_failed: 0,
        watch_fd: watch.as_ref().map(AddrWatch::fd),
    };
    let mut rx = vec![0u8; MAX_DATAGRAM];
    let mut punted = PacketBuf::new();
    let mut sink = PacketBuf::alloc(64);
    let mut stopping_since: Option<u64> = None;
    loop {
        let now = now_ns();
        if stopping_since.is_none() && stop.load(Ordering::Relaxed) {
            // Delete every IKE SA so that peers do not keep sending into the void.
            stopping_since = Some(now);
            let ids = ep.sa_ids();
            info!(sas = ids.len(), "stopping: deleting IKE SAs");
            for sa in ids {
                ep.delete(now, sa);
            }
        }
        if let Some(t0) = stopping_since {
            if ep.sa_count() == 0 || now.saturating_sub(t0) > SHUTDOWN_NS {
                break;
            }
        }
        let deadline = [ep.poll_timeout(), mobility.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        let wait_ms = match deadline {
            Some(t) if t <= now => 0,
            _ => 1,
        };
        io.wait_readable(wait_ms);
        let now = now_ns();
        io.receive(&mut ep, now, &mut rx);
        if let Some(addrs) = watch.as_mut().and_then(AddrWatch::addresses_changed) {
            mobility.addresses(&mut ep, now, usable(addrs, &listened, &protected));
        }
        while fabric.punt.recv_swap(&mut punted) {
            ep.handle_datagram(now, punted.meta.dst, punted.meta.src, punted.data());
        }
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
        mobility.poll(&mut ep, now);
        if let (Some(c), None) = (client.as_mut(), stopping_since) {
            c.start_due(&mut ep, now);
        }
        io.flush_inject();
        while let Some(t) = ep.poll_transmit() {
            let tag = installer.path_between(t.local, t.remote).unwrap_or(0);
            io.send(t, tag);
        }
        while let Some(ev) = ep.poll_event() {
            log_event(&ev, &names, &installer);
            if let Err(e) = installer.on_event(&mut writer, now, &ev) {
                warn!(error = %e, event = ?ev, "dataplane install failed");
            }
            if let Some(c) = client.as_mut() {
                c.on_event(&ev, now, stopping_since.is_some());
            }
            mobility.on_event(&ep, now, &ev);
        }
        installer.expire(&mut writer, now);
        installer.commit(&mut writer);
        writer.reclaim();
        while let Some(ev) = fabric.events.pop() {
            // The dataplane's per-SA signals name SPIs, not IKE SAs; DPD relies on
            // its own probes (no `note_inbound_traffic`).
            if let WorkerEvent::PeerMoved { spi, from, to, .. } = ev {
                debug!(spi = format_args!("{spi:#010x}"), %from, %to, "peer sends from a new address");
            }
        }
        for far in far_ends.iter_mut() {
            // --no-clear: whatever the workers decrypt is dropped here.
            let _ = far.rx_burst(&mut sink);
        }
        if let Some(server) = ctl.as_mut() {
            let mob = (mobility.rotations, mobility.rotations_stuck);
            server.poll(|req| handle(req, &mut ep, &installer, &names, &fabric, &writer, mob));
        }
    }
    // Whatever the deletions left (a peer that did not answer) leaves the tables too.
    while let Some(ev) = ep.poll_event() {
        let _ = installer.on_event(&mut writer, now_ns(), &ev);
    }
    installer.commit(&mut writer);
    fabric.stop();
    for h in handles {
        let _ = h.join();
    }
    let c = ep.counters();
    info!(
        inject_dropped = io.inject_dropped,
        send_failed = io.send_failed,
        counters = ?c,
        "IKE counters"
    );
    for (name, v) in fabric.counters.nonzero() {
        info!(counter = name, value = v);
    }
    Ok(())
}

/// The addresses MOBIKE may use and announce: not link-local (scoped to one link),
/// multicast, or inside what the tunnels protect (the clear side's own addresses);
/// loopback only where configured.
fn usable(
    mut addrs: Vec<std::net::IpAddr>,
    loopback: &[std::net::IpAddr],
    protected: &[control::ike::conn::Selector],
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
        let all = |s: &control::ike::conn::Selector| {
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
    for a in loopback {
        if !addrs.contains(a) {
            addrs.push(*a);
        }
    }
    addrs
}

/// The connections the endpoint runs: a client expands `instances`; with the udp
/// backend every connection UDP-encapsulates (RFC 7296 2.23: forced NAT-T), since that
/// backend cannot send plain ESP and the peer must encapsulate too.
fn connections(cfg: &StaticConfig, role: Role, udp_only: bool) -> Vec<Conn> {
    let mut out = Vec::new();
    for cc in &cfg.connections {
        match role {
            Role::Client => out.extend(cc.instances()),
            Role::Gateway => out.push(cc.instance(1)),
        }
    }
    if udp_only {
        for c in &mut out {
            c.force_encap = true;
        }
    }
    out
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
    scratch: PacketBuf,
    /// IKE messages for the NAT-T port waiting for room in a worker's inject channel,
    /// in order (a burst of IKE_AUTH exchanges can outrun one worker's burst).
    backlog: VecDeque<(Transmit, u32)>,
    inject_dropped: u64,
    send_failed: u64,
    /// The address watch (netlink), polled with the sockets.
    watch_fd: Option<std::os::fd::RawFd>,
}

impl Io {
    /// Waits up to `ms` for an IKE socket to become readable or the dataplane to punt.
    fn wait_readable(&self, ms: i32) {
        let mut fds: Vec<libc::pollfd> = self
            .sockets
            .iter()
            .map(|s| libc::pollfd {
                fd: s.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        for fd in [self.watch_fd, self.fabric.punt.wakeup_fd()]
            .into_iter()
            .flatten()
        {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // IKE punted since the last drain must not wait for the timeout.
        let ms = if self.fabric.punt.prepare_wait() {
            ms
        } else {
            0
        };
        if fds.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(ms as u64));
        } else {
            // SAFETY: `fds` is a valid, initialised array of `fds.len()` pollfd
            // structures that lives across the call; the descriptors belong to open
            // sockets and eventfds we own. EINTR (a signal) and other errors just end
            // the wait early.
            let _ = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        }
        self.fabric.punt.finish_wait();
    }

    /// Feeds every datagram waiting on the IKE sockets to the endpoint.
    fn receive(&mut self, ep: &mut Endpoint, now: u64, buf: &mut [u8]) {
        for s in &self.sockets {
            // Bounded: a flood cannot keep the loop from its other duties.
            for _ in 0..256 {
                match s.sock.recv_from(buf) {
                    Ok((n, from)) => {
                        if let Some(data) = buf.get(..n) {
                            ep.handle_datagram(now, s.local, from, data);
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
    fn send(&mut self, t: Transmit, tag: u32) {
        if t.local.port() == self.port_nat_t {
            if self.backlog.len() >= INJECT_BACKLOG_MAX {
                // The retransmission timers recover what is dropped here.
                self.inject_dropped += 1;
                return;
            }
            self.backlog.push_back((t, tag));
            self.flush_inject();
            return;
        }
        self.send_socket(&t);
    }

    /// Moves queued NAT-T messages into the workers' inject channels while there is
    /// room.
    fn flush_inject(&mut self) {
        let workers = self.fabric.inject.len().max(1);
        while let Some((t, tag)) = self.backlog.front() {
            let Some(ch) = self.fabric.inject.get(*tag as usize % workers) else {
                self.inject_dropped += 1;
                self.backlog.pop_front();
                continue;
            };
            let b = &mut self.scratch;
            let fits = b.fill(&NON_ESP_MARKER)
                && match b.push_back(t.data.len()) {
                    Some(room) => {
                        room.copy_from_slice(&t.data);
                        true
                    }
                    None => false,
                };
            if !fits {
                self.inject_dropped += 1;
                b.reset();
                self.backlog.pop_front();
                continue;
            }
            b.meta.src = t.local;
            b.meta.dst = t.remote;
            b.meta.tag = *tag;
            if !ch.send_swap(b) {
                // Full: the worker drains it in its next burst; try again next turn.
                b.reset();
                return;
            }
            self.backlog.pop_front();
        }
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

fn hex_spi(sa: SaId) -> String {
    format!("{sa:016x}")
}

fn log_event(ev: &Event, names: &[String], inst: &Installer) {
    let name = |c: ConnId| names.get(c).map(String::as_str).unwrap_or("?");
    match ev {
        Event::IkeUp {
            sa,
            conn,
            initiator,
            local,
            remote,
            encap,
            peer_id,
            vip,
            suite,
            setup_ns,
        } => info!(
            sa = %hex_spi(*sa),
            conn = name(*conn),
            initiator,
            %local,
            peer = %remote,
            encap = *encap || inst.udp_only(),
            peer_id = %peer_id.as_ref().map(|i| i.to_string()).unwrap_or_default(),
            vip = %vip.map(|v| v.to_string()).unwrap_or_default(),
            suite = %format_args!(
                "{}{}-{}-{}",
                suite.encr.name(),
                suite.integ.map(|i| format!("-{}", i.name())).unwrap_or_default(),
                suite.prf.name(),
                suite.dh.name()
            ),
            setup_ms = *setup_ns as f64 / 1e6,
            "IKE SA up"
        ),
        Event::ChildUp { sa, child } => info!(
            sa = %hex_spi(*sa),
            child = child.id,
            spi_in = format_args!("{:#010x}", child.spi_in),
            spi_out = format_args!("{:#010x}", child.spi_out),
            encr = child.cipher.name(),
            esn = child.esn,
            rekey_of = ?child.replaces,
            "child SA up"
        ),
        Event::ChildDown {
            sa,
            child,
            spi_in,
            spi_out,
        } => info!(
            sa = %hex_spi(*sa),
            child,
            spi_in = format_args!("{spi_in:#010x}"),
            spi_out = format_args!("{spi_out:#010x}"),
            "child SA down"
        ),
        Event::ChildFailed { sa, reason } => {
            warn!(sa = %hex_spi(*sa), ?reason, "child SA failed")
        }
        Event::IkeRekeyed { old, new } => {
            info!(old = %hex_spi(*old), new = %hex_spi(*new), "IKE SA rekeyed")
        }
        Event::PathChanged {
            sa,
            local,
            remote,
            encap,
        } => info!(sa = %hex_spi(*sa), %local, %remote, encap, "path changed"),
        Event::IkeDown { sa, reason } => info!(sa = %hex_spi(*sa), ?reason, "IKE SA down"),
    }
}

fn ike_counters(c: &Counters) -> Vec<(String, u64)> {
    [
        ("ike_rx", c.rx),
        ("ike_tx", c.tx),
        ("ike_malformed", c.malformed),
        ("ike_bad_version", c.bad_version),
        ("ike_unknown_spi", c.unknown_spi),
        ("ike_decrypt_failed", c.decrypt_failed),
        ("ike_msgid_out_of_window", c.msgid_out_of_window),
        ("ike_unexpected_response", c.unexpected_response),
        ("ike_resent_responses", c.resent_responses),
        ("ike_retransmits", c.retransmits),
        ("ike_auth_failed", c.auth_failed),
        ("ike_no_proposal", c.no_proposal),
        ("ike_cookies_sent", c.cookies_sent),
        ("ike_limit_dropped", c.limit_dropped),
        ("ike_up", c.ike_up),
        ("ike_down", c.ike_down),
        ("ike_child_up", c.child_up),
        ("ike_child_down", c.child_down),
        ("ike_half_open_expired", c.half_open_expired),
        ("ike_initial_contact_dropped", c.initial_contact_dropped),
        ("mobike_moves", c.mobike_moves),
        ("mobike_updates_sent", c.mobike_updates_sent),
        ("mobike_updates_received", c.mobike_updates_received),
        ("mobike_refused", c.mobike_refused),
        ("mobike_rr_failed", c.mobike_rr_failed),
        ("mobike_no_path", c.mobike_no_path),
        ("mobike_stale_responses", c.mobike_stale_responses),
        ("mobike_early_switches", c.mobike_early_switches),
    ]
    .into_iter()
    .filter(|(_, v)| *v != 0)
    .map(|(n, v)| (n.to_string(), v))
    .collect()
}

fn handle(
    req: Request,
    ep: &mut Endpoint,
    inst: &Installer,
    names: &[String],
    fabric: &Fabric,
    writer: &TableWriter,
    (rotations, rotations_stuck): (u64, u64),
) -> Response {
    match req {
        Request::Sas => {
            let now = now_ns();
            Response::Sas {
                sas: inst
                    .sas()
                    .into_iter()
                    .map(|s| IkeSaInfo {
                        spi: hex_spi(s.sa),
                        conn: names.get(s.conn).cloned().unwrap_or_default(),
                        initiator: s.initiator,
                        local: s.local,
                        remote: s.remote,
                        encap: s.encap || inst.udp_only(),
                        peer_id: s.peer_id.as_ref().map(|i| i.to_string()),
                        vip: s.vip,
                        path: s.path,
                        age_ms: now.saturating_sub(s.up_ns) / 1_000_000,
                        children: inst
                            .children_of(s.sa)
                            .into_iter()
                            .map(|c| ChildSaInfo {
                                id: c.id,
                                spi_in: format!("{:08x}", c.spi_in),
                                spi_out: format!("{:08x}", c.spi_out),
                                encr: c.cipher.name().to_string(),
                                esn: c.esn,
                                local_ts: ts_strings(&c.local_ts),
                                remote_ts: ts_strings(&c.remote_ts),
                                tunnel: c.tunnel,
                                outbound: c.outbound,
                            })
                            .collect(),
                    })
                    .collect(),
            }
        }
        Request::Stats => {
            let mut counters: Vec<(String, u64)> = fabric
                .counters
                .nonzero()
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect();
            counters.extend(ike_counters(&ep.counters()));
            counters.push(("ike_sas".into(), ep.sa_count() as u64));
            counters.push(("ike_established".into(), ep.established() as u64));
            counters.push(("ike_half_open".into(), ep.half_open() as u64));
            counters.push(("child_sas".into(), ep.child_count() as u64));
            counters.push(("leased".into(), ep.leased() as u64));
            counters.push(("mobike_rotations".into(), rotations));
            counters.push(("mobike_rotations_stuck".into(), rotations_stuck));
            Response::Stats { counters }
        }
        Request::Paths => {
            let snap = writer.published();
            Response::Paths {
                paths: inst
                    .sas()
                    .into_iter()
                    .map(|s| {
                        let rec = snap.path(s.path);
                        PathInfo {
                            name: hex_spi(s.sa),
                            id: s.path,
                            local: s.local,
                            remote: s.remote,
                            encap: if s.encap || inst.udp_only() {
                                "udp".into()
                            } else {
                                "esp".into()
                            },
                            generation: rec.map_or(0, |r| r.generation),
                            published_ns: rec.map_or(0, |r| r.published_ns),
                        }
                    })
                    .collect(),
            }
        }
        Request::PathSet { .. } => Response::Error {
            message: "paths of IKE SAs move by MOBIKE, not by hand: use `move`".into(),
        },
        Request::Move {
            target,
            local,
            remote,
        } => {
            let by_name = inst
                .sas()
                .into_iter()
                .find(|s| names.get(s.conn) == Some(&target))
                .map(|s| s.sa);
            let by_spi = u64::from_str_radix(target.trim_start_matches("0x"), 16)
                .ok()
                .filter(|spi| ep.path(*spi).is_some());
            let Some(sa) = by_name.or(by_spi) else {
                return Response::Error {
                    message: format!("no established IKE SA named `{target}` (a connection name or an IKE SPI in hex)"),
                };
            };
            if !ep.mobike(sa) {
                return Response::Error {
                    message: format!(
                        "IKE SA {}: MOBIKE is off (set `mobike: true` on both ends)",
                        hex_spi(sa)
                    ),
                };
            }
            if ep.migrate(now_ns(), sa, local, remote) {
                Response::Moving { sa: hex_spi(sa) }
            } else {
                Response::Error {
                    message: format!("IKE SA {}: cannot move to {local} -> {remote} (only the initiator moves; both addresses of one family)", hex_spi(sa)),
                }
            }
        }
    }
}

fn ts_strings(ts: &[control::ike::conn::Selector]) -> Vec<String> {
    ts.iter()
        .map(|s| {
            let (a, l) = s.covering_prefix();
            let mut t = format!("{a}/{l}");
            if s.protocol != 0 {
                t.push_str(&format!("[{}/{}-{}]", s.protocol, s.start_port, s.end_port));
            }
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::ike::conn::Identity;

    fn conns() -> Vec<Conn> {
        let mut a = Conn::new("a", Identity::Fqdn("a.test".into()), b"0123456789");
        a.peer_addrs = vec!["192.0.2.1:500".parse().unwrap()];
        // No peer: a responder-only connection is never initiated.
        let b = Conn::new("b", Identity::Fqdn("b.test".into()), b"0123456789");
        vec![a, b]
    }

    fn due(c: &Client, i: ConnId) -> Option<u64> {
        match c.attempts[i] {
            Some(Attempt::Due(t)) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn client_retries_with_doubling_backoff_reset_by_success() {
        let mut c = Client::new(&conns(), 5);
        assert_eq!(c.queue, VecDeque::from([0]));
        assert_eq!(due(&c, 0), Some(5));
        assert!(c.attempts[1].is_none());
        // Pretend the initiation happened as SA 7.
        c.queue.clear();
        c.attempts[0] = Some(Attempt::Active);
        c.by_sa.insert(7, 0);
        let down = |sa| Event::IkeDown {
            sa,
            reason: DownReason::PeerDead,
        };
        c.on_event(&down(7), 100, false);
        assert_eq!(due(&c, 0), Some(100 + RETRY_FIRST_NS));
        c.by_sa.insert(8, 0);
        c.on_event(&down(8), 200, false);
        assert_eq!(due(&c, 0), Some(200 + 2 * RETRY_FIRST_NS));
        // Success resets the backoff; an IKE rekey carries the SA over.
        c.by_sa.insert(9, 0);
        c.on_event(
            &Event::IkeUp {
                sa: 9,
                conn: 0,
                initiator: true,
                local: "192.0.2.2:500".parse().unwrap(),
                remote: "192.0.2.1:500".parse().unwrap(),
                encap: false,
                peer_id: None,
                vip: None,
                suite: control::ike::crypto::IkeSuite {
                    encr: control::ike::crypto::Encr::AesGcm16_128,
                    integ: None,
                    prf: control::ike::crypto::Prf::HmacSha2_256,
                    dh: control::ike::crypto::DhGroup::Curve25519,
                },
                setup_ns: 1,
            },
            300,
            false,
        );
        c.on_event(&Event::IkeRekeyed { old: 9, new: 10 }, 300, false);
        c.on_event(
            &Event::IkeDown {
                sa: 9,
                reason: DownReason::Rekeyed,
            },
            300,
            false,
        );
        assert_eq!(c.by_sa.get(&10), Some(&0));
        c.on_event(&down(10), 400, false);
        assert_eq!(due(&c, 0), Some(400 + RETRY_FIRST_NS));
        // Backoff is bounded, and nothing is retried while stopping.
        for k in 0..20 {
            c.retry(0, k);
        }
        assert_eq!(c.backoff[0], RETRY_MAX_NS);
        c.by_sa.insert(11, 0);
        c.attempts[0] = Some(Attempt::Active);
        c.on_event(&down(11), 500, true);
        assert!(due(&c, 0).is_none());
    }
}
