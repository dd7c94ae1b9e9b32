//! IKE SA setup: how long one tunnel takes to come up and how many per second come up
//! when a client brings up many at once.
//!
//! Two measurements in the same run:
//! - **core**: the sans-IO IKE core alone, two endpoints in one thread handing each
//!   other datagrams in memory (IKE_SA_INIT + IKE_AUTH with a child SA, real crypto).
//!   This is the CPU cost of the protocol and the ceiling the processes can reach.
//! - **processes**: `mobiked gateway` and `mobiked client` as separate processes over
//!   loopback (udp dataplane, no protected side, no privileges). One tunnel `rounds`
//!   times (time from the client's start to both ends reporting the child SA), then
//!   `tunnels` at once (one client connection with that many instances, each with its
//!   own identity and virtual IP from the gateway's pool).
//!
//! With the many tunnels up, it also measures what they cost idle (CPU of both
//! processes over `idle_s`, from /proc: utime + stime), and what stopping costs: the
//! client is sent SIGTERM, deletes its IKE SAs, and the time until the gateway holds
//! no IKE SA and no address lease is "stop to empty". The gateway's idle CPU with no
//! tunnel at all is measured before the client starts.
//!
//! The report gives medians and the processes/core ratio of the setup rate.

use crate::report::{table, Figure};
use mobiked_control::ike::conn::{Conn, Identity, Selector};
use mobiked_control::ike::crypto::random::SeededRandom;
use mobiked_control::ike::sa::{Endpoint, EndpointConfig};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct IkeBenchConfig {
    /// The mobiked binary for the process measurements (None: core only).
    pub bin: Option<PathBuf>,
    /// Single-tunnel setups to time.
    pub rounds: usize,
    /// Tunnels brought up at once.
    pub tunnels: usize,
    /// Rounds of the many-tunnel measurement.
    pub bulk_rounds: usize,
    /// Seconds over which idle CPU is measured (0: not measured).
    pub idle_s: f64,
    /// DPD interval of both ends, seconds (0: off). With DPD on, the idle window
    /// starts one interval after the last tunnel came up, so every tunnel's liveness
    /// checks run in it.
    pub dpd_s: u64,
}

impl Default for IkeBenchConfig {
    fn default() -> Self {
        IkeBenchConfig {
            bin: None,
            rounds: 10,
            tunnels: 1000,
            bulk_rounds: 3,
            idle_s: 5.0,
            dpd_s: 30,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct IkeReport {
    /// Core: one setup (4 messages, both ends' crypto), microseconds.
    pub core_setup_us: Figure,
    /// Core: setups per second in one thread.
    pub core_rate: Figure,
    /// Processes: one tunnel, milliseconds from the client's start until `ctl` shows
    /// it on both ends (includes process start-up).
    pub proc_setup_ms: Option<Figure>,
    /// Processes: one tunnel, the client's own measure from its first IKE_SA_INIT to
    /// the end of IKE_AUTH, in ms.
    pub proc_ike_ms: Option<Figure>,
    /// Processes: the same per tunnel while `tunnels` come up at once.
    pub proc_bulk_ike_ms: Option<Figure>,
    /// Processes: `tunnels` at once, tunnels per second.
    pub proc_rate: Option<Figure>,
    /// Processes: seconds until all `tunnels` were up.
    pub proc_bulk_s: Option<Figure>,
    /// Processes: % of one core, the gateway alone with no tunnel.
    pub proc_idle_empty_gw_pct: Option<Figure>,
    /// Processes: % of one core with `tunnels` up and no traffic: gateway, client.
    pub proc_idle_gw_pct: Option<Figure>,
    pub proc_idle_cl_pct: Option<Figure>,
    /// Processes: seconds from SIGTERM to the client until the gateway has no IKE SA
    /// and no lease left.
    pub proc_stop_s: Option<Figure>,
    /// Processes: IKE SAs the gateway still held when the stop measurement gave up
    /// (should be 0 in every round).
    pub proc_stop_left: Option<Figure>,
    /// Processes: resident memory (KiB) of the gateway with no tunnel (what
    /// `max_sas` preallocates), and per tunnel of each process with the tunnels up
    /// (all of its memory divided by the tunnels, preallocation included).
    pub proc_rss_empty_gw_kib: Option<Figure>,
    pub proc_rss_gw_per_tunnel_kib: Option<Figure>,
    pub proc_rss_cl_per_tunnel_kib: Option<Figure>,
    pub tunnels: usize,
}

fn conn_pair() -> (Conn, Conn) {
    let mut a = Conn::new(
        "bench",
        Identity::parse("client.bench").unwrap(),
        b"benchmark secret",
    );
    a.peer_addrs = vec!["10.0.0.2:500".parse().unwrap()];
    a.local_addrs = vec!["10.0.0.1:500".parse().unwrap()];
    a.ike_proposals =
        vec![
            mobiked_control::ike::conn::IkeProposal::parse("aes128gcm16-prfsha256-x25519").unwrap(),
        ]
        .into();
    a.local_ts = vec![Selector::parse("10.1.0.0/24").unwrap()].into();
    a.remote_ts = vec![Selector::parse("10.2.0.0/24").unwrap()].into();
    let mut b = Conn::new(
        "bench",
        Identity::parse("gw.bench").unwrap(),
        b"benchmark secret",
    );
    b.local_ts = a.remote_ts.clone();
    b.remote_ts = a.local_ts.clone();
    (a, b)
}

/// Brings up `n` IKE SAs between two in-memory endpoints; returns the seconds taken.
/// Each tunnel is its own client (an identity of its own, as `instances` gives the
/// processes): one identity for all would have each new IKE SA's INITIAL_CONTACT
/// replace the ones before it.
fn core_run(n: usize, seed: u64) -> f64 {
    let (a, b) = conn_pair();
    let clients = (0..n)
        .map(|i| {
            let mut c = a.clone();
            c.local_id = Identity::parse(&format!("client-{i}.bench")).unwrap();
            c
        })
        .collect();
    // The limits of a gateway for n tunnels (the defaults stop at 20,000).
    let sized = EndpointConfig {
        max_ike_sas: n + 16,
        max_half_open: n + 16,
        max_child_sas: n + 16,
        ..EndpointConfig::default()
    };
    let mut ea = Endpoint::new(sized.clone(), clients, Box::new(SeededRandom::new(seed)));
    let mut eb = Endpoint::new(
        EndpointConfig {
            cookie_threshold: usize::MAX,
            ..sized
        },
        vec![b],
        Box::new(SeededRandom::new(seed ^ 1)),
    );
    let t0 = Instant::now();
    let now = 1_000_000_000;
    for i in 0..n {
        ea.initiate(now, i, None);
    }
    for _ in 0..8 {
        while let Some(t) = ea.poll_transmit() {
            eb.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while let Some(t) = eb.poll_transmit() {
            ea.handle_datagram(now, t.remote, t.local, &t.data);
        }
    }
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(ea.established(), n, "core: not all SAs came up");
    assert_eq!(eb.child_count(), n);
    took
}

/// Hands datagrams between the two endpoints until neither has any to send (at most
/// `rounds` exchanges each way: a setup needs two). Returns the time `eb` took to
/// handle its datagrams.
fn pump(ea: &mut Endpoint, eb: &mut Endpoint, now: u64, rounds: usize) -> Duration {
    let mut in_b = Duration::ZERO;
    for _ in 0..rounds {
        let mut moved = false;
        while let Some(t) = ea.poll_transmit() {
            let t0 = Instant::now();
            eb.handle_datagram(now, t.remote, t.local, &t.data);
            in_b += t0.elapsed();
            moved = true;
        }
        while let Some(t) = eb.poll_transmit() {
            ea.handle_datagram(now, t.remote, t.local, &t.data);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    in_b
}

/// Setup rate of the in-memory core with many IKE SAs already up.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleReport {
    /// Setups timed per sample.
    pub batch: usize,
    /// Per level: IKE SAs (with one child each) established before the sample, and
    /// setups per second of `batch` more.
    pub levels: Vec<(usize, Figure)>,
    /// Per level: microseconds per setup spent in the responder (the gateway's
    /// share; the rest is the initiator's).
    pub responder_us: Vec<Figure>,
}

/// The in-memory core's setups per second while `levels` IKE SAs (ascending) are
/// already established on both endpoints: per-event costs that grow with the SAs
/// held show as a rate falling with the level. One pair of endpoints is grown from
/// one level to the next (untimed, 1,000 setups at a time); at each level `rounds`
/// batches of `batch` setups are timed, each a sample (the level grows by `batch`
/// per sample, which is small beside it). Each tunnel has its own identity, so
/// INITIAL_CONTACT replaces nothing.
pub fn core_scale(levels: &[usize], batch: usize, rounds: usize, seed: u64) -> ScaleReport {
    let mut levels: Vec<usize> = levels.to_vec();
    levels.sort_unstable();
    let top = levels.last().copied().unwrap_or(0);
    let total = top + levels.len() * rounds * batch;
    let (a, b) = conn_pair();
    let clients = (0..total)
        .map(|i| {
            let mut c = a.clone();
            c.local_id = Identity::parse(&format!("client-{i}.bench")).unwrap();
            c
        })
        .collect();
    let mut ea = Endpoint::new(
        EndpointConfig::default(),
        clients,
        Box::new(SeededRandom::new(seed)),
    );
    let mut eb = Endpoint::new(
        EndpointConfig {
            cookie_threshold: usize::MAX,
            max_half_open: usize::MAX,
            max_ike_sas: usize::MAX,
            ..EndpointConfig::default()
        },
        vec![b],
        Box::new(SeededRandom::new(seed ^ 1)),
    );
    let now = 1_000_000_000;
    let mut next = 0;
    let mut out = Vec::new();
    let mut responder_us = Vec::new();
    for &level in &levels {
        while next < level {
            let end = (next + 1000).min(level);
            for i in next..end {
                ea.initiate(now, i, None);
            }
            pump(&mut ea, &mut eb, now, 8);
            next = end;
        }
        let mut rates = Vec::new();
        let mut in_b = Vec::new();
        for _ in 0..rounds {
            let t0 = Instant::now();
            for i in next..next + batch {
                ea.initiate(now, i, None);
            }
            let b = pump(&mut ea, &mut eb, now, 8);
            rates.push(batch as f64 / t0.elapsed().as_secs_f64());
            in_b.push(b.as_secs_f64() * 1e6 / batch as f64);
            next += batch;
        }
        responder_us.push(Figure::of(&in_b));
        assert_eq!(ea.established(), next, "core: not all SAs came up");
        assert_eq!(eb.child_count(), next);
        out.push((level, Figure::of(&rates)));
    }
    ScaleReport {
        batch,
        levels: out,
        responder_us,
    }
}

pub fn render_scale(r: &ScaleReport) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for ((n, f), b) in r.levels.iter().zip(&r.responder_us) {
        rows.push(vec![
            format!("core: {} setups with {n} IKE SAs up, per second", r.batch),
            f.show(0),
        ]);
        rows.push(vec![
            "  of which the responder, us per setup".to_string(),
            b.show(1),
        ]);
    }
    table(
        &[
            "IKE SA setup with SAs held (aes128gcm16-prfsha256-x25519, PSK, one child)",
            "median (min-max)",
        ],
        &rows,
    )
}

/// Processes started by this benchmark, killed by PID (through `Child`) on drop.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const IKE_PORT: u16 = 11500;
const NAT_T_PORT: u16 = 15500;

fn write_configs(
    dir: &Path,
    gw: &str,
    cl: &str,
    tunnels: usize,
    dpd_s: u64,
) -> Result<(PathBuf, PathBuf), String> {
    let psk = "0x62656e63686d61726b2d6f6e6c792d70736b2d6e6f742d666f722d757365";
    let common = |me: &str, sock: &Path| {
        format!(
            "dataplane:\n  workers: 1\n  max_sas: {}\n  mode: esp\n\
             cipher:\n  backend: udp\n  bind: [\"{me}:{NAT_T_PORT}\"]\n\
             clear:\n  backend: tun\n  name: unused0\n\
             control:\n  socket: {}\n\
             ike:\n  listen: [{me}]\n  port: {IKE_PORT}\n  port_nat_t: {NAT_T_PORT}\n  cookie_threshold: {}\n",
            // Room for every tunnel and a rekey's overlap (the loader adds 1/32
            // more for rekeys): what a gateway for this many would be given.
            tunnels + tunnels / 4 + 64,
            sock.display(),
            tunnels * 2 + 16
        )
    };
    let gw_cfg = dir.join("gw.yaml");
    let cl_cfg = dir.join("cl.yaml");
    fs::write(
        &gw_cfg,
        format!(
            "{}pools:\n  - name: vpn4\n    addrs: 10.64.0.0/13\n\
             connections:\n  - name: rw\n    local_id: gw.bench\n    remote_id: \"%any\"\n    psk: {psk}\n\
             \x20   proposals: [aes128gcm16-prfsha256-x25519]\n\
             \x20   local_ts: [10.1.0.0/24]\n    pools: [vpn4]\n    dpd_delay: {dpd_s}s\n",
            common(gw, &dir.join("gw.sock"))
        ),
    )
    .map_err(|e| e.to_string())?;
    fs::write(
        &cl_cfg,
        format!(
            "{}connections:\n  - name: bench\n    peeraddr: \"{gw}:{IKE_PORT}\"\n\
             \x20   local_id: client-%n@bench\n    remote_id: gw.bench\n    psk: {psk}\n\
             \x20   proposals: [aes128gcm16-prfsha256-x25519]\n\
             \x20   vips: [0.0.0.0]\n    remote_ts: [10.1.0.0/24]\n    dpd_delay: {dpd_s}s\n    instances: {tunnels}\n",
            common(cl, &dir.join("cl.sock"))
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok((gw_cfg, cl_cfg))
}

fn spawn(bin: &Path, role: &str, cfg: &Path, log: &Path) -> Result<Child, String> {
    Command::new(bin)
        .arg(role)
        .arg("-c")
        .arg(cfg)
        .arg("--no-clear")
        .args(["--log", "info"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))
}

/// `mobiked ctl stats`, as name -> value (absent counters are zero).
fn stats(bin: &Path, sock: &Path) -> Option<std::collections::HashMap<String, u64>> {
    let out = Command::new(bin)
        .args(["ctl", "-s"])
        .arg(sock)
        .arg("stats")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get("counters")?
        .as_array()?
        .iter()
        .map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_u64()?)))
        .collect()
}

/// Child SAs installed, as `mobiked ctl stats` counts them (cheap to ask even with
/// tens of thousands of SAs, unlike listing them).
fn established(bin: &Path, sock: &Path) -> Option<usize> {
    let s = stats(bin, sock)?;
    Some(s.get("child_sas").copied().unwrap_or(0) as usize)
}

/// CPU time (user + system) of a process so far, in seconds.
fn cpu_s(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // /proc reports in USER_HZ, which Linux fixes at 100 for user space.
    Some(ticks / 100.0)
}

/// Resident memory of a process, in KiB (VmRSS of proc(5)'s status).
fn rss_kib(pid: u32) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// % of one core each process used over `secs` (processes idle meanwhile).
fn idle_cpu(pids: &[u32], secs: f64) -> Vec<f64> {
    let t0 = Instant::now();
    let before: Vec<Option<f64>> = pids.iter().map(|p| cpu_s(*p)).collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let wall = t0.elapsed().as_secs_f64();
    pids.iter()
        .zip(before)
        .map(|(p, b)| match (b, cpu_s(*p)) {
            (Some(b), Some(a)) => (a - b) / wall * 100.0,
            _ => f64::NAN,
        })
        .collect()
}

/// Polls `f` every `every` until it holds, at most `limit`.
fn wait_for(limit: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(every);
    }
    false
}

/// The `setup_ms` fields of the client's `IKE SA up` log lines.
fn logged_setup_ms(log: &Path) -> Vec<f64> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("IKE SA up"))
        .filter_map(|l| {
            let v = l.split("setup_ms=").nth(1)?;
            v.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

/// What one gateway/client round measured.
struct Round {
    /// Seconds from the client's start until both ends report every tunnel.
    took: f64,
    /// The client's logged setup times (first IKE_SA_INIT to IKE_AUTH done), ms.
    setup_ms: Vec<f64>,
    /// % of a core: the gateway alone; then gateway and client with the tunnels up.
    idle_empty_gw: f64,
    idle_gw: f64,
    idle_cl: f64,
    /// Seconds from SIGTERM to the client until the gateway is empty, and the IKE
    /// SAs it still held if that never happened.
    stop_s: f64,
    stop_left: u64,
    /// Resident memory in KiB: the gateway with no tunnel; gateway and client with
    /// the tunnels up.
    rss_empty_gw: f64,
    rss_gw: f64,
    rss_cl: f64,
}

/// One gateway/client pair bringing up `tunnels`; with `idle_s` > 0 it measures
/// idle CPU and the stop (see the module documentation).
fn proc_run(
    bin: &Path,
    dir: &Path,
    round: usize,
    tunnels: usize,
    idle_s: f64,
    dpd_s: u64,
) -> Result<Round, String> {
    let pid = std::process::id();
    let (x, y) = (20 + pid % 200, (round % 250) + 1);
    let gw = format!("127.{x}.{y}.1");
    let cl = format!("127.{x}.{y}.2");
    let rdir = dir.join(format!("r{round}"));
    fs::create_dir_all(&rdir).map_err(|e| e.to_string())?;
    let (gw_cfg, cl_cfg) = write_configs(&rdir, &gw, &cl, tunnels, dpd_s)?;
    let gw_sock = rdir.join("gw.sock");
    let cl_sock = rdir.join("cl.sock");
    let mut procs = Procs(Vec::new());
    procs
        .0
        .push(spawn(bin, "gateway", &gw_cfg, &rdir.join("gw.log"))?);
    if !wait_for(Duration::from_secs(10), Duration::from_millis(5), || {
        established(bin, &gw_sock) == Some(0)
    }) {
        return Err(format!(
            "gateway did not start; see {}",
            rdir.join("gw.log").display()
        ));
    }
    let gw_pid = procs.0[0].id();
    let rss_empty_gw = rss_kib(gw_pid).unwrap_or(f64::NAN);
    let idle_empty_gw = if idle_s > 0.0 {
        idle_cpu(&[gw_pid], idle_s)[0]
    } else {
        f64::NAN
    };
    let t0 = Instant::now();
    procs
        .0
        .push(spawn(bin, "client", &cl_cfg, &rdir.join("cl.log"))?);
    let cl_pid = procs.0[1].id();
    let limit = Duration::from_secs(30 + tunnels as u64 / 10);
    // Each poll costs both processes a little: poll a large run seldom, so the
    // measurement does not load what it measures.
    let every = Duration::from_millis(if tunnels > 10 { 50 } else { 2 });
    let ok = wait_for(limit, every, || {
        established(bin, &cl_sock) == Some(tunnels) && established(bin, &gw_sock) == Some(tunnels)
    });
    let took = t0.elapsed().as_secs_f64();
    if !ok {
        return Err(format!(
            "{tunnels} tunnels not up within {limit:?}: client {:?}, gateway {:?}; logs in {}",
            established(bin, &cl_sock),
            established(bin, &gw_sock),
            rdir.display()
        ));
    }
    let setup_ms = logged_setup_ms(&rdir.join("cl.log"));
    let mut r = Round {
        took,
        setup_ms,
        idle_empty_gw,
        idle_gw: f64::NAN,
        idle_cl: f64::NAN,
        stop_s: f64::NAN,
        stop_left: 0,
        rss_empty_gw,
        rss_gw: rss_kib(gw_pid).unwrap_or(f64::NAN),
        rss_cl: rss_kib(cl_pid).unwrap_or(f64::NAN),
    };
    if idle_s <= 0.0 {
        return Ok(r);
    }
    // Liveness checks start one interval after a tunnel came up.
    std::thread::sleep(Duration::from_secs(dpd_s));
    let idle = idle_cpu(&[gw_pid, cl_pid], idle_s);
    (r.idle_gw, r.idle_cl) = (idle[0], idle[1]);
    // Stop the client as an operator would (SIGTERM, by PID): it deletes its IKE
    // SAs; the gateway must end with none and no lease.
    let t_stop = Instant::now();
    // SAFETY: kill(2) with the PID of a child process this function started and has
    // not reaped yet, so the PID cannot belong to another process.
    unsafe {
        libc::kill(cl_pid as libc::pid_t, libc::SIGTERM);
    }
    let stop_limit = Duration::from_secs(60 + tunnels as u64 / 200);
    let empty = |s: &std::collections::HashMap<String, u64>| {
        s.get("ike_sas").copied().unwrap_or(0) == 0 && s.get("leased").copied().unwrap_or(0) == 0
    };
    let done = wait_for(stop_limit, Duration::from_millis(20), || {
        stats(bin, &gw_sock).is_some_and(|s| empty(&s))
    });
    r.stop_s = t_stop.elapsed().as_secs_f64();
    if !done {
        r.stop_left = stats(bin, &gw_sock)
            .and_then(|s| s.get("ike_sas").copied())
            .unwrap_or(u64::MAX);
    }
    Ok(r)
}

pub fn run(cfg: &IkeBenchConfig) -> Result<IkeReport, String> {
    // Core: single setups, then a bulk run.
    let single: Vec<f64> = (0..cfg.rounds.max(5) * 10)
        .map(|i| core_run(1, 100 + i as u64) * 1e6)
        .collect();
    let bulk: Vec<f64> = (0..cfg.bulk_rounds.max(1))
        .map(|i| cfg.tunnels as f64 / core_run(cfg.tunnels, 7 + i as u64))
        .collect();
    let mut report = IkeReport {
        core_setup_us: Figure::of(&single),
        core_rate: Figure::of(&bulk),
        proc_setup_ms: None,
        proc_ike_ms: None,
        proc_bulk_ike_ms: None,
        proc_rate: None,
        proc_bulk_s: None,
        proc_idle_empty_gw_pct: None,
        proc_idle_gw_pct: None,
        proc_idle_cl_pct: None,
        proc_stop_s: None,
        proc_stop_left: None,
        proc_rss_empty_gw_kib: None,
        proc_rss_gw_per_tunnel_kib: None,
        proc_rss_cl_per_tunnel_kib: None,
        tunnels: cfg.tunnels,
    };
    if let Some(bin) = &cfg.bin {
        let dir = std::env::temp_dir().join(format!("mobiked-ike-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        // The polling through `ctl` adds up to a few ms per sample; it is the same
        // for every round.
        let mut one = Vec::new();
        let mut logged = Vec::new();
        for r in 0..cfg.rounds {
            let round = proc_run(bin, &dir, r, 1, 0.0, 0)?;
            one.push(round.took * 1e3);
            logged.extend(round.setup_ms);
        }
        let mut many = Vec::new();
        let mut bulk_logged = Vec::new();
        let mut rounds = Vec::new();
        for r in 0..cfg.bulk_rounds.max(1) {
            let round = proc_run(bin, &dir, 100 + r, cfg.tunnels, cfg.idle_s, cfg.dpd_s)?;
            many.push(round.took);
            bulk_logged.extend(round.setup_ms.iter().copied());
            rounds.push(round);
        }
        if cfg.idle_s > 0.0 {
            let of =
                |f: fn(&Round) -> f64| Some(Figure::of(&rounds.iter().map(f).collect::<Vec<_>>()));
            report.proc_idle_empty_gw_pct = of(|r| r.idle_empty_gw);
            report.proc_idle_gw_pct = of(|r| r.idle_gw);
            report.proc_idle_cl_pct = of(|r| r.idle_cl);
            report.proc_stop_s = of(|r| r.stop_s);
            report.proc_stop_left = of(|r| r.stop_left as f64);
        }
        let n = cfg.tunnels.max(1) as f64;
        let of =
            |f: &dyn Fn(&Round) -> f64| Some(Figure::of(&rounds.iter().map(f).collect::<Vec<_>>()));
        report.proc_rss_empty_gw_kib = of(&|r| r.rss_empty_gw);
        report.proc_rss_gw_per_tunnel_kib = of(&|r| r.rss_gw / n);
        report.proc_rss_cl_per_tunnel_kib = of(&|r| r.rss_cl / n);
        report.proc_setup_ms = Some(Figure::of(&one));
        report.proc_ike_ms = Some(Figure::of(&logged));
        report.proc_bulk_ike_ms = Some(Figure::of(&bulk_logged));
        report.proc_bulk_s = Some(Figure::of(&many));
        report.proc_rate = Some(Figure::of(
            &many
                .iter()
                .map(|s| cfg.tunnels as f64 / s)
                .collect::<Vec<_>>(),
        ));
        if std::env::var_os("MOBIKED_BENCH_KEEP").is_none() {
            let _ = fs::remove_dir_all(&dir);
        } else {
            eprintln!("kept {}", dir.display());
        }
    }
    Ok(report)
}

pub fn render_table(r: &IkeReport) -> String {
    let mut rows = vec![
        vec!["core: one setup (us)".to_string(), r.core_setup_us.show(0)],
        vec![
            format!("core: {} setups, per second", r.tunnels),
            r.core_rate.show(0),
        ],
    ];
    if let (Some(one), Some(rate), Some(bulk)) = (r.proc_setup_ms, r.proc_rate, r.proc_bulk_s) {
        rows.push(vec![
            "processes: one tunnel, IKE_SA_INIT to IKE_AUTH done (ms, client log)".into(),
            r.proc_ike_ms.map_or("-".into(), |f| f.show(2)),
        ]);
        rows.push(vec![
            "processes: one tunnel, client start to both ends up (ms)".into(),
            one.show(1),
        ]);
        rows.push(vec![
            format!(
                "processes: {} tunnels, per-tunnel setup (ms, client log)",
                r.tunnels
            ),
            r.proc_bulk_ike_ms.map_or("-".into(), |f| f.show(1)),
        ]);
        rows.push(vec![
            format!("processes: {} tunnels (s)", r.tunnels),
            bulk.show(2),
        ]);
        rows.push(vec![
            format!("processes: {} tunnels, per second", r.tunnels),
            rate.show(0),
        ]);
        rows.push(vec![
            "ratio processes / core (rate)".into(),
            format!("{:.2}", rate.median / r.core_rate.median),
        ]);
    }
    let cpu = [
        (
            "idle CPU, gateway with no tunnel (% of a core)",
            r.proc_idle_empty_gw_pct,
        ),
        (
            "idle CPU, gateway with the tunnels up (%)",
            r.proc_idle_gw_pct,
        ),
        (
            "idle CPU, client with the tunnels up (%)",
            r.proc_idle_cl_pct,
        ),
    ];
    for (name, f) in cpu {
        if let Some(f) = f {
            rows.push(vec![name.to_string(), f.show(2)]);
        }
    }
    let mem = [
        (
            "memory, gateway with no tunnel (MiB RSS)".to_string(),
            r.proc_rss_empty_gw_kib.map(|f| f.scaled(1.0 / 1024.0)),
            1,
        ),
        (
            format!("memory, gateway per tunnel with {} up (KiB RSS)", r.tunnels),
            r.proc_rss_gw_per_tunnel_kib,
            2,
        ),
        (
            format!("memory, client per tunnel with {} up (KiB RSS)", r.tunnels),
            r.proc_rss_cl_per_tunnel_kib,
            2,
        ),
    ];
    for (name, f, digits) in mem {
        if let Some(f) = f {
            rows.push(vec![name, f.show(digits)]);
        }
    }
    if let (Some(stop), Some(left)) = (r.proc_stop_s, r.proc_stop_left) {
        rows.push(vec![
            format!(
                "client with {} tunnels stops -> gateway empty (s)",
                r.tunnels
            ),
            stop.show(2),
        ]);
        rows.push(vec![
            "IKE SAs left on the gateway after the stop".into(),
            left.show(0),
        ]);
    }
    table(
        &[
            "IKE SA setup (aes128gcm16-prfsha256-x25519, PSK, one child)",
            "median (min-max)",
        ],
        &rows,
    )
}
