//! `mobiked lab`: the embedded default. A real mobiked gateway and a few hundred
//! emulated IKEv2 clients in one process over loopback addresses, no root and no
//! setup: every client negotiates its IKE SA and child SA (PSK, a virtual IP from the
//! gateway's pool), MOBIKE with the rotation policy moves it between its own two
//! addresses and the gateway's two (`mobikeiplifetime`), and every tunnel carries a
//! sequenced, timestamped stream from the dataplane itself (no TUN). A live status line
//! while it runs; at the end a table, and on request JSON and an HTML page with plots.
//!
//! Both nodes are the ones `mobiked gateway` and `mobiked client` run ([`Node`]),
//! each with its control thread and one worker. The gateway owns 127.77.0.1 and
//! 127.77.0.2; client `i` owns two addresses from 127.64.0.1 on. They share one pair
//! of ports on this host (`SO_REUSEADDR`: the gateway's specific addresses win the
//! lookup, the clients take the rest on the wildcard).

use crate::node::{Node, NodeOptions};
use crate::streams::{
    parse_direction, parse_size, progress_bar, run_node, stream_report, NodeMsg, StreamIds,
    Streams, Tally,
};
use clap::Args;
use control::engine::Role;
use dataplane::io::flows::{FlowGenConfig, FlowSinkConfig, FlowTable, TrafficPort};
use dataplane::io::traffic::PacketSize;
use perf::rig::report::{RunReport, Series};
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct LabArgs {
    /// Emulated clients (each its own IKE SA, child SA, virtual IP and two addresses).
    #[arg(long, default_value_t = 300)]
    clients: u32,
    /// Seconds from the start until traffic stops (setup included).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Packets per second in each tunnel and direction.
    #[arg(long, default_value_t = 10)]
    rate: u64,
    /// Inner IP packet size in bytes, or `imix` (64/576/1500 in 7:4:1).
    #[arg(long, default_value = "256")]
    size: String,
    /// Traffic direction: `up` (clients to the gateway's LAN), `down` or `both`.
    #[arg(long, default_value = "both")]
    direction: String,
    /// Seconds between address changes of each client (`mobikeiplifetime`; 0 = none).
    #[arg(long, default_value_t = 5.0)]
    rotate: f64,
    /// Seconds between child SA rekeys of each client (`children.rekey_time`; 0 = the
    /// default hour).
    #[arg(long, default_value_t = 0)]
    rekey: u64,
    /// What a rotation changes (`mobikechangeaddrtype`): own-only, peer-only or both.
    #[arg(long, default_value = "both")]
    change: String,
    /// The NAT-T port of both nodes; IKE uses the port below it.
    #[arg(long, default_value_t = 14500)]
    port: u16,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the report as an HTML page with plots.
    #[arg(long)]
    html: Option<PathBuf>,
}

const GW: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 77, 0, 1), Ipv4Addr::new(127, 77, 0, 2)];
const CLIENT_START: Ipv4Addr = Ipv4Addr::new(127, 64, 0, 1);
/// The gateway's protected LAN, where its end of every stream lives.
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const POOL_BASE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 0);
const PSK: &str = "0x6d6f62696b65642d6c61622d70736b2d2d6e6f742d666f722d616e792d757365";
/// Packets in flight get this long to arrive after generation stops.
const DRAIN: Duration = Duration::from_millis(500);
/// How often the series are sampled and the status line redrawn.
const SAMPLE: Duration = Duration::from_millis(250);
/// Idle workers wake this often to make the streams' next packets.
const TICK_NS: u64 = 1_000_000;

struct Plan {
    clients: u32,
    prefix: u8,
    flows: u32,
    up: bool,
    down: bool,
    size: PacketSize,
}

fn plan(args: &LabArgs) -> Result<Plan, String> {
    if !(1..=200_000).contains(&args.clients) {
        return Err("--clients: give 1 to 200000".into());
    }
    if !(args.duration.is_finite() && args.duration >= 1.0 && args.duration <= 86_400.0) {
        return Err("--duration: give seconds from 1 to 86400".into());
    }
    if args.rate > 100_000 {
        return Err("--rate: give at most 100000 packets per second per tunnel".into());
    }
    if !(args.rotate == 0.0 || (args.rotate.is_finite() && args.rotate >= 0.1)) {
        return Err("--rotate: give 0 (no rotation) or at least 0.1 seconds".into());
    }
    if !["own-only", "peer-only", "both"].contains(&args.change.as_str()) {
        return Err(format!(
            "--change: `{}` is not own-only, peer-only or both",
            args.change
        ));
    }
    let (up, down) = parse_direction(&args.direction)?;
    if args.port < 1025 {
        return Err("--port: give a port above 1024 (IKE takes the one below it)".into());
    }
    let size = parse_size(&args.size)?;
    // A pool with room for every client (and the network and broadcast addresses).
    let bits = (u64::from(args.clients) + 2)
        .next_power_of_two()
        .trailing_zeros()
        .max(8) as u8;
    Ok(Plan {
        clients: args.clients,
        prefix: 32 - bits,
        flows: 1 << bits,
        up,
        down,
        size,
    })
}

fn gateway_yaml(args: &LabArgs, p: &Plan) -> String {
    let nat = args.port;
    let ike = args.port - 1;
    format!(
        "dataplane:\n  workers: 1\n  max_sas: {max}\n\
         cipher:\n  backend: udp\n  bind: [\"{g0}:{nat}\", \"{g1}:{nat}\"]\n\
         clear:\n  backend: tun\n  name: unused0\n\
         ike:\n  listen: [{g0}, {g1}]\n  port: {ike}\n  port_nat_t: {nat}\n  cookie_threshold: {cookie}\n\
         pools:\n  - name: lab\n    addrs: {POOL_BASE}/{prefix}\n\
         connections:\n  - name: lab\n    local_id: gw.lab.mobiked\n    remote_id: \"%any\"\n\
         \x20   psk: {PSK}\n    proposals: [aes128gcm16-prfsha256-x25519]\n    esp_proposals: [aes128gcm16]\n\
         \x20   local_ts: [{LAN_HOST}/32]\n    pools: [lab]\n    dpd_delay: 30s\n\
         \x20   mobike: true\n    mobikeaddrpergw: 2\n",
        max = p.clients + p.clients / 4 + 64,
        g0 = GW[0],
        g1 = GW[1],
        cookie = p.clients * 2 + 16,
        prefix = p.prefix,
    )
}

fn client_yaml(args: &LabArgs, p: &Plan) -> String {
    let nat = args.port;
    let ike = args.port - 1;
    let rotate_ms = (args.rotate * 1000.0).round() as u64;
    format!(
        "dataplane:\n  workers: 1\n  max_sas: {max}\n\
         cipher:\n  backend: udp\n  bind: [\"0.0.0.0:{nat}\"]\n\
         clear:\n  backend: tun\n  name: unused0\n\
         ike:\n  listen: [0.0.0.0]\n  port: {ike}\n  port_nat_t: {nat}\n\
         connections:\n  - name: lab\n    peeraddr: \"{g0}:{ike}\"\n\
         \x20   local_id: client-%n@lab.mobiked\n    remote_id: gw.lab.mobiked\n\
         \x20   psk: {PSK}\n    proposals: [aes128gcm16-prfsha256-x25519]\n    esp_proposals: [aes128gcm16]\n\
         \x20   vips: [0.0.0.0]\n    remote_ts: [{LAN_HOST}/32]\n    dpd_delay: 30s\n\
         \x20   instances: {n}\n\
         \x20   mobike: true\n    startclntaddr: {CLIENT_START}/10\n    mobikeaddrpertunnel: 2\n\
         \x20   mobikeiplifetime: {rotate_ms}ms\n    mobikeipspread: true\n    mobikechangeaddrtype: {change}\n{rekey}",
        max = p.clients + p.clients / 4 + 64,
        g0 = GW[0],
        n = p.clients,
        change = args.change,
        // Lifetime a tenth over the rekey time, spread by a tenth (the shape of
        // strongSwan's defaults).
        rekey = if args.rekey == 0 {
            String::new()
        } else {
            format!(
                "    children: {{ rekey_time: {r}s, life_time: {l}s, rand_time: {j}s }}\n",
                r = args.rekey,
                l = args.rekey + args.rekey.div_ceil(10),
                j = args.rekey.div_ceil(10),
            )
        },
    )
}

pub fn main(args: LabArgs) -> Result<(), String> {
    let p = plan(&args)?;
    let gw_cfg = control::config::parse(&gateway_yaml(&args, &p))
        .map_err(|e| format!("the lab's gateway configuration:\n{e}"))?;
    let cl_cfg = control::config::parse(&client_yaml(&args, &p))
        .map_err(|e| format!("the lab's client configuration:\n{e}"))?;
    let gen = FlowGenConfig {
        rate_pps_per_flow: args.rate,
        size: p.size,
        bucket: 4,
    };
    // A gap is an arrival more than three packet intervals after the one before.
    let gap_threshold_ns = 3_000_000_000u64
        .checked_div(args.rate)
        .unwrap_or(10_000_000);
    let sink = FlowSinkConfig {
        capacity: p.flows,
        window: 128,
        gap_threshold_ns,
        verify_checksum: true,
    };
    let (gw_writer, gw_table) = FlowTable::new(p.flows);
    let (cl_writer, cl_table) = FlowTable::new(p.flows);
    let mut ports = Vec::new();
    for table in [gw_table, cl_table] {
        ports.push(
            TrafficPort::new(table, gen.clone(), sink.clone())
                .with_tick(TICK_NS)
                .map_err(|e| format!("a timer for the traffic generator: {e}"))?,
        );
    }
    let cl_port = ports.pop().expect("two ports");
    let gw_port = ports.pop().expect("two ports");
    let (gw_gate, cl_gate) = (gw_port.gate(), cl_port.gate());
    let (gw_gen, gw_sink) = (gw_port.gen_stats(), gw_port.sink_stats());
    let (cl_gen, cl_sink) = (cl_port.gen_stats(), cl_port.sink_stats());

    let node_opts = |port: TrafficPort, prefix: &'static str| {
        let mut port = Some(port);
        NodeOptions {
            clear: Box::new(move |_w| port.take().ok_or_else(|| "one worker only".to_string())),
            reuse_addr: true,
            watch_addresses: false,
            observe: true,
            thread_prefix: prefix,
        }
    };
    // The nodes share their ports (SO_REUSEADDR), and so would another lab's: find
    // out first whether anything holds them.
    for port in [args.port, args.port - 1] {
        for ip in [IpAddr::V4(GW[0]), IpAddr::V4(Ipv4Addr::UNSPECIFIED)] {
            std::net::UdpSocket::bind(SocketAddr::new(ip, port)).map_err(|e| {
                format!("lab: UDP port {port} on {ip} is taken ({e}): another lab or IKE daemon runs; give another --port")
            })?;
        }
    }
    let gw = Node::open(&gw_cfg, Role::Gateway, node_opts(gw_port, "lab-gw")).map_err(|e| {
        format!("lab gateway: {e} (another program may hold the ports; try --port)")
    })?;
    let cl = match Node::open(&cl_cfg, Role::Client, node_opts(cl_port, "lab-cl")) {
        Ok(n) => n,
        Err(e) => {
            gw.close();
            return Err(format!(
                "lab clients: {e} (another program may hold the ports; try --port)"
            ));
        }
    };
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    eprintln!(
        "mobiked lab: gateway {} and {} <-> {} clients from {CLIENT_START} (2 addresses each), \
         IKE {} / NAT-T {}, {} pps per tunnel {}, {} B, rotation every {} s ({})",
        GW[0],
        GW[1],
        p.clients,
        args.port - 1,
        args.port,
        args.rate,
        args.direction,
        args.size,
        args.rotate,
        args.change
    );

    let stop_gw = Arc::new(AtomicBool::new(false));
    let stop_cl = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<NodeMsg>();
    let ids = StreamIds::Pool {
        base: IpAddr::V4(POOL_BASE),
        size: p.flows,
    };
    let lan = IpAddr::V4(LAN_HOST);
    let spawn =
        |mut node: Node<TrafficPort>, role, mut streams: Streams, stop: &Arc<AtomicBool>| {
            let (stop, tx) = (stop.clone(), tx.clone());
            std::thread::Builder::new()
                .name(format!("lab-{role:?}"))
                .spawn(move || {
                    let dropped = run_node(&mut node, role, &mut streams, &stop, 20, None, &tx);
                    (node, dropped)
                })
                .map_err(|e| format!("starting a node thread: {e}"))
        };
    let gw_streams = Streams::new(gw_writer, Role::Gateway, ids, p.down, lan);
    let cl_streams = Streams::new(cl_writer, Role::Client, ids, p.up, lan);
    let gw_thread = spawn(gw, Role::Gateway, gw_streams, &stop_gw)?;
    let cl_thread = spawn(cl, Role::Client, cl_streams, &stop_cl)?;
    drop(tx);

    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first ends the run early (reported, marked incomplete); a second ends the
        // process at once.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 1, interrupted.clone());
        let _ = signal_hook::flag::register(sig, interrupted.clone());
    }
    let tty = std::io::stderr().is_terminal();
    let bar = progress_bar(
        (args.duration * 1000.0) as u64,
        "{spinner} {elapsed_precise} [{bar:25}] {msg}",
    );

    let mut tally = Tally::new(ids);
    let start = Instant::now();
    let total = Duration::from_secs_f64(args.duration);
    let mut series_up = Vec::new();
    let mut series_moves = Vec::new();
    let mut series_lost = Vec::new();
    let mut series_rx = Vec::new();
    let mut last = (0u64, 0u64, 0u64);
    let mut next_sample = SAMPLE;
    let mut last_print = Duration::ZERO;
    let sent_total =
        || gw_gen.packets.load(Ordering::Relaxed) + cl_gen.packets.load(Ordering::Relaxed);
    let received_total =
        || gw_sink.received.load(Ordering::Relaxed) + cl_sink.received.load(Ordering::Relaxed);
    let lost_total = || gw_sink.lost.load(Ordering::Relaxed) + cl_sink.lost.load(Ordering::Relaxed);
    let mut why_incomplete = None;
    loop {
        let t = start.elapsed();
        if t >= total {
            break;
        }
        if interrupted.load(Ordering::Relaxed) {
            why_incomplete = Some(format!("interrupted after {:.1} s", t.as_secs_f64()));
            break;
        }
        if gw_thread.is_finished() || cl_thread.is_finished() {
            why_incomplete = Some("a node ended early (see its log)".to_string());
            break;
        }
        while let Ok(m) = rx.recv_timeout(Duration::from_millis(5)) {
            m.into_tally(&mut tally);
            if start.elapsed() >= next_sample {
                break;
            }
        }
        if start.elapsed() >= next_sample {
            let ts = start.elapsed().as_secs_f64();
            let (rx_now, lost_now, moves) =
                (received_total(), lost_total(), tally.handovers.completed);
            let dt = SAMPLE.as_secs_f64();
            series_up.push([ts, tally.tunnels() as f64]);
            series_moves.push([ts, (moves - last.2) as f64 / dt]);
            series_lost.push([ts, lost_now.saturating_sub(last.1) as f64]);
            series_rx.push([ts, rx_now.saturating_sub(last.0) as f64 / dt]);
            last = (rx_now, lost_now, moves);
            next_sample += SAMPLE;
            let msg = format!(
                "tunnels {}/{} handovers {} sent {} received {} lost {}",
                tally.tunnels(),
                p.clients,
                moves,
                sent_total(),
                rx_now,
                lost_now
            );
            bar.set_position(t.as_millis() as u64);
            bar.set_message(msg.clone());
            if !tty && t >= last_print + Duration::from_secs(2) {
                last_print = t;
                eprintln!("[{:5.1} s] {msg}", t.as_secs_f64());
            }
        }
    }
    let traffic_s = start.elapsed().as_secs_f64();
    // Stop sending, let what is in flight arrive, then stop the clients (DELETEs).
    gw_gate.store(false, Ordering::Relaxed);
    cl_gate.store(false, Ordering::Relaxed);
    let drain = Instant::now();
    while drain.elapsed() < DRAIN && received_total() < sent_total() {
        while let Ok(m) = rx.try_recv() {
            m.into_tally(&mut tally);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    tally.mark_stop();
    stop_cl.store(true, Ordering::Relaxed);
    let (cl_node, cl_dropped) = cl_thread
        .join()
        .map_err(|_| "the client thread panicked".to_string())?;
    stop_gw.store(true, Ordering::Relaxed);
    let (gw_node, gw_dropped) = gw_thread
        .join()
        .map_err(|_| "the gateway thread panicked".to_string())?;
    while let Ok(m) = rx.try_recv() {
        m.into_tally(&mut tally);
    }
    bar.finish_and_clear();
    let gw_left = gw_node.engine.endpoint().sa_count();
    let cl_stats = cl_node.stats();
    let gw_ports = gw_node.close();
    let cl_ports = cl_node.close();
    let (Some((_, gw_port)), Some((_, cl_port))) =
        (gw_ports.into_iter().next(), cl_ports.into_iter().next())
    else {
        return Err("a worker thread panicked".into());
    };
    let (_, gw_sink_final) = gw_port.into_parts();
    let (_, cl_sink_final) = cl_port.into_parts();

    let mut r = RunReport::new(
        &format!(
            "lab: {} clients, {} pps per tunnel {}, rotation every {} s",
            p.clients, args.rate, args.direction, args.rotate
        ),
        "mobiked lab",
    );
    r.started_unix_s = started_unix;
    r.duration_s = traffic_s;
    if let Some(why) = why_incomplete {
        r.complete = false;
        r.incomplete_reason = Some(why);
    }
    for (k, v) in [
        ("clients", p.clients.to_string()),
        (
            "rate per tunnel",
            format!("{} pps {}", args.rate, args.direction),
        ),
        ("packet size", args.size.clone()),
        ("rotation", format!("{} s, {}", args.rotate, args.change)),
        (
            "gateway",
            format!("{}, {} (udp backend, 1 worker)", GW[0], GW[1]),
        ),
        (
            "ports",
            format!("IKE {}, NAT-T {}", args.port - 1, args.port),
        ),
        (
            "suites",
            "aes128gcm16-prfsha256-x25519, ESP aes128gcm16".to_string(),
        ),
    ] {
        r.setting(k, &v);
    }
    let count = |stats: &[(String, u64)], name: &str| {
        stats.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v) as f64
    };
    stream_report(
        &mut r,
        Some(&tally),
        &[&gw_sink_final, &cl_sink_final],
        sent_total(),
        true,
        traffic_s,
    );
    for (n, v, u, h) in [
        (
            "setup failures",
            count(&cl_stats, "client_setup_failed"),
            "",
            "IKE SA setups that failed (retried)",
        ),
        (
            "rotations stuck",
            count(&cl_stats, "mobike_rotations_stuck"),
            "",
            "due with no other pair",
        ),
        (
            "gateway IKE SAs left",
            gw_left as f64,
            "",
            "after the clients' DELETEs (0 expected)",
        ),
        (
            "dropped observations",
            (gw_dropped + cl_dropped) as f64,
            "",
            "",
        ),
    ] {
        r.total(n, v, u, h);
    }
    for (name, unit, help, points) in [
        ("tunnels up", "", "client IKE SAs established", series_up),
        (
            "handovers",
            "/s",
            "address changes answered per second",
            series_moves,
        ),
        (
            "lost",
            "packets",
            "sequence gaps seen per interval",
            series_lost,
        ),
        (
            "received",
            "pps",
            "stream packets received, both directions",
            series_rx,
        ),
    ] {
        r.series(Series {
            name: name.into(),
            unit: unit.into(),
            help: help.into(),
            points,
        });
    }
    crate::streams::publish(&r, args.json.as_deref(), "--json", args.html.as_deref())?;
    if !r.complete {
        return Err(format!(
            "incomplete run: {}",
            r.incomplete_reason.unwrap_or_default()
        ));
    }
    Ok(())
}
