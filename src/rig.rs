//! `mobiked bench SCENARIO.yaml`: the address-change benchmark rig. It builds the
//! scenario's topology (a client and a gateway namespace joined by one veth pair per
//! path, always torn down), runs a mobiked gateway and the scenario's emulated clients
//! in this process, each node on a thread inside its namespace (the same nodes as
//! `mobiked gateway` and `mobiked client`), with a stream in every tunnel from the
//! dataplane, and repeats the scenario's events. For every address change it times
//! trigger -> UPDATE_SA_ADDRESSES sent (T_detect), -> answered (T_signal), -> published
//! (T_publish), and trigger -> the gateway's first packet from the client's new address
//! (handover), and counts the stream packets lost per repetition; HDR histograms, a
//! live status line, a table, JSON and HTML (the lab's report).
//!
//! Path p: client 10.90.p.2/24 on `cp`, gateway 10.90.p.1/24 on `gp` (an IPv6 path:
//! fd00:90:p::2/64 and ::1). The client uses path 0 at first. Needs root.

use crate::node::{Node, NodeOptions};
use crate::scenario::{Action, Scenario};
use crate::streams::{self, progress_bar, run_node, NodeMsg, StreamIds, Streams, Tally};
use control::ctl::Request;
use control::engine::{Observation, Role};
use dataplane::io::flows::{FlowGenConfig, FlowSinkConfig, FlowTable, TrafficPort};
use dataplane::io::traffic::PacketSize;
use perf::rig::report::{Metric, RunReport};
use shared::clock::now_ns;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const PSK: &str = "0x7269672d6f6e6c792d70736b2d2d6e6f742d666f722d616e792d757365";
const POOL: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 0);
const LAN: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
/// Clients get this long to come up.
const SETUP_LIMIT: Duration = Duration::from_secs(60);
const TICK_NS: u64 = 1_000_000;

/// The paths' addresses: path p is 10.90.p.0/24, or fd00:90:p::/64 if it is an
/// IPv6 path (`topology.v6`).
#[derive(Clone, Copy)]
struct Net {
    v6: u8,
}

impl Net {
    fn addr(&self, p: u8, host: u16) -> IpAddr {
        if self.v6 & (1 << p) != 0 {
            IpAddr::V6(std::net::Ipv6Addr::new(
                0xfd00,
                0x90,
                u16::from(p),
                0,
                0,
                0,
                0,
                host,
            ))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 90, p, host as u8))
        }
    }

    fn client(&self, p: u8) -> IpAddr {
        self.addr(p, 2)
    }

    fn gateway(&self, p: u8) -> IpAddr {
        self.addr(p, 1)
    }

    /// `ADDR/LEN` for `ip addr` (IPv6 without duplicate address detection, which would
    /// hold a restored address back for a second).
    fn cidr(&self, a: IpAddr) -> String {
        match a {
            IpAddr::V4(_) => format!("{a}/24"),
            IpAddr::V6(_) => format!("{a}/64 nodad"),
        }
    }
}

/// Runs `ip`/`nft` with `args`; the error names the command.
fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e} (install iproute2 and nftables)"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The namespaces of one run, removed when dropped (whatever happened).
struct Topology {
    cl: String,
    gw: String,
    paths: u8,
    net: Net,
    /// `ip -batch -` in the client's namespace: an address or link change is one line
    /// written to it, carried out within microseconds (no process start per trigger,
    /// which took about 2 ms and would count in T_detect).
    batch: Option<std::process::Child>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Some(mut b) = self.batch.take() {
            drop(b.stdin.take());
            let _ = b.wait();
        }
        for ns in [&self.cl, &self.gw] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Topology {
    fn build(paths: u8, net: Net) -> Result<Topology, String> {
        let id = std::process::id();
        let mut t = Topology {
            cl: format!("mkb{id}c"),
            gw: format!("mkb{id}g"),
            paths,
            net,
            batch: None,
        };
        run("ip", &["netns", "add", &t.cl])
            .map_err(|e| format!("{e} (the rig needs root for network namespaces)"))?;
        run("ip", &["netns", "add", &t.gw])?;
        for ns in [&t.cl, &t.gw] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        for p in 0..paths {
            let (c, g) = (format!("c{p}"), format!("g{p}"));
            run(
                "ip",
                &[
                    "link", "add", &c, "netns", &t.cl, "type", "veth", "peer", "name", &g, "netns",
                    &t.gw,
                ],
            )?;
            for (ns, a, dev) in [(&t.cl, net.client(p), &c), (&t.gw, net.gateway(p), &g)] {
                let cidr = net.cidr(a);
                let mut args = vec!["-n", ns.as_str(), "addr", "add"];
                args.extend(cidr.split(' '));
                args.extend(["dev", dev.as_str()]);
                run("ip", &args)?;
            }
            run("ip", &["-n", &t.cl, "link", "set", &c, "up"])?;
            run("ip", &["-n", &t.gw, "link", "set", &g, "up"])?;
        }
        let rules = "table inet mkrig {\n chain in { type filter hook input priority 0; }\n chain out { type filter hook output priority 0; }\n}\n";
        let f = std::env::temp_dir().join(format!("mkrig-{id}.nft"));
        std::fs::write(&f, rules).map_err(|e| e.to_string())?;
        let r = run(
            "ip",
            &["netns", "exec", &t.gw, "nft", "-f", &f.to_string_lossy()],
        );
        let _ = std::fs::remove_file(&f);
        r?;
        t.batch = Some(
            Command::new("ip")
                .args(["-n", &t.cl, "-force", "-batch", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("ip -batch: {e}"))?,
        );
        Ok(t)
    }

    /// Hands `line` to the client namespace's `ip -batch`.
    fn ip_line(&mut self, line: &str) -> Result<(), String> {
        use std::io::Write;
        let stdin = self
            .batch
            .as_mut()
            .and_then(|b| b.stdin.as_mut())
            .ok_or("ip -batch is gone")?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("ip -batch: {e}"))
    }

    /// Carries out `a` on path `p` (the one in use).
    fn act(&mut self, a: Action, p: u8) -> Result<(), String> {
        let net = self.net;
        let (c, ca) = (format!("c{p}"), net.cidr(net.client(p)));
        match a {
            Action::RemoveAddress => self.ip_line(&format!("addr del {ca} dev {c}")),
            Action::LinkDown => self.ip_line(&format!("link set {c} down")),
            Action::Restore | Action::LinkUp => {
                for q in 0..self.paths {
                    let ca = net.cidr(net.client(q));
                    self.ip_line(&format!("link set c{q} up"))?;
                    self.ip_line(&format!("addr replace {ca} dev c{q}"))?;
                }
                Ok(())
            }
            Action::Blackhole => {
                let ip = net.client(p).to_string();
                let family = if net.client(p).is_ipv4() { "ip" } else { "ip6" };
                for (chain, dir) in [("in", "saddr"), ("out", "daddr")] {
                    run(
                        "ip",
                        &[
                            "netns", "exec", &self.gw, "nft", "add", "rule", "inet", "mkrig",
                            chain, family, dir, &ip, "drop",
                        ],
                    )?;
                }
                Ok(())
            }
            Action::Unblackhole => {
                for chain in ["in", "out"] {
                    run(
                        "ip",
                        &[
                            "netns", "exec", &self.gw, "nft", "flush", "chain", "inet", "mkrig",
                            chain,
                        ],
                    )?;
                }
                Ok(())
            }
            Action::Move => Ok(()),
        }
    }
}

/// The addresses of one end on every path, and its `cipher.bind` entries.
fn listen_and_bind(
    s: &Scenario,
    net: Net,
    end: fn(&Net, u8) -> IpAddr,
) -> (Vec<String>, Vec<String>) {
    let ips: Vec<IpAddr> = (0..s.paths).map(|p| end(&net, p)).collect();
    let listen = ips.iter().map(|a| format!("\"{a}\"")).collect();
    let binds = ips
        .iter()
        .map(|a| format!("\"{}\"", SocketAddr::new(*a, 4500)))
        .collect();
    (listen, binds)
}

fn gateway_yaml(s: &Scenario, net: Net) -> String {
    let (addrs, binds) = listen_and_bind(s, net, Net::gateway);
    format!(
        "dataplane: {{ workers: 1, max_sas: {max} }}\n\
         cipher: {{ backend: udp, bind: [{binds}] }}\n\
         clear: {{ backend: tun, name: unused0 }}\n\
         ike: {{ listen: [{listen}], cookie_threshold: {cookie} }}\n\
         pools:\n  - {{ name: rig, addrs: {POOL}/16 }}\n\
         connections:\n  - name: rig\n    local_id: gw.rig\n    remote_id: \"%any\"\n    psk: {PSK}\n\
         \x20   proposals: [aes128gcm16-prfsha256-x25519]\n    esp_proposals: [aes128gcm16]\n\
         \x20   local_ts: [{LAN}/32]\n    pools: [rig]\n    dpd_delay: {dpd}ms\n    dpd_timeout: {dpdt}ms\n\
         \x20   mobike: true\n",
        max = s.clients + s.clients / 4 + 64,
        binds = binds.join(", "),
        listen = addrs.join(", "),
        cookie = s.clients * 2 + 16,
        dpd = s.dpd.as_millis(),
        dpdt = s.dpd.as_millis() * 3,
    )
}

fn client_yaml(s: &Scenario, net: Net) -> String {
    let (addrs, binds) = listen_and_bind(s, net, Net::client);
    let rotate = if s.rotate.is_zero() {
        String::new()
    } else {
        format!(
            "    mobikeiplifetime: {}ms\n    mobikeipspread: true\n",
            s.rotate.as_millis()
        )
    };
    format!(
        "dataplane: {{ workers: 1, max_sas: {max} }}\n\
         cipher: {{ backend: udp, bind: [{binds}] }}\n\
         clear: {{ backend: tun, name: unused0 }}\n\
         ike: {{ listen: [{listen}] }}\n\
         connections:\n  - name: rig\n    peeraddr: {gw}\n    local_addrs: [{listen}]\n\
         \x20   local_id: client-%n@rig\n    remote_id: gw.rig\n    psk: {PSK}\n\
         \x20   proposals: [aes128gcm16-prfsha256-x25519]\n    esp_proposals: [aes128gcm16]\n\
         \x20   vips: [0.0.0.0]\n    remote_ts: [{LAN}/32]\n    dpd_delay: {dpd}ms\n    dpd_timeout: {dpdt}ms\n\
         \x20   instances: {n}\n    mobike: true\n{rotate}",
        max = s.clients + s.clients / 4 + 64,
        binds = binds.join(", "),
        listen = addrs.join(", "),
        gw = match net.gateway(0) {
            IpAddr::V6(a) => format!("\"[{a}]\""),
            a => a.to_string(),
        },
        dpd = s.dpd.as_millis(),
        dpdt = s.dpd.as_millis() * 3,
        n = s.clients,
    )
}

/// What the node threads tell the main thread.
enum Msg {
    Ready(Result<(), String>),
    Node(NodeMsg),
}

impl From<NodeMsg> for Msg {
    fn from(m: NodeMsg) -> Msg {
        Msg::Node(m)
    }
}

type Joined = Result<(Node<TrafficPort>, u64), String>;

/// Starts a node on a thread inside namespace `ns`: opens it there (its workers and
/// sockets live there too), then turns until its stop is done.
#[allow(clippy::too_many_arguments)]
fn spawn_node(
    ns: String,
    cfg: control::config::StaticConfig,
    role: Role,
    port: TrafficPort,
    mut streams: Streams,
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<Msg>,
    cmds: mpsc::Receiver<Request>,
) -> Result<std::thread::JoinHandle<Joined>, String> {
    std::thread::Builder::new()
        .name(format!("rig-{role:?}"))
        .spawn(move || -> Joined {
            let opened = dataplane::io::sys::enter_netns(&ns)
                .map_err(|e| format!("entering namespace {ns}: {e}"))
                .and_then(|()| {
                    let mut port = Some(port);
                    Node::open(
                        &cfg,
                        role,
                        NodeOptions {
                            clear: Box::new(move |_| {
                                port.take().ok_or_else(|| "one worker".into())
                            }),
                            reuse_addr: false,
                            watch_addresses: true,
                            observe: true,
                            thread_prefix: "rig",
                        },
                    )
                });
            let mut node = match opened {
                Ok(n) => {
                    let _ = tx.send(Msg::Ready(Ok(())));
                    n
                }
                Err(e) => {
                    let _ = tx.send(Msg::Ready(Err(e.clone())));
                    return Err(e);
                }
            };
            // Short turns: a command from the rig (a move) waits at most 1 ms.
            let dropped = run_node(&mut node, role, &mut streams, &stop, 1, Some(&cmds), &tx);
            Ok((node, dropped))
        })
        .map_err(|e| format!("starting a node thread: {e}"))
}

/// The main thread's view: the tally and where each client SA is now.
struct View {
    tally: Tally,
    local: HashMap<u64, SocketAddr>,
}

impl View {
    fn take(&mut self, m: Msg) {
        match m {
            Msg::Node(NodeMsg::Client(o)) => {
                match &o {
                    Observation::IkeUp { sa, local, .. }
                    | Observation::PathChanged { sa, local, .. } => {
                        self.local.insert(*sa, *local);
                    }
                    Observation::IkeRekeyed { old, new, .. } => {
                        if let Some(l) = self.local.remove(old) {
                            self.local.insert(*new, l);
                        }
                    }
                    Observation::IkeDown { sa, .. } => {
                        self.local.remove(sa);
                    }
                    _ => {}
                }
                self.tally.client(&o);
            }
            Msg::Node(NodeMsg::Worker(ev)) => self.tally.worker_event(&ev),
            Msg::Ready(_) => {}
        }
    }

    /// The path the first client SA uses (by its local address).
    fn path_in_use(&self, paths: u8, net: Net) -> u8 {
        let ip = self.local.values().next().map(|a| a.ip());
        (0..paths).find(|p| Some(net.client(*p)) == ip).unwrap_or(0)
    }
}

/// How often the series over time are sampled.
const SAMPLE: Duration = Duration::from_millis(100);

/// The series over time: tunnels up, packets received and lost, handovers answered.
struct Sampler {
    t0: Instant,
    next: Instant,
    last: (u64, u64, u64),
    up: Vec<[f64; 2]>,
    received: Vec<[f64; 2]>,
    lost: Vec<[f64; 2]>,
    moves: Vec<[f64; 2]>,
}

impl Sampler {
    fn new() -> Sampler {
        let now = Instant::now();
        Sampler {
            t0: now,
            next: now,
            last: (0, 0, 0),
            up: Vec::new(),
            received: Vec::new(),
            lost: Vec::new(),
            moves: Vec::new(),
        }
    }

    fn sample(&mut self, view: &View, rx: u64, lost: u64) {
        let t = self.t0.elapsed().as_secs_f64();
        let moves = view.tally.handovers.completed;
        let dt = SAMPLE.as_secs_f64();
        self.up.push([t, view.tally.tunnels() as f64]);
        self.received
            .push([t, rx.saturating_sub(self.last.0) as f64 / dt]);
        self.lost.push([t, lost.saturating_sub(self.last.1) as f64]);
        self.moves
            .push([t, moves.saturating_sub(self.last.2) as f64]);
        self.last = (rx, lost, moves);
        self.next += SAMPLE;
        if self.next < Instant::now() {
            self.next = Instant::now() + SAMPLE;
        }
    }

    fn into_series(self) -> Vec<perf::rig::report::Series> {
        [
            ("tunnels up", "", "client IKE SAs established", self.up),
            (
                "received",
                "pps",
                "stream packets at the gateway",
                self.received,
            ),
            (
                "lost",
                "packets",
                "sequence gaps found per 100 ms (at the gateway, when traffic resumes)",
                self.lost,
            ),
            (
                "handovers",
                "",
                "address changes answered per 100 ms",
                self.moves,
            ),
        ]
        .into_iter()
        .map(|(name, unit, help, points)| perf::rig::report::Series {
            name: name.into(),
            unit: unit.into(),
            help: help.into(),
            points,
        })
        .collect()
    }
}

pub fn main(file: &Path, json: Option<PathBuf>, html: Option<PathBuf>) -> Result<(), String> {
    let s = Scenario::load(file)?;
    let net = Net { v6: s.v6 };
    let gw_cfg = control::config::parse(&gateway_yaml(&s, net))
        .map_err(|e| format!("the rig's gateway configuration:\n{e}"))?;
    let cl_cfg = control::config::parse(&client_yaml(&s, net))
        .map_err(|e| format!("the rig's client configuration:\n{e}"))?;
    let mut topo = Topology::build(s.paths, net)?;
    let flows = 1u32 << 16;
    let ids = StreamIds::Pool {
        base: IpAddr::V4(Ipv4Addr::new(10, 64, 0, 1)),
        size: flows,
    };
    let gen = FlowGenConfig {
        rate_pps_per_flow: s.rate,
        size: PacketSize::Fixed(s.size),
        bucket: 4,
    };
    let sink = FlowSinkConfig {
        capacity: flows,
        window: 1024,
        gap_threshold_ns: 3_000_000_000 / s.rate,
        verify_checksum: true,
    };
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    let mut cmd_tx = Vec::new();
    let mut stops = Vec::new();
    let mut gates = Vec::new();
    let mut stats = Vec::new();
    for (role, ns, cfg) in [
        (Role::Gateway, &topo.gw, gw_cfg),
        (Role::Client, &topo.cl, cl_cfg),
    ] {
        let (writer, table) = FlowTable::new(flows);
        let port = TrafficPort::new(table, gen.clone(), sink.clone())
            .with_tick(TICK_NS)
            .map_err(|e| format!("a timer for the traffic generator: {e}"))?;
        gates.push(port.gate());
        stats.push((port.gen_stats(), port.sink_stats()));
        // Up only: the gateway's sink measures the client's streams.
        let streams = Streams::new(writer, role, ids, role == Role::Client, IpAddr::V4(LAN));
        let stop = Arc::new(AtomicBool::new(false));
        stops.push(stop.clone());
        let (ctx, crx) = mpsc::channel();
        cmd_tx.push(ctx);
        threads.push(spawn_node(
            ns.clone(),
            cfg,
            role,
            port,
            streams,
            stop,
            tx.clone(),
            crx,
        )?);
    }
    drop(tx);
    let mut view = View {
        tally: Tally::new(ids),
        local: HashMap::new(),
    };
    let mut ready = 0;
    while ready < 2 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Msg::Ready(Ok(()))) => ready += 1,
            Ok(Msg::Ready(Err(e))) => return Err(e),
            Ok(m) => view.take(m),
            Err(_) => return Err("a node did not start within 10 s".into()),
        }
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 1, interrupted.clone());
        let _ = signal_hook::flag::register(sig, interrupted.clone());
    }
    // Everything waits here: observations are taken as they come, and the series are
    // sampled every SAMPLE.
    let mut sampler = Sampler::new();
    let mut pump = |view: &mut View, until: Instant| loop {
        let now = Instant::now();
        if now >= sampler.next {
            let rx: u64 = stats
                .iter()
                .map(|(_, k)| k.received.load(Ordering::Relaxed))
                .sum();
            let lost: u64 = stats
                .iter()
                .map(|(_, k)| k.lost.load(Ordering::Relaxed))
                .sum();
            sampler.sample(view, rx, lost);
        }
        let slice = until.min(sampler.next);
        match rx.recv_timeout(slice.saturating_duration_since(Instant::now())) {
            Ok(m) => view.take(m),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= until {
            return;
        }
    };
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut why_incomplete = None;
    while view.tally.tunnels() < u64::from(s.clients) {
        if started.elapsed() > SETUP_LIMIT || interrupted.load(Ordering::Relaxed) {
            why_incomplete = Some(format!(
                "{} of {} clients up after {:.0} s",
                view.tally.tunnels(),
                s.clients,
                started.elapsed().as_secs_f64()
            ));
            break;
        }
        pump(&mut view, Instant::now() + Duration::from_millis(50));
    }
    pump(&mut view, Instant::now() + s.warmup);
    let tty = std::io::stderr().is_terminal();
    let bar = progress_bar(
        u64::from(s.reps),
        "{spinner} {elapsed_precise} [{bar:25}] {pos}/{len} {msg}",
    );
    let lost_now = || {
        stats
            .iter()
            .map(|(_, k)| k.lost.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let mut lost_per_rep = Vec::new();
    let mut failed_reps = 0u32;
    let traffic_from = Instant::now();
    for rep in 0..s.reps {
        if why_incomplete.is_some() {
            break;
        }
        if interrupted.load(Ordering::Relaxed) {
            why_incomplete = Some(format!("interrupted after {rep} repetitions"));
            break;
        }
        let rep_start = Instant::now();
        let lost_before = lost_now();
        let peers_before = view.tally.handovers.timings.peer.len();
        let mut triggered = false;
        for e in &s.events {
            pump(&mut view, rep_start + e.at);
            let p = view.path_in_use(s.paths, net);
            let t = now_ns();
            if e.action.triggers() {
                triggered = true;
                for sa in view.local.keys() {
                    view.tally.handovers.trigger(*sa, t);
                }
            }
            if e.action == Action::Move {
                let q = (p + 1) % s.paths;
                for sa in view.local.keys() {
                    let _ = cmd_tx[1].send(Request::Move {
                        target: format!("{sa:016x}"),
                        local: net.client(q),
                        remote: net.gateway(q),
                    });
                }
            } else if let Err(e) = topo.act(e.action, p) {
                why_incomplete = Some(e);
                break;
            }
        }
        pump(&mut view, rep_start + s.rep);
        // Losses show once traffic resumes: counted at the end of the repetition.
        lost_per_rep.push(lost_now().saturating_sub(lost_before) as f64);
        let moved = view.tally.handovers.timings.peer.len() > peers_before;
        if triggered && !moved {
            failed_reps += 1;
        }
        bar.set_position(u64::from(rep) + 1);
        bar.set_message(format!(
            "handovers {} lost {} failed {failed_reps}",
            view.tally.handovers.completed,
            lost_now()
        ));
        if !tty {
            eprintln!(
                "[rep {}/{}] moved {moved} lost {}",
                rep + 1,
                s.reps,
                lost_per_rep.last().copied().unwrap_or(0.0)
            );
        }
    }
    bar.finish_and_clear();
    let secs = traffic_from.elapsed().as_secs_f64();
    for g in &gates {
        g.store(false, Ordering::Relaxed);
    }
    pump(&mut view, Instant::now() + Duration::from_millis(300));
    let sent: u64 = stats
        .iter()
        .map(|(g, _)| g.packets.load(Ordering::Relaxed))
        .sum();
    view.tally.mark_stop();
    stops[1].store(true, Ordering::Relaxed);
    let mut joined = Vec::new();
    for (i, h) in threads.into_iter().enumerate().rev() {
        if i == 0 {
            stops[0].store(true, Ordering::Relaxed);
        }
        joined.push(
            h.join()
                .map_err(|_| "a node thread panicked".to_string())??,
        );
    }
    while let Ok(m) = rx.try_recv() {
        view.take(m);
    }
    let mut sinks = Vec::new();
    let mut dropped = 0;
    for (node, d) in joined {
        dropped += d;
        let (_, port) = node
            .close()
            .into_iter()
            .next()
            .ok_or("a worker thread panicked")?;
        sinks.push(port.into_parts().1);
    }
    drop(topo);

    let mut r = RunReport::new(
        &format!("{}: {}", s.name, s.description),
        &format!("mobiked bench {}", file.display()),
    );
    r.started_unix_s = started_unix;
    r.duration_s = secs;
    if let Some(why) = why_incomplete {
        r.interrupted(&why);
    }
    r.setting("scenario", file.display());
    r.setting("clients", s.clients);
    r.setting("paths", s.paths);
    r.setting(
        "stream",
        format!("{} pps per tunnel up, {} B", s.rate, s.size),
    );
    r.setting(
        "events per repetition",
        s.events
            .iter()
            .map(|e| format!("{} at {:?}", e.action.name(), e.at))
            .collect::<Vec<_>>()
            .join(", "),
    );
    r.setting("repetitions", format!("{} of {:?}", s.reps, s.rep));
    r.total("repetitions done", lost_per_rep.len() as f64, "", "");
    r.total(
        "repetitions without a handover",
        f64::from(failed_reps),
        "",
        "an event that should move the client and the gateway saw no new address in the repetition",
    );
    let refs: Vec<&dataplane::io::flows::FlowSink> = sinks.iter().collect();
    streams::stream_report(&mut r, Some(&view.tally), &refs, sent, true, secs);
    r.total("dropped observations", dropped as f64, "", "");
    for series in sampler.into_series() {
        r.series(series);
    }
    r.metric(Metric::from_samples(
        "lost per repetition",
        "packets",
        "stream packets missing at the gateway, per repetition",
        &lost_per_rep,
    ));
    streams::publish(&r, json.as_deref(), "--json", html.as_deref())?;
    if !r.complete {
        return Err(format!(
            "incomplete run: {}",
            r.incomplete_reason.unwrap_or_default()
        ));
    }
    Ok(())
}
