//! `mobiked gateway` and `mobiked client`: one [`Node`] (the sans-IO IKE engine driven
//! by real sockets, its events installed into the dataplane's tables) until SIGINT or
//! SIGTERM, which deletes every IKE SA before the process ends (a second signal ends
//! it at once).
//!
//! With `--traffic PPS` the protected side is the traffic generator instead of a TUN:
//! every tunnel carries a sequenced, timestamped stream from the dataplane itself (the
//! client from its virtual IP to the first address of its remote selectors, the
//! gateway back to each client's virtual IP), what arrives is accounted per tunnel,
//! and at the end the process prints a run report (`--report` JSON, `--html`).

use crate::node::{Node, NodeOptions};
use crate::run::{self, Port};
use crate::streams::{self, StreamIds, Streams, Tally};
use crate::wait::{self, StopSignal};
use control::config::StaticConfig;
use control::engine::Role;
use dataplane::io::flows::{FlowGenConfig, FlowSinkConfig, FlowTable, TrafficPort};
use dataplane::io::null::NullPort;
use dataplane::io::traffic::PacketSize;
use dataplane::io::Layer;
use perf::rig::report::RunReport;
use shared::clock::now_ns;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use tracing::info;

#[derive(clap::Args)]
pub struct IkeArgs {
    /// The YAML configuration (with `connections:`).
    #[arg(short, long)]
    config: PathBuf,
    /// Run without the protected side: SAs are negotiated and installed, inner traffic
    /// goes nowhere (signalling load tests, or runs without the privilege a TUN needs).
    #[arg(long, conflicts_with = "traffic")]
    no_clear: bool,
    /// Traffic generator: a stream of this many packets per second in every tunnel,
    /// made and received by the dataplane (no TUN); a run report at the end.
    #[arg(long, value_name = "PPS")]
    traffic: Option<u64>,
    /// Stream packet size in bytes (inner IP packet), or `imix`.
    #[arg(long, default_value = "256", requires = "traffic")]
    size: String,
    /// Which ends send: `up` (clients), `down` (the gateway) or `both`; either end
    /// receives and accounts whatever comes.
    #[arg(long, default_value = "both", requires = "traffic")]
    direction: String,
    /// The client's far end of every stream (default: the first address of the
    /// connection's remote selectors); the gateway's own end (default: the first
    /// address of its local selectors).
    #[arg(long, value_name = "IP", requires = "traffic")]
    stream_host: Option<IpAddr>,
    /// Write the run report as JSON here at the end.
    #[arg(long, requires = "traffic")]
    report: Option<PathBuf>,
    /// Write the run report as an HTML page with plots here at the end.
    #[arg(long, requires = "traffic")]
    html: Option<PathBuf>,
}

pub fn main(args: &IkeArgs, role: Role) -> Result<(), String> {
    let config = &args.config;
    let cfg = control::config::load(config)
        .map_err(|e| format!("{}: configuration has errors:\n{e}", config.display()))?;
    if args.traffic.is_some() {
        return traffic_main(args, &cfg, role);
    }
    let no_clear = args.no_clear;
    let clear_cfg = cfg.clone();
    let opts = NodeOptions {
        clear: Box::new(move |w| -> Result<Port, String> {
            if no_clear {
                // Whatever the workers decrypt is dropped.
                Ok(Box::new(NullPort::new(Layer::Ip)))
            } else {
                run::open_clear(&clear_cfg, w)
            }
        }),
        reuse_addr: false,
        watch_addresses: true,
        observe: false,
        thread_prefix: "mobiked",
    };
    let mut node =
        Node::open(&cfg, role, opts).map_err(|e| format!("{}: {e}", config.display()))?;
    let signals = StopSignal::register().map_err(|e| format!("signal: {e}"))?;
    while !node.engine.is_finished() {
        node.turn(
            signals.requested(),
            wait::IDLE_CAP_MS,
            Some(&signals),
            |_| {},
        );
    }
    node.close();
    Ok(())
}

/// How often a traffic run logs its progress.
const STATUS_NS: u64 = 5_000_000_000;
/// Idle workers wake this often to make the streams' next packets.
const TICK_NS: u64 = 1_000_000;

/// The streams' settings from the command line and the configuration.
struct TrafficPlan {
    rate: u64,
    size: PacketSize,
    send: bool,
    ids: StreamIds,
    capacity: u32,
    far: IpAddr,
}

fn traffic_plan(args: &IkeArgs, cfg: &StaticConfig, role: Role) -> Result<TrafficPlan, String> {
    let rate = args.traffic.unwrap_or(0);
    if !(1..=1_000_000).contains(&rate) {
        return Err("--traffic: give 1 to 1000000 packets per second per tunnel".into());
    }
    if cfg.dataplane.workers != 1 {
        return Err(format!(
            "dataplane.workers is {}: the traffic generator runs on one worker; set `workers: 1`",
            cfg.dataplane.workers
        ));
    }
    let size = streams::parse_size(&args.size)?;
    let (up, down) = streams::parse_direction(&args.direction)?;
    let conn = cfg
        .connections
        .first()
        .ok_or("the traffic generator needs a connection")?;
    let max_sas = u32::try_from(cfg.dataplane.max_sas).unwrap_or(u32::MAX);
    Ok(match role {
        Role::Client => {
            let count = cfg
                .connections
                .iter()
                .map(|c| u64::from(c.instances))
                .sum::<u64>()
                .min(u64::from(u32::MAX)) as u32;
            let far = args
                .stream_host
                .or_else(|| conn.conn.remote_ts.first().map(first_host))
                .ok_or(
                    "--stream-host: the connection has no remote_ts to send to; name the host",
                )?;
            TrafficPlan {
                rate,
                size,
                send: up,
                ids: StreamIds::Conn { count },
                // The gateway's streams come numbered by its pool: room for both.
                capacity: count.max(max_sas),
                far,
            }
        }
        Role::Gateway => {
            let pool = cfg
                .pools
                .first()
                .ok_or("--traffic on a gateway numbers its streams by its address pool: configure `pools:`")?;
            let far = args
                .stream_host
                .or_else(|| conn.conn.local_ts.first().map(first_host))
                .ok_or(
                    "--stream-host: the connection has no local_ts to send from; name the host",
                )?;
            let pool_size = pool.size;
            TrafficPlan {
                rate,
                size,
                send: down,
                ids: StreamIds::Pool {
                    base: pool.start,
                    size: pool_size,
                },
                capacity: pool_size.max(max_sas),
                far,
            }
        }
    })
}

/// A selector's first host: past the network address of a prefix (10.1.0.0/24 ->
/// 10.1.0.1), the address itself for a single host.
fn first_host(s: &control::ike::conn::Selector) -> IpAddr {
    match (s.start, s.end) {
        (IpAddr::V4(a), IpAddr::V4(b)) if a < b => IpAddr::V4((u32::from(a) + 1).into()),
        (IpAddr::V6(a), IpAddr::V6(b)) if a < b => IpAddr::V6((u128::from(a) + 1).into()),
        (a, _) => a,
    }
}

fn traffic_main(args: &IkeArgs, cfg: &StaticConfig, role: Role) -> Result<(), String> {
    let p = traffic_plan(args, cfg, role)?;
    let (writer, table) = FlowTable::new(p.capacity);
    let gen = FlowGenConfig {
        rate_pps_per_flow: p.rate,
        size: p.size,
        bucket: 4,
    };
    let sink = FlowSinkConfig {
        capacity: p.capacity,
        window: 128,
        // A gap is an arrival more than three packet intervals after the one before.
        gap_threshold_ns: 3_000_000_000 / p.rate,
        verify_checksum: true,
    };
    let port = TrafficPort::new(table, gen, sink)
        .with_tick(TICK_NS)
        .map_err(|e| format!("a timer for the traffic generator: {e}"))?;
    let (gen_stats, sink_stats) = (port.gen_stats(), port.sink_stats());
    let mut port = Some(port);
    let opts = NodeOptions {
        clear: Box::new(move |_| port.take().ok_or_else(|| "one worker only".to_string())),
        reuse_addr: false,
        watch_addresses: true,
        observe: true,
        thread_prefix: "mobiked",
    };
    let mut node =
        Node::open(cfg, role, opts).map_err(|e| format!("{}: {e}", args.config.display()))?;
    let mut streams = Streams::new(writer, role, p.ids, p.send, p.far);
    let mut tally = Tally::new(p.ids);
    let signals = StopSignal::register().map_err(|e| format!("signal: {e}"))?;
    let started = now_ns();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut status_at = started + STATUS_NS;
    let mut stopped_at = None;
    while !node.engine.is_finished() {
        let stop = signals.requested();
        if stop && stopped_at.is_none() {
            stopped_at = Some(now_ns());
            tally.mark_stop();
        }
        node.turn(stop, wait::IDLE_CAP_MS.min(100), Some(&signals), |ev| {
            tally.worker_event(ev)
        });
        while let Some(o) = node.engine.poll_observation() {
            streams.observe(&o);
            if role == Role::Client {
                tally.client(&o);
            }
        }
        let now = now_ns();
        if now >= status_at {
            status_at = now + STATUS_NS;
            info!(
                streams = streams.active(),
                handovers = tally.handovers.completed,
                sent = gen_stats.packets.load(Ordering::Relaxed),
                received = sink_stats.received.load(Ordering::Relaxed),
                lost = sink_stats.lost.load(Ordering::Relaxed),
                "traffic"
            );
        }
    }
    let secs = stopped_at.unwrap_or_else(now_ns).saturating_sub(started) as f64 / 1e9;
    let stats = node.stats();
    let ports = node.close();
    let Some((_, port)) = ports.into_iter().next() else {
        return Err("the worker thread panicked".into());
    };
    let (gen, sink) = port.into_parts();
    let sent = gen.stats().packets.load(Ordering::Relaxed);
    let name = match role {
        Role::Client => "client",
        Role::Gateway => "gateway",
    };
    let mut r = RunReport::new(
        &format!(
            "{name}: {} pps per tunnel {}, {} B",
            p.rate, args.direction, args.size
        ),
        &format!("mobiked {name} --traffic"),
    );
    r.started_unix_s = started_unix;
    r.duration_s = secs;
    r.setting("configuration", args.config.display());
    r.setting(
        "streams",
        format!(
            "{} pps per tunnel {}, {} B",
            p.rate, args.direction, args.size
        ),
    );
    r.setting("far end", p.far);
    streams::stream_report(
        &mut r,
        (role == Role::Client).then_some(&tally),
        &[&sink],
        sent,
        false,
        secs,
    );
    let count = |n: &str| stats.iter().find(|(k, _)| k == n).map_or(0, |(_, v)| *v) as f64;
    for (n, key, help) in [
        (
            "setup failures",
            "client_setup_failed",
            "IKE SA setups that failed (retried)",
        ),
        (
            "retries",
            "client_retries",
            "initiations scheduled again after a failure",
        ),
        (
            "rotations stuck",
            "mobike_rotations_stuck",
            "due with no other pair",
        ),
        (
            "IKE SAs at the end",
            "ike_sas",
            "before the last DELETEs were confirmed",
        ),
    ] {
        r.total(n, count(key), "", help);
    }
    streams::publish(&r, args.report.as_deref(), "--report", args.html.as_deref())?;
    Ok(())
}
