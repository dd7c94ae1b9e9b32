//! The traffic generator's glue between an IKE node and its dataplane streams: which
//! tunnel a stream belongs to and where it goes, started when the tunnel's child SA is
//! up and ended with its IKE SA ([`Streams`]); what the observations and worker events
//! add up to ([`Tally`]); and the part of a run report that the streams fill
//! ([`stream_report`]). Used by `mobiked lab` and by `mobiked client`/`gateway
//! --traffic`.

use crate::node::Node;
use control::ctl::Request;
use control::engine::{Observation, Role};
use dataplane::io::flows::{FlowSink, FlowWriter, TrafficPort};
use dataplane::io::traffic::PacketSize;
use dataplane::worker::WorkerEvent;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use perf::rig::handover::Handovers;
use perf::rig::report::{Metric, RunReport};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The UDP port of every stream, at both ends.
pub const STREAM_PORT: u16 = 9;
/// A gateway's stream to a new client starts this long after the child SA is up at
/// the gateway (the client installs it when the IKE_AUTH answer arrives).
pub const DOWN_START_NS: u64 = 50_000_000;

/// A node whose stop takes longer than this is left (its peers' DELETEs unconfirmed).
pub const STOP_LIMIT: Duration = Duration::from_secs(10);

/// `--size`: bytes (64 to 9000) or `imix`.
pub fn parse_size(s: &str) -> Result<PacketSize, String> {
    match s {
        "imix" => Ok(PacketSize::Imix),
        s => s
            .parse()
            .ok()
            .filter(|n| (64..=9000).contains(n))
            .map(PacketSize::Fixed)
            .ok_or_else(|| format!("--size: `{s}` is neither 64..=9000 bytes nor `imix`")),
    }
}

/// `--direction`: whether the clients send (up) and whether the gateway does (down).
pub fn parse_direction(d: &str) -> Result<(bool, bool), String> {
    match d {
        "up" => Ok((true, false)),
        "down" => Ok((false, true)),
        "both" => Ok((true, true)),
        d => Err(format!("--direction: `{d}` is not up, down or both")),
    }
}

/// A progress bar on stderr when it is a terminal (hidden otherwise: the caller prints
/// a line now and then instead).
pub fn progress_bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// What a node thread tells the thread that measures.
pub enum NodeMsg {
    /// An observation of the client's engine.
    Client(Observation),
    /// A worker event of either node.
    Worker(WorkerEvent),
}

impl NodeMsg {
    pub fn into_tally(self, t: &mut Tally) {
        match self {
            NodeMsg::Client(o) => t.client(&o),
            NodeMsg::Worker(ev) => t.worker_event(&ev),
        }
    }
}

/// A node's control thread in the lab and the rig: turns (sleeping at most `cap_ms`)
/// until the engine finished its stop, or the stop took longer than [`STOP_LIMIT`];
/// starts and ends the streams of its tunnels, carries out `cmds` (the next turn does
/// not sleep then), and sends the worker events and the client's observations on.
/// Returns the observations the engine dropped.
pub fn run_node<M: From<NodeMsg>>(
    node: &mut Node<TrafficPort>,
    role: Role,
    streams: &mut Streams,
    stop: &AtomicBool,
    cap_ms: u64,
    cmds: Option<&mpsc::Receiver<Request>>,
    tx: &mpsc::Sender<M>,
) -> u64 {
    let mut stopping: Option<Instant> = None;
    while !node.engine.is_finished() {
        let stop_now = stop.load(Ordering::Relaxed);
        if stop_now && stopping.is_none() {
            stopping = Some(Instant::now());
        }
        if stopping.is_some_and(|t| t.elapsed() > STOP_LIMIT) {
            break;
        }
        let mut commanded = false;
        while let Some(req) = cmds.and_then(|c| c.try_recv().ok()) {
            let _ = node
                .engine
                .command(shared::clock::now_ns(), req, Vec::new());
            commanded = true;
        }
        let cap = if commanded { 0 } else { cap_ms };
        node.turn(stop_now, cap, None, |ev| {
            let _ = tx.send(NodeMsg::Worker(*ev).into());
        });
        while let Some(o) = node.engine.poll_observation() {
            streams.observe(&o);
            if role == Role::Client {
                let _ = tx.send(NodeMsg::Client(o).into());
            }
        }
    }
    node.engine.observations_dropped()
}

/// How a tunnel's stream id is found; both ends of a stream must agree for the
/// receiver to tell tunnels apart.
#[derive(Clone, Copy, Debug)]
pub enum StreamIds {
    /// The virtual IP's offset in the pool starting at `base` (either end knows it).
    Pool { base: IpAddr, size: u32 },
    /// The client's connection instance (what a client alone knows).
    Conn { count: u32 },
}

impl StreamIds {
    /// The stream id of a virtual IP, for the `Pool` way.
    pub fn of_vip(&self, vip: IpAddr) -> Option<u32> {
        let Self::Pool { base, size } = *self else {
            return None;
        };
        let off = match (vip, base) {
            (IpAddr::V4(v), IpAddr::V4(b)) => u128::from(u32::from(v).wrapping_sub(u32::from(b))),
            (IpAddr::V6(v), IpAddr::V6(b)) => u128::from(v).wrapping_sub(u128::from(b)),
            _ => return None,
        };
        u32::try_from(off).ok().filter(|o| *o < size)
    }
}

/// Starts and ends one node's streams as its tunnels come and go (see the module
/// documentation). `far`: the address at the other end of every stream (a client's
/// host behind the gateway; for a gateway, its own protected address).
pub struct Streams {
    writer: FlowWriter,
    role: Role,
    ids: StreamIds,
    /// Whether this node sends (else its port only receives).
    send: bool,
    far: IpAddr,
    sa_conn: HashMap<u64, usize>,
    sa_flow: HashMap<u64, u32>,
}

impl Streams {
    pub fn new(writer: FlowWriter, role: Role, ids: StreamIds, send: bool, far: IpAddr) -> Self {
        Streams {
            writer,
            role,
            ids,
            send,
            far,
            sa_conn: HashMap::new(),
            sa_flow: HashMap::new(),
        }
    }

    /// Streams running now.
    pub fn active(&self) -> u32 {
        self.writer.active()
    }

    pub fn observe(&mut self, o: &Observation) {
        match o {
            Observation::IkeUp { sa, conn, .. } => {
                self.sa_conn.insert(*sa, *conn);
            }
            Observation::ChildUp {
                at,
                sa,
                local,
                remote,
                rekey: false,
                ..
            } if self.send && !self.sa_flow.contains_key(sa) => {
                // The client's virtual IP (or protected address) is its narrowed local
                // selector; the gateway sees it as the remote one.
                let mine = match self.role {
                    Role::Client => *local,
                    Role::Gateway => *remote,
                };
                let Some(vip) = mine else { return };
                let id = match self.ids {
                    StreamIds::Pool { .. } => self.ids.of_vip(vip),
                    StreamIds::Conn { count } => self
                        .sa_conn
                        .get(sa)
                        .and_then(|c| u32::try_from(*c).ok())
                        .filter(|c| *c < count),
                };
                let Some(id) = id else { return };
                let me = SocketAddr::new(vip, STREAM_PORT);
                let far = SocketAddr::new(self.far, STREAM_PORT);
                let (src, dst, since) = match self.role {
                    Role::Client => (me, far, *at),
                    // The gateway answered IKE_AUTH in this turn: its stream starts
                    // once the client has installed the child SA.
                    Role::Gateway => (far, me, at + DOWN_START_NS),
                };
                if self.writer.set(id, src, dst, since) {
                    self.sa_flow.insert(*sa, id);
                }
            }
            Observation::IkeRekeyed { old, new, .. } => {
                if let Some(f) = self.sa_flow.remove(old) {
                    self.sa_flow.insert(*new, f);
                }
                if let Some(c) = self.sa_conn.remove(old) {
                    self.sa_conn.insert(*new, c);
                }
            }
            Observation::IkeDown { sa, .. } => {
                self.sa_conn.remove(sa);
                if let Some(f) = self.sa_flow.remove(sa) {
                    self.writer.clear(f);
                }
            }
            _ => {}
        }
    }
}

/// A histogram of nanoseconds, 1 ns to an hour.
pub fn ns_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant bounds are valid")
}

/// What the observations of the initiating end (and the workers' events of both ends)
/// add up to.
pub struct Tally {
    pub handovers: Handovers,
    pub up: u64,
    pub down: u64,
    pub rekeys: u64,
    /// Tunnels up when the run's stop began ([`Self::mark_stop`]).
    pub at_stop: Option<u64>,
    pub first_init: Option<u64>,
    pub last_up: u64,
    pub setup: Histogram<u64>,
    /// Per stream id: when its client started to set up (IKE_SA_INIT sent).
    pub init_at: HashMap<u32, u64>,
    ids: StreamIds,
}

impl Tally {
    pub fn new(ids: StreamIds) -> Tally {
        Tally {
            handovers: Handovers::default(),
            up: 0,
            down: 0,
            rekeys: 0,
            at_stop: None,
            first_init: None,
            last_up: 0,
            setup: ns_histogram(),
            init_at: HashMap::new(),
            ids,
        }
    }

    /// An observation of the client's engine.
    pub fn client(&mut self, o: &Observation) {
        match o {
            Observation::IkeUp {
                at, setup_ns, vip, ..
            } => {
                self.up += 1;
                let init = at.saturating_sub(*setup_ns);
                self.first_init = Some(self.first_init.map_or(init, |f| f.min(init)));
                self.last_up = self.last_up.max(*at);
                self.setup.saturating_record((*setup_ns).max(1));
                // The time to first packet pairs a client's setup with a stream at a
                // sink of this run: only pool ids name a stream alike at both ends.
                if let Some(id) = vip.and_then(|v| self.ids.of_vip(v)) {
                    self.init_at.entry(id).or_insert(init);
                }
            }
            Observation::IkeDown { .. } => self.down += 1,
            Observation::ChildUp { rekey: true, .. } => self.rekeys += 1,
            _ => {}
        }
        self.handovers.observe(o);
    }

    /// A worker event: the client's `PathOnWire`, the gateway's `PeerMoved`.
    pub fn worker_event(&mut self, ev: &WorkerEvent) {
        self.handovers.worker_event(ev);
    }

    /// Tunnels established and not gone.
    pub fn tunnels(&self) -> u64 {
        self.up.saturating_sub(self.down)
    }

    /// The stop begins: what is up now is what the run kept up.
    pub fn mark_stop(&mut self) {
        self.at_stop.get_or_insert(self.tunnels());
    }
}

/// What a run's sinks and tally add to its report: setup and handover figures (when
/// the tally saw the clients), packets and their loss, per-stream gaps and latency.
/// `sent`: what the generators made; `paired`: the sinks received what exactly those
/// generators sent (both ends in this run), so `sent - received` is the loss; otherwise
/// the loss is what the sinks found missing between the numbers they saw.
/// `secs`: the traffic's duration.
pub fn stream_report(
    r: &mut RunReport,
    tally: Option<&Tally>,
    sinks: &[&FlowSink],
    sent: u64,
    paired: bool,
    secs: f64,
) {
    let received: u64 = sinks.iter().map(|s| s.totals().received).sum();
    let sum = |f: fn(&dataplane::io::flows::FlowTotals) -> u64| -> f64 {
        sinks.iter().map(|s| f(&s.totals())).sum::<u64>() as f64
    };
    if let Some(t) = tally {
        let setup_s = t
            .first_init
            .map_or(0.0, |f| t.last_up.saturating_sub(f) as f64 / 1e9);
        let h = &t.handovers;
        for (n, v, u, help) in [
            (
                "tunnels up",
                t.up as f64,
                "",
                "IKE SAs the clients established",
            ),
            (
                "tunnels at the end",
                t.at_stop.unwrap_or_else(|| t.tunnels()) as f64,
                "",
                "established and not gone when the stop began",
            ),
            (
                "child SA rekeys",
                t.rekeys as f64,
                "",
                "child SAs the clients' IKE SAs rekeyed (RFC 7296 2.8)",
            ),
            (
                "rekey rate",
                if secs > 0.0 {
                    t.rekeys as f64 / secs
                } else {
                    0.0
                },
                "/s",
                "child SA rekeys per second over the run",
            ),
            (
                "setup time",
                setup_s,
                "s",
                "first IKE_SA_INIT to the last IKE SA up",
            ),
            (
                "setup rate",
                if setup_s > 0.0 {
                    t.up as f64 / setup_s
                } else {
                    0.0
                },
                "/s",
                "tunnels per second while setting up",
            ),
            (
                "handovers started",
                h.started as f64,
                "",
                "UPDATE_SA_ADDRESSES sent",
            ),
            (
                "handovers done",
                h.completed as f64,
                "",
                "answered, SAs moved",
            ),
            (
                "handovers in progress",
                h.in_progress() as f64,
                "",
                "unanswered at the end",
            ),
        ] {
            r.total(n, v, u, help);
        }
    }
    let (lost, lost_help, of) = if paired {
        (
            sent.saturating_sub(received),
            "sent and never received",
            sent,
        )
    } else {
        let gaps: u64 = sinks.iter().map(|s| s.totals().lost).sum();
        (
            gaps,
            "missing between the sequence numbers the sinks saw (the peer's report has the rest)",
            received + gaps,
        )
    };
    for (n, v, u, help) in [
        ("sent", sent as f64, "packets", "by this run's generators"),
        (
            "received",
            received as f64,
            "packets",
            "by this run's sinks",
        ),
        ("lost", lost as f64, "packets", lost_help),
        (
            "loss",
            if of == 0 {
                0.0
            } else {
                lost as f64 * 100.0 / of as f64
            },
            "%",
            "",
        ),
        ("duplicates", sum(|t| t.duplicates), "packets", ""),
        ("reordered", sum(|t| t.reordered), "packets", ""),
        (
            "bad",
            sum(|t| t.bad),
            "packets",
            "not a stream packet of a known tunnel",
        ),
        (
            "throughput",
            if secs > 0.0 {
                received as f64 / secs
            } else {
                0.0
            },
            "pps",
            "received",
        ),
    ] {
        r.total(n, v, u, help);
    }
    let mut latency = ns_histogram();
    let mut gaps = ns_histogram();
    for s in sinks {
        let _ = latency.add(s.latency());
        let _ = gaps.add(s.gaps());
    }
    let mut metrics = Vec::new();
    if let Some(t) = tally {
        metrics.push((
            "setup",
            "ms",
            1e6,
            "one tunnel: first IKE_SA_INIT to the end of IKE_AUTH",
            t.setup.clone(),
        ));
        if !t.init_at.is_empty() {
            // Time to first packet: from a client's first IKE_SA_INIT to its stream's
            // first packet at a sink of this run.
            let mut ttfp = ns_histogram();
            for (id, init) in &t.init_at {
                let first = sinks
                    .iter()
                    .filter_map(|s| s.flow(*id))
                    .map(|f| f.first_rx_ns)
                    .filter(|t| *t != 0)
                    .min();
                if let Some(at) = first {
                    ttfp.saturating_record(at.saturating_sub(*init).max(1));
                }
            }
            metrics.push(("time to first packet", "ms", 1e6, "first IKE_SA_INIT to the stream's first packet at a sink (includes the wait for the stream's next packet)", ttfp));
        }
        let h = &t.handovers.timings;
        metrics.extend([
            ("T_detect", "us", 1e3, "rotation due -> UPDATE_SA_ADDRESSES sent", h.detect.clone()),
            ("T_signal", "ms", 1e6, "UPDATE_SA_ADDRESSES sent -> answer handled, SAs moved", h.signal.clone()),
            ("T_publish", "us", 1e3, "answer handled -> new path published to the workers", h.publish.clone()),
            ("T_wire", "ms", 1e6, "answer handled -> first packet with the new header on the wire (bound by the stream's packet interval)", h.wire.clone()),
        ]);
        if paired {
            // Needs the gateway's workers: only when both ends are in this run.
            metrics.push((
                "handover",
                "ms",
                1e6,
                "rotation due -> first packet from the client's new address at the gateway",
                h.peer.clone(),
            ));
        }
    }
    metrics.push((
        "gap",
        "ms",
        1e6,
        "per stream: arrivals more than three packet intervals apart",
        gaps,
    ));
    metrics.push((
        "one-way latency",
        "us",
        1e3,
        "stream packets, generator to sink",
        latency,
    ));
    for (name, unit, k, help, h) in metrics {
        r.metric(Metric::from_histogram(name, unit, help, &h, k));
    }
}

/// Prints the report's table and writes it as JSON (`json`, named `json_flag` in
/// messages) and as an HTML page (`--html`) where asked.
pub fn publish(
    r: &RunReport,
    json: Option<&std::path::Path>,
    json_flag: &str,
    html: Option<&std::path::Path>,
) -> Result<(), String> {
    print!("{}", perf::rig::report::table(r));
    if let Some(path) = json {
        r.save(path)
            .map_err(|e| format!("{json_flag} {}: {e}", path.display()))?;
    }
    if let Some(path) = html {
        std::fs::write(path, perf::rig::html::page(r))
            .map_err(|e| format!("--html {}: {e}", path.display()))?;
    }
    Ok(())
}
