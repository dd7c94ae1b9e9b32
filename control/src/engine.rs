//! The engine of `mobiked gateway` and `mobiked client`, sans-IO: the IKE core
//! ([`Endpoint`]), the client's setup window ([`Client`]), MOBIKE's triggers
//! ([`Mobility`]), the paced stop ([`Shutdown`]) and the [`Installer`] that writes what
//! they decide into the dataplane's tables.
//!
//! In: datagrams ([`Engine::handle_datagram`]), the host's addresses
//! ([`Engine::host_addresses_changed`]), what the workers report
//! ([`Engine::peer_moved`]), control commands ([`Engine::command`]), the stop
//! ([`Engine::stop`]) and time (every call takes `now`; [`Engine::poll`] runs what is
//! due). Out: datagrams with the path whose link header they use
//! ([`Engine::poll_transmit`]), table publications (through the [`TableWriter`] the
//! engine owns; workers hold its readers) and the next deadline
//! ([`Engine::next_deadline`]). The binary owns the sockets and the poll(2) loop; tests
//! drive engines over in-memory links with a virtual clock.

mod addresses;
mod events;
mod observe;
mod report;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use shared::path::PathId;
use shared::table::{TableReader, TableWriter};
use tracing::{debug, info, warn};

use crate::client::Client;
use crate::config::StaticConfig;
use crate::ctl::{Request, Response};
use crate::ike::conn::{Conn, Selector};
use crate::ike::crypto::random::Random;
use crate::ike::sa::{Endpoint, EndpointConfig, Event, Transmit};
use crate::installer::{InstallError, Installer, L2Resolver};
use crate::mobility::Mobility;
use crate::shutdown::Shutdown;

pub use addresses::usable;
pub use events::hex_spi;
pub use observe::Observation;

/// While retired table versions wait for the workers' quiescent points, look again
/// this soon.
pub const RECLAIM_NS: u64 = 10_000_000;
/// Progress of a stop is logged this often.
const STOP_PROGRESS_NS: u64 = 1_000_000_000;

/// Which end the engine runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// Answers (`mobiked gateway`): one instance of each connection.
    Gateway,
    /// Initiates (`mobiked client`): each connection's `instances`.
    Client,
}

crate::named_counters! {
/// What the engine itself counted (reported by `mobiked ctl stats`).
pub struct EngineCounters {
    /// Events the dataplane's tables could not take (full, or an unknown SA); the SA
    /// concerned is deleted.
    install_failed => "install_failed",
}
}

/// One engine: see the module documentation.
pub struct Engine {
    ep: Endpoint,
    installer: Installer,
    writer: TableWriter,
    client: Option<Client>,
    mobility: Mobility,
    stopping: Option<Shutdown>,
    finished: bool,
    names: Vec<String>,
    /// Loopback addresses the configuration listens on or uses (127/8 is routed to
    /// `lo`, not listed on it, so the host's address list never has them).
    loopback: Vec<IpAddr>,
    /// What the tunnels protect: the clear side's addresses are not MOBIKE's.
    protected: Vec<Selector>,
    out: VecDeque<(Transmit, PathId)>,
    counters: EngineCounters,
    progress_at: u64,
    /// Timed events for benchmarks ([`Self::observe`]); None in service.
    observer: Option<observe::Observer>,
}

impl Engine {
    /// An engine for `cfg` in `role`, at time `now`. Its tables have the sizes the
    /// configuration asks for; take the workers' readers with [`Self::table_reader`]
    /// before they start.
    pub fn new(
        cfg: &StaticConfig,
        role: Role,
        rng: Box<dyn Random + Send>,
        now: u64,
    ) -> Result<Engine, String> {
        if cfg.connections.is_empty() {
            return Err(format!(
                "no `connections:`; `mobiked {}` needs at least one (static SAs run with `mobiked run`)",
                match role {
                    Role::Gateway => "gateway",
                    Role::Client => "client",
                }
            ));
        }
        let udp_only = matches!(cfg.cipher.backend, crate::config::CipherBackend::Udp { .. });
        let conns = connections(cfg, role, udp_only);
        let tc = cfg.table_config();
        let writer = TableWriter::new(tc);
        let installer = Installer::new(&writer, udp_only, cfg.dataplane.replay_window);
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
        let ep = Endpoint::new(ecfg, conns, rng);
        let pace = crate::client::Pace {
            window: cfg.ike.setup_window,
            rate: cfg.ike.setup_rate,
        };
        let client = (role == Role::Client).then(|| Client::paced(ep.conns(), now, pace));
        let mobility = Mobility::new(&ep);
        let loopback: Vec<IpAddr> = cfg
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
        // The copies of a connection share their selectors: each once.
        let mut protected: Vec<Selector> = ep
            .conns()
            .iter()
            .flat_map(|c| c.local_ts.iter().copied())
            .collect();
        protected.sort_unstable_by_key(|s| (s.start, s.end, s.protocol, s.start_port, s.end_port));
        protected.dedup();
        Ok(Engine {
            ep,
            installer,
            writer,
            client,
            mobility,
            stopping: None,
            finished: false,
            names,
            loopback,
            protected,
            out: VecDeque::new(),
            counters: EngineCounters::default(),
            progress_at: now,
            observer: None,
        })
    }

    /// Sets how a path's Ethernet header is found (afpacket cipher backend).
    pub fn with_l2(mut self, resolve: L2Resolver) -> Engine {
        self.installer = self.installer.with_l2(resolve);
        self
    }

    /// Keeps the events that time tunnels and handovers for [`Self::poll_observation`]
    /// (benchmarks and the lab; the caller must drain them).
    pub fn observe(&mut self) {
        self.observer.get_or_insert_with(observe::Observer::default);
        self.mobility.observe();
    }

    /// The next observed event (see [`Self::observe`]).
    pub fn poll_observation(&mut self) -> Option<Observation> {
        let o = self.observer.as_mut()?;
        if let Some((at, sa, due)) = self.mobility.poll_started() {
            return Some(Observation::RotationStarted { at, sa, due });
        }
        o.pop()
    }

    /// Observations dropped because nobody drained them.
    pub fn observations_dropped(&self) -> u64 {
        self.observer.as_ref().map_or(0, |o| o.dropped)
    }

    /// Tells MOBIKE which address pairs the host has a route for (tried first).
    pub fn set_route_oracle(&mut self, f: Box<dyn Fn(IpAddr, IpAddr) -> bool + Send>) {
        self.ep.set_route_oracle(f);
    }

    /// Worker `w`'s view of the tables (once per worker).
    pub fn table_reader(&mut self, w: usize) -> Option<TableReader> {
        self.writer.reader(w)
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    pub fn installer(&self) -> &Installer {
        &self.installer
    }

    pub fn writer(&self) -> &TableWriter {
        &self.writer
    }

    /// The connection names, by connection id.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// One received IKE datagram (on the IKE port, or punted by a worker from the
    /// NAT-T port with its non-ESP marker stripped).
    pub fn handle_datagram(
        &mut self,
        now: u64,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.ep.handle_datagram(now, local, remote, data);
    }

    /// The host's addresses at start: used at once.
    pub fn set_host_addresses(&mut self, now: u64, addrs: Vec<IpAddr>) {
        let usable = usable(addrs, &self.loopback, &self.protected);
        self.ep.set_own_addrs(now, &usable);
    }

    /// The host's addresses changed: MOBIKE hears of it after the debounce.
    pub fn host_addresses_changed(&mut self, now: u64, addrs: Vec<IpAddr>) {
        let usable = usable(addrs, &self.loopback, &self.protected);
        self.mobility.addresses(&mut self.ep, now, usable);
    }

    /// A worker saw an inbound SA's packets come from a new outer source. The IKE SA
    /// does not move for it (only UPDATE_SA_ADDRESSES moves it, RFC 4555 3.5); DPD
    /// relies on its own probes.
    pub fn peer_moved(&mut self, spi: u32, from: SocketAddr, to: SocketAddr) {
        debug!(spi = format_args!("{spi:#010x}"), %from, %to, "peer sends from a new address");
    }

    /// Starts the stop: every IKE SA is deleted, a window at a time
    /// ([`crate::shutdown`]); [`Self::is_finished`] says when it is done.
    pub fn stop(&mut self, now: u64) {
        if self.stopping.is_some() {
            return;
        }
        let s = Shutdown::start(&self.ep, now);
        info!(
            sas = s.total,
            limit_s = (s.deadline - now) / 1_000_000_000,
            "stopping: deleting IKE SAs (a second signal ends at once)"
        );
        self.progress_at = now;
        self.stopping = Some(s);
    }

    /// Whether a stop is in progress.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_some()
    }

    /// The stop is done: every IKE SA was deleted (or its time ran out).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Runs what is due at `now` and what the inputs since the last call caused: IKE
    /// timers, MOBIKE triggers, the client's initiations, the stop; installs the
    /// events into the tables with one publication, and queues the datagrams to send.
    pub fn poll(&mut self, now: u64) {
        if let Some(s) = self.stopping.as_mut() {
            if !self.finished && s.poll(&mut self.ep, now) {
                if self.ep.sa_count() > 0 {
                    warn!(
                        left = self.ep.sa_count(),
                        "stopping: time is up; IKE SAs whose peer did not confirm the DELETE are dropped"
                    );
                }
                self.finished = true;
            } else if now.saturating_sub(self.progress_at) >= STOP_PROGRESS_NS {
                self.progress_at = now;
                info!(left = s.left(), "stopping: deleting IKE SAs");
            }
        }
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        self.mobility.poll(&mut self.ep, now);
        if let (Some(c), None) = (self.client.as_mut(), &self.stopping) {
            c.start_due(&mut self.ep, now);
        }
        self.install_events(now);
        self.installer.expire(&mut self.writer, now);
        self.installer.commit(&mut self.writer);
        self.writer.reclaim();
        // After the events: a path installed by this turn gives its link header to
        // the messages that brought it up.
        while let Some(t) = self.ep.poll_transmit() {
            let tag = self
                .installer
                .path_between(&self.writer, t.local, t.remote)
                .unwrap_or(0);
            self.out.push_back((t, tag));
        }
    }

    fn install_events(&mut self, now: u64) {
        while let Some(ev) = self.ep.poll_event() {
            events::log(&ev, &self.names, &self.installer);
            if let Err(e) = self.installer.on_event(&mut self.writer, now, &ev) {
                self.counters.install_failed += 1;
                refuse_uninstallable(&mut self.ep, now, &ev, &e);
            }
            if let Some(o) = self.observer.as_mut() {
                o.event(now, &ev, &self.installer);
            }
            if let Some(c) = self.client.as_mut() {
                c.on_event(&mut self.ep, &ev, now, self.stopping.is_some());
            }
            if let Some(s) = self.stopping.as_mut() {
                s.on_event(&ev);
            }
            self.mobility.on_event(&self.ep, now, &ev);
        }
    }

    /// The next datagram to send, with the path whose link header it uses (0 when no
    /// IKE SA owns that address pair yet).
    pub fn poll_transmit(&mut self) -> Option<(Transmit, PathId)> {
        self.out.pop_front()
    }

    /// When [`Self::poll`] next has something to do without new input.
    pub fn next_deadline(&mut self, now: u64) -> Option<u64> {
        let starting = self
            .client
            .as_ref()
            .filter(|_| self.stopping.is_none())
            .and_then(|c| c.next_due(&self.ep));
        [
            self.ep.poll_timeout(),
            self.mobility.next_deadline(),
            starting,
            self.installer.next_expiry(),
            self.stopping
                .as_ref()
                .filter(|_| !self.finished)
                .map(Shutdown::next_deadline),
            (self.writer.pending_reclaim() > 0).then_some(now + RECLAIM_NS),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// After the stop: whatever the deletions left (a peer that did not answer)
    /// leaves the tables too.
    pub fn finish(&mut self, now: u64) {
        while let Some(ev) = self.ep.poll_event() {
            let _ = self.installer.on_event(&mut self.writer, now, &ev);
        }
        self.installer.commit(&mut self.writer);
    }

    /// Every counter of the engine and its parts, zeros included, and the gauges
    /// (`ike_sas`, `child_sas`...). The binary adds the dataplane's and its sockets'.
    pub fn stats(&self) -> Vec<(String, u64)> {
        let client = self.client.as_ref().map(|c| c.counters).unwrap_or_default();
        let ep = &self.ep;
        let gauges = [
            ("ike_sas", ep.sa_count()),
            ("ike_established", ep.established()),
            ("ike_half_open", ep.half_open()),
            ("child_sas", ep.child_count()),
            ("leased", ep.leased()),
        ];
        ep.counters()
            .entries()
            .chain(gauges.into_iter().map(|(n, v)| (n, v as u64)))
            .chain(client.entries())
            .chain(self.mobility.counters.entries())
            .chain(self.counters.entries())
            .map(|(n, v)| (n.to_string(), v))
            .collect()
    }

    /// Answers a control command. `extra`: the counters the engine does not keep
    /// (the dataplane's, the sockets'), appended to `stats`.
    pub fn command(&mut self, now: u64, req: Request, extra: Vec<(String, u64)>) -> Response {
        report::handle(self, now, req, extra)
    }
}

/// The connections the endpoint runs: a client expands `instances`; with the udp
/// backend every connection UDP-encapsulates (RFC 7296 2.23: forced NAT-T), since that
/// backend cannot send plain ESP and the peer must encapsulate too.
fn connections(cfg: &StaticConfig, role: Role, udp_only: bool) -> Vec<Conn> {
    let mut out = Vec::new();
    for cc in &cfg.connections {
        // Set on the template: the copies share its policy (see `Conn`).
        let mut cc = cc.clone();
        if udp_only {
            cc.conn.force_encap = true;
        }
        match role {
            Role::Client => out.extend(cc.instances()),
            Role::Gateway => out.push(cc.instance(1)),
        }
    }
    // Held for the process's life, one per instance on a client: no spare room (a
    // Vec grown by doubling left up to half of it unused, some 120 bytes a tunnel
    // at 100,000 instances).
    out.shrink_to_fit();
    out
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
