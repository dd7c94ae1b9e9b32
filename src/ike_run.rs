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

use crate::addrwatch::AddrWatch;
use crate::mobility::Mobility;
use crate::run::{self, Port};
use crate::wait::{self, PollSet, StopSignal};
use control::client::Client;
use control::config::{CipherBackend, StaticConfig};
use control::ctl::{ChildSaInfo, CtlServer, IkeSaInfo, PathInfo, Request, Response};
use control::ike::conn::Conn;
use control::ike::crypto::random::Random;
use control::ike::sa::{
    ConnId, Counters, Endpoint, EndpointConfig, Event, FailReason, SaId, Transmit,
};
use control::installer::{InstallError, Installer, L2Resolver};
use control::shutdown::Shutdown;
use dataplane::buf::{LARGE_FRAME, MAX_FRAME};
use dataplane::io::afpacket::{self, KernelShield};
use dataplane::io::null::NullPort;
use dataplane::io::Layer;
use dataplane::worker::{Fabric, Worker, WorkerEvent};
use dataplane::PacketBuf;
use shared::clock::now_ns;
use shared::path::L2;
use shared::table::TableWriter;
use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{debug, info, warn};

/// RFC 3948 2.2: IKE on the NAT-T port starts with four zero bytes.
const NON_ESP_MARKER: [u8; 4] = [0; 4];
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
        // What the dataplane can hold: beyond it new IKE SAs are not taken and new
        // child SAs are refused (NO_ADDITIONAL_SAS) instead of never installed.
        max_ike_sas: tc.max_paths,
        max_child_sas: cfg.dataplane.max_sas,
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
        scratch: PacketBuf::new(),
        scratch_large: PacketBuf::with_frame(LARGE_FRAME),
        backlog: VecDeque::new(),
        backlog_max: cfg.dataplane.punt_queue.max(INJECT_BACKLOG_MAX),
        notify: vec![false; cfg.dataplane.workers],
        inject_dropped: 0,
        send_failed: 0,
        watch_fd: watch.as_ref().map(AddrWatch::fd),
        set: PollSet::default(),
    };
    let mut rx = vec![0u8; MAX_DATAGRAM];
    let mut punted = PacketBuf::new();
    let mut stopping: Option<Shutdown> = None;
    let mut install_failed = 0u64;
    let mut progress_at = start;
    let mut punted_large = PacketBuf::with_frame(LARGE_FRAME);
    loop {
        let now = now_ns();
        if stopping.is_none() && stop.load(Ordering::Relaxed) {
            // Delete every IKE SA so that peers do not keep sending into the void,
            // a window of deletions at a time (control::shutdown).
            let s = Shutdown::start(&ep, now);
            info!(
                sas = s.total,
                limit_s = (s.deadline - now) / 1_000_000_000,
                "stopping: deleting IKE SAs (a second signal ends at once)"
            );
            stopping = Some(s);
        }
        if let Some(s) = stopping.as_mut() {
            if s.poll(&mut ep, now) {
                if ep.sa_count() > 0 {
                    warn!(
                        left = ep.sa_count(),
                        "stopping: time is up; IKE SAs whose peer did not confirm the DELETE are dropped"
                    );
                }
                break;
            }
            if now.saturating_sub(progress_at) >= 1_000_000_000 {
                progress_at = now;
                info!(left = s.left(), "stopping: deleting IKE SAs");
            }
        }
        // Sleep until the first timer is due or a descriptor has work.
        let starting = client
            .as_ref()
            .filter(|_| stopping.is_none())
            .and_then(|c| c.next_due(&ep));
        let timeout = wait::timeout_ms(
            now,
            [
                ep.poll_timeout(),
                mobility.next_deadline(),
                starting,
                installer.next_expiry(),
                stopping.as_ref().map(Shutdown::next_deadline),
                (!io.backlog.is_empty()).then_some(now + INJECT_RETRY_NS),
                (writer.pending_reclaim() > 0).then_some(now + wait::RECLAIM_NS),
            ],
            wait::IDLE_CAP_MS,
        );
        io.wait_readable(timeout, ctl.as_ref(), &signals);
        let now = now_ns();
        io.receive(&mut ep, now, &mut rx);
        if let Some(addrs) = watch.as_mut().and_then(AddrWatch::addresses_changed) {
            mobility.addresses(&mut ep, now, usable(addrs, &listened, &protected));
        }
        while fabric.punt.recv_swap(&mut punted) {
            ep.handle_datagram(now, punted.meta.dst, punted.meta.src, punted.data());
        }
        while fabric.punt_large.recv_swap(&mut punted_large) {
            let p = &punted_large;
            ep.handle_datagram(now, p.meta.dst, p.meta.src, p.data());
        }
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
        mobility.poll(&mut ep, now);
        if let (Some(c), None) = (client.as_mut(), &stopping) {
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
                install_failed += 1;
                refuse_uninstallable(&mut ep, now, &ev, &e);
            }
            if let Some(c) = client.as_mut() {
                c.on_event(&mut ep, &ev, now, stopping.is_some());
            }
            if let Some(s) = stopping.as_mut() {
                s.on_event(&ev);
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
        if let Some(server) = ctl.as_mut() {
            let cc = client.as_ref().map(|c| c.counters).unwrap_or_default();
            let extra = [
                ("mobike_rotations", mobility.rotations),
                ("mobike_rotations_stuck", mobility.rotations_stuck),
                ("install_failed", install_failed),
                ("inject_dropped", io.inject_dropped),
                ("ike_send_failed", io.send_failed),
            ];
            let extra: Vec<(&str, u64)> = extra.into_iter().chain(cc.entries()).collect();
            server.poll(|req| handle(req, &mut ep, &installer, &names, &fabric, &writer, &extra));
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

/// An event the dataplane could not take must not look established to the peer:
/// an IKE SA without a path is deleted, a child SA without room is taken out and
/// deleted at the peer (the responder refuses new children before this happens,
/// `max_child_sas`; this covers the rest, such as a rekey finding the table full).
fn refuse_uninstallable(ep: &mut Endpoint, now: u64, ev: &Event, e: &InstallError) {
    match ev {
        Event::IkeUp { sa, .. } => {
            warn!(sa = %hex_spi(*sa), error = %e, "dataplane full: deleting the IKE SA");
            ep.delete(now, *sa);
        }
        Event::ChildUp { sa, child } => {
            warn!(sa = %hex_spi(*sa), child = child.id, error = %e, "dataplane full: deleting the child SA");
            ep.drop_child(now, *sa, child.id);
        }
        // The child just taken out above was never installed.
        Event::ChildDown { .. } if matches!(e, InstallError::UnknownChild(_)) => {}
        _ => warn!(error = %e, event = ?ev, "dataplane install failed"),
    }
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
    /// For messages longer than a packet buffer (the workers' large inject queues).
    scratch_large: PacketBuf,
    /// IKE messages for the NAT-T port waiting for room in a worker's inject channel,
    /// in order (a burst of IKE_AUTH exchanges can outrun one worker's burst).
    backlog: VecDeque<(Transmit, u32)>,
    backlog_max: usize,
    /// Workers whose inject queues got something since they were last notified.
    notify: Vec<bool>,
    inject_dropped: u64,
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
            if self.backlog.len() >= self.backlog_max {
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
    /// room (messages longer than a packet buffer into their large inject channels), then
    /// wakes the workers that got something.
    fn flush_inject(&mut self) {
        let workers = self.fabric.inject.len().max(1);
        while let Some((t, tag)) = self.backlog.front() {
            let w = *tag as usize % workers;
            let large = NON_ESP_MARKER.len() + t.data.len() > MAX_FRAME;
            let (queue, b) = if large {
                (self.fabric.inject_large.get(w), &mut self.scratch_large)
            } else {
                (self.fabric.inject.get(w), &mut self.scratch)
            };
            let Some(ch) = queue else {
                self.inject_dropped += 1;
                self.backlog.pop_front();
                continue;
            };
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
                break;
            }
            if let Some(n) = self.notify.get_mut(w) {
                *n = true;
            }
            self.backlog.pop_front();
        }
        // Once per worker and flush; a syscall only for a worker that sleeps.
        for (w, n) in self.notify.iter_mut().enumerate() {
            if std::mem::take(n) {
                if let Some(ch) = self.fabric.inject.get(w) {
                    ch.notify();
                }
            }
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
            behind_nat,
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
            behind_nat,
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
            let code = match reason {
                FailReason::Refused(c) | FailReason::PeerError(c) => *c,
                _ => 0,
            };
            // The refusals an operator acts on, in words (RFC 7296 3.10.1).
            let detail = match code {
                35 => "no room for more child SAs (NO_ADDITIONAL_SAS: the gateway's dataplane.max_sas)",
                36 => "address pool exhausted (INTERNAL_ADDRESS_FAILURE)",
                38 => "traffic selectors not acceptable (TS_UNACCEPTABLE)",
                14 => "no common ESP proposal (NO_PROPOSAL_CHOSEN)",
                _ => "",
            };
            warn!(sa = %hex_spi(*sa), ?reason, detail, "child SA failed")
        }
        Event::IkeRekeyed { old, new } => {
            info!(old = %hex_spi(*old), new = %hex_spi(*new), "IKE SA rekeyed")
        }
        Event::PathChanged {
            sa,
            local,
            remote,
            encap,
            behind_nat,
        } => info!(sa = %hex_spi(*sa), %local, %remote, encap, behind_nat, "path changed"),
        Event::IkeDown { sa, reason } => info!(sa = %hex_spi(*sa), ?reason, "IKE SA down"),
    }
}

fn ike_counters(c: &Counters) -> Vec<(String, u64)> {
    c.entries()
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
    extra: &[(&str, u64)],
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
            counters.extend(
                extra
                    .iter()
                    .filter(|(_, v)| *v != 0)
                    .map(|(n, v)| (n.to_string(), *v)),
            );
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
