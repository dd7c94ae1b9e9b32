//! Forwarding benchmark: a real `Worker` forwarding through network namespaces over veth
//! with the `afpacket` backend, ESP against unencrypted (`ForwardMode::Plain`) forwarding
//! through the same ports in the same run, and the publish-to-wire latency of path changes
//! under load.
//!
//! Topology (created here, needs root, removed on drop):
//!
//! ```text
//!  mkf-gen-<pid>            mkf-dut-<pid>                     mkf-sink-<pid>
//!  g0 10.1.0.1 ---veth--- dc 10.1.0.254  [Worker]  ds 192.0.2.1/.2 ---veth--- s0 192.0.2.100
//!  generator               clear side          cipher side                  sink
//! ```
//!
//! One process: a short-lived thread enters a namespace (`setns(CLONE_NEWNET)`) to open an
//! AF_PACKET port there; the socket stays bound to that namespace whichever thread later
//! uses it. MACs are static and every neighbour entry permanent, so nothing ARPs. The
//! generator and the sink share one core; the worker busy-polls alone on the last core.
//!
//! Which side limits: the worker's clear port is wrapped in a probe that counts polls that
//! found nothing. A DUT that idles while the generator runs flat out is limited by the
//! generator (or the kernel work charged to the generator's core), not by itself.

use dataplane::esp;
use dataplane::io::afpacket::{AfPacketConfig, AfPacketPort, KernelShield, RxRing};
use dataplane::io::traffic::{GenConfig, PacketSize, TestHeader, TrafficGen};
use dataplane::io::{BurstIo, Layer};
use dataplane::ip;
use dataplane::natt::{self, Udp4500};
use dataplane::replay::ReplayWindow;
use dataplane::worker::{Fabric, ForwardMode, Idle, Worker, WorkerConfig, WorkerEvent};
use dataplane::PacketBuf;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Serialize, Serializer};
use shared::clock::now_ns;
use shared::counters::Counter;
use shared::path::{Encap, PathSpec, L2};
use shared::policy::Tunnel;
use shared::sa::{EspCipher, EspKey, OutboundSpec};
use shared::table::{TableConfig, TableWriter};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Configuration and report.

/// Inner IP packet size of one benchmark row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FwdSize {
    /// Every inner IP packet this long (headers included).
    Fixed(usize),
    /// 64/576/1500 in 7:4:1 (`PacketSize::Imix`).
    Imix,
}

impl FwdSize {
    pub fn label(&self) -> String {
        match self {
            FwdSize::Fixed(n) => format!("{n}"),
            FwdSize::Imix => "imix".into(),
        }
    }

    fn packet_size(&self) -> PacketSize {
        match self {
            FwdSize::Fixed(n) => PacketSize::Fixed(*n),
            FwdSize::Imix => PacketSize::Imix,
        }
    }

    /// Parses `64`, `1400` or `imix`.
    pub fn parse(s: &str) -> Result<FwdSize, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(FwdSize::Imix);
        }
        let n: usize = s
            .parse()
            .map_err(|_| format!("size `{s}`: expected a number of bytes or `imix`"))?;
        if !(64..=1500).contains(&n) {
            return Err(format!("size {n}: expected 64..=1500 bytes of IP packet"));
        }
        Ok(FwdSize::Fixed(n))
    }
}

/// The rings of the worker's two ports (and the sink's RX ring kind) in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DutRing {
    /// TPACKET_V3 blocks (handed over when full or 1 ms old) or TPACKET_V2 frames (each
    /// handed over at once).
    pub rx: RxRing,
    /// Ring block size; the worker's rings hold `DUT_RING_BYTES` whatever it is.
    pub block_size: usize,
}

impl DutRing {
    /// V3 blocks of the backend's default size.
    pub fn blocks() -> DutRing {
        DutRing {
            rx: RxRing::V3Blocks,
            block_size: AfPacketConfig::default().block_size,
        }
    }

    /// V2 frames (in blocks of the backend's default size).
    pub fn frames() -> DutRing {
        DutRing {
            rx: RxRing::V2Frames,
            ..DutRing::blocks()
        }
    }

    /// `blocks:262144`, `blocks:8192` or `frames`.
    pub fn label(&self) -> String {
        match self.rx {
            RxRing::V3Blocks => format!("blocks:{}", self.block_size),
            RxRing::V2Frames if self.block_size == DutRing::frames().block_size => "frames".into(),
            RxRing::V2Frames => format!("frames:{}", self.block_size),
        }
    }

    /// Parses `blocks`, `frames`, or either with `:BLOCK_SIZE`.
    pub fn parse(s: &str) -> Result<DutRing, String> {
        let (kind, size) = match s.split_once(':') {
            Some((k, n)) => (
                k,
                Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("ring `{s}`: `{n}` is not a block size"))?,
                ),
            ),
            None => (s, None),
        };
        let rx: RxRing = kind.parse()?;
        let block_size = size.unwrap_or(DutRing::blocks().block_size);
        if block_size < 4096 || !block_size.is_multiple_of(4096) || block_size > DUT_RING_BYTES {
            return Err(format!(
                "ring `{s}`: block size must be a multiple of 4096 up to {DUT_RING_BYTES}"
            ));
        }
        Ok(DutRing { rx, block_size })
    }
}

impl Default for DutRing {
    fn default() -> Self {
        DutRing::blocks()
    }
}

impl Serialize for DutRing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct FwdBenchConfig {
    /// Measured seconds per (size, mode, round).
    pub seconds: f64,
    /// Seconds of traffic before the measurement window opens.
    pub warmup: f64,
    /// Rounds per (size, mode); the report gives the median round.
    pub rounds: usize,
    pub sizes: Vec<FwdSize>,
    /// Worker burst size of the throughput runs.
    pub burst: usize,
    /// Generator rate in packets per second; 0 = as fast as it goes.
    pub rate_pps: u64,
    /// Path switches per latency run (0 skips the path-change measurement).
    pub switches: usize,
    /// Milliseconds between path switches.
    pub switch_every_ms: u64,
    /// Inner packet size of the path-change runs.
    pub switch_size: usize,
    /// Offered loads of the path-change runs, packets per second (0 = flat out).
    pub switch_loads_pps: Vec<u64>,
    /// The worker's rings in the throughput runs (the afpacket backend's default unless
    /// changed).
    pub dut_ring: DutRing,
    /// Rings the path-change runs are repeated with: a TPACKET_V3 RX block reaches the
    /// worker only when full or 1 ms old, which bounds how soon a packet can carry a new
    /// path; a TPACKET_V2 frame reaches it as soon as the kernel wrote it.
    pub switch_rings: Vec<DutRing>,
    /// Worker burst sizes the path-change runs are repeated with: a saturated worker
    /// takes full bursts, and a publication waits for the burst in progress and the next.
    pub switch_bursts: Vec<usize>,
    /// Address generated frames to a MAC that is not the DUT's, so the DUT namespace's
    /// IP stack drops its copy at once (`PACKET_OTHERHOST`) instead of routing it: that
    /// kernel work runs on the generator's core (veth delivers in the sender's context)
    /// and would make the generator, not the worker, the limit. The AF_PACKET socket sees
    /// the frames either way.
    pub clear_otherhost: bool,
    /// Nice value of the worker, generator and sink threads (0 leaves it): on a shared
    /// machine other processes would otherwise take most of the worker's core.
    pub nice: i32,
}

impl Default for FwdBenchConfig {
    fn default() -> Self {
        FwdBenchConfig {
            seconds: 3.0,
            warmup: 0.5,
            rounds: 3,
            sizes: vec![
                FwdSize::Fixed(64),
                FwdSize::Fixed(512),
                FwdSize::Fixed(1400),
                FwdSize::Imix,
            ],
            burst: 64,
            rate_pps: 0,
            switches: 120,
            switch_every_ms: 50,
            switch_size: 1400,
            switch_loads_pps: vec![0, 100_000, 20_000],
            dut_ring: DutRing::blocks(),
            switch_rings: vec![DutRing::blocks(), DutRing::frames()],
            switch_bursts: vec![64, 8],
            clear_otherhost: true,
            nice: -20,
        }
    }
}

/// One measured window of one (size, mode).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RoundResult {
    pub seconds: f64,
    /// Frames the generator handed to its TX ring, per second (offered load).
    pub offered_pps: f64,
    /// Frames the worker took from its clear port.
    pub dut_rx_pps: f64,
    /// Frames the worker sent on its cipher port (`tx_cipher`).
    pub dut_tx_pps: f64,
    /// Frames the sink counted as forwarded (ESP-in-UDP, or plain UDP, to port 4500).
    pub sink_rx_pps: f64,
    /// Inner IP throughput at the sink (frames x mean inner packet size).
    pub inner_gbps: f64,
    /// Share of the worker's clear-port polls that found nothing.
    pub dut_idle_polls: f64,
    /// Mean packets per non-empty clear-port poll.
    pub dut_mean_burst: f64,
    /// Share of wall time the worker spent handling non-empty bursts (from the return of a
    /// non-empty clear-port poll to the next poll: classify, encrypt, frame, transmit).
    pub dut_busy: f64,
    /// Worker time per forwarded packet, nanoseconds, and the rate that implies for a
    /// worker kept busy all the time: its capacity when the generator is the limit.
    pub dut_ns_per_packet: f64,
    pub dut_capacity_pps: f64,
    /// Share of wall time the worker thread was on a CPU (schedstat run time, which
    /// includes softirq work done in its context, such as veth delivery of what it
    /// sends). Below 1, other processes took turns on the worker's core (nice does not
    /// help across cgroups); busy time then includes their slices, so the ns/packet and
    /// capacity figures are scaled by this share: they are worker CPU time per packet.
    pub dut_cpu_share: f64,
    /// Offered frames that never reached the worker (kernel drops into its RX ring).
    pub lost_before_dut: u64,
    /// Worker drops of any kind (named in `dut_drops`).
    pub dut_dropped: u64,
    pub dut_drops: Vec<(String, u64)>,
    /// Sampled frames the sink checked (decrypted, for ESP) and that carried a valid
    /// test header; and those that failed.
    pub sink_verified: u64,
    pub sink_verify_failed: u64,
    /// Frames at the sink that were neither of the expected kind.
    pub sink_other: u64,
}

/// One forwarding mode at one size.
#[derive(Clone, Debug, Serialize)]
pub struct ModeResult {
    pub mode: String,
    pub rounds: Vec<RoundResult>,
    /// The round with the median `dut_tx_pps`.
    pub median: RoundResult,
}

/// ESP and plain forwarding at one size.
#[derive(Clone, Debug, Serialize)]
pub struct SizeResult {
    pub size: String,
    /// Mean inner IP packet length.
    pub mean_ip_len: f64,
    pub plain: ModeResult,
    pub esp: ModeResult,
    /// Median ESP forwarding rate over median plain forwarding rate (worker tx).
    pub esp_over_plain: f64,
    /// The same ratio of worker capacities (busy time per packet): what the worker alone
    /// achieves when the generator is the limit.
    pub esp_over_plain_capacity: f64,
    /// `dut` when the worker was saturated in both modes, else which side limited.
    pub limited_by: String,
}

/// Publish-to-wire latency of path changes during one ESP run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PathChangeResult {
    /// Offered load (0 = flat out).
    pub offered_target_pps: u64,
    pub ring: DutRing,
    pub offered_pps: f64,
    pub dut_tx_pps: f64,
    /// Share of wall time the worker spent on non-empty bursts: near 1 it was saturated
    /// and every publication waited for whole bursts.
    pub dut_busy: f64,
    /// Mean packets per non-empty clear-port poll.
    pub dut_mean_burst: f64,
    /// Share of wall time the worker thread was on a CPU (below 1: other work took turns
    /// on its core, and a publication can wait for the worker's next slice).
    pub dut_cpu_share: f64,
    /// Duration of the `publish()` call after its timestamp: time charged to the worker
    /// that the publisher spent (building the snapshot, or descheduled).
    pub publish_call_us: Percentiles,
    pub size: usize,
    pub burst: usize,
    pub published: usize,
    /// `PathOnWire` events received for the published generations.
    pub events: usize,
    pub publish_to_wire_us: Percentiles,
    /// Publication to the end of the worker's first non-empty clear poll after it: the
    /// wait for a packet to carry the new path (offered load, RX ring hand-over,
    /// generator and worker scheduling).
    pub publish_to_rx_us: Percentiles,
    /// That first packet in hand to the first packet on the new path sent, per
    /// publication: the rest of the iteration in progress, the next one if the packet
    /// was read under the old snapshot, and the `tx_burst` of it.
    pub rx_to_wire_us: Percentiles,
    /// Publication to the first frame from the new outer source at the sink.
    pub publish_to_sink_us: Percentiles,
    /// Outer-source changes the sink saw, and publications it saw a change for.
    pub sink_source_changes: u64,
    pub sink_matched: usize,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    pub samples: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(mut v: Vec<f64>) -> Percentiles {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        // Nearest rank.
        let q = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles {
            samples: v.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: v[v.len() - 1],
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FwdReport {
    pub unix_time: u64,
    pub kernel: String,
    pub cores: usize,
    pub dut_core: Option<usize>,
    pub load_core: Option<usize>,
    pub config: FwdBenchConfig,
    pub sizes: Vec<SizeResult>,
    pub path_change: Vec<PathChangeResult>,
}

// ---------------------------------------------------------------------------------------
// Topology.

const MAC_G0: [u8; 6] = [0x02, 0x6d, 0x6b, 0x00, 0x00, 0x01];
const MAC_DC: [u8; 6] = [0x02, 0x6d, 0x6b, 0x00, 0x00, 0x02];
const MAC_DS: [u8; 6] = [0x02, 0x6d, 0x6b, 0x00, 0x00, 0x03];
const MAC_S0: [u8; 6] = [0x02, 0x6d, 0x6b, 0x00, 0x00, 0x04];
/// A MAC nobody owns (see `FwdBenchConfig::clear_otherhost`).
const MAC_OTHER: [u8; 6] = [0x02, 0x6d, 0x6b, 0x00, 0x00, 0x99];
/// Size of the worker's rings whatever their block size.
const DUT_RING_BYTES: usize = 2 << 20;
const GEN_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const DUT_CLEAR_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 254);
/// Inner destination: a host behind the sink's gateway, on no interface.
const INNER_DST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
/// The DUT's two outer addresses; path changes alternate between them.
const DUT_OUTER: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];
const SINK_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const SPI: u32 = 0x6d6b_f001;
/// The cipher-side veth carries ESP of 1500-byte IMIX packets.
const CIPHER_MTU: u32 = 1600;
/// The sink decrypts (or parses) one frame in this many.
const VERIFY_EVERY: u64 = 64;

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The three namespaces; deleting a namespace removes the veth ends inside it.
struct Topology {
    gen: String,
    dut: String,
    sink: String,
    created: Vec<String>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

impl Topology {
    fn create() -> Result<Topology, String> {
        let pid = std::process::id();
        let mut t = Topology {
            gen: format!("mkf-gen-{pid}"),
            dut: format!("mkf-dut-{pid}"),
            sink: format!("mkf-sink-{pid}"),
            created: Vec::new(),
        };
        for ns in [t.gen.clone(), t.dut.clone(), t.sink.clone()] {
            sh(&["ip", "netns", "add", &ns])?;
            t.created.push(ns.clone());
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            for key in [
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
                "net.ipv4.ip_forward=0",
            ] {
                sh(&["ip", "netns", "exec", &ns, "sysctl", "-qw", key])?;
            }
        }
        let (g, d, s) = (t.gen.clone(), t.dut.clone(), t.sink.clone());
        let (mg0, mdc, mds, ms0) = (
            mac_str(MAC_G0),
            mac_str(MAC_DC),
            mac_str(MAC_DS),
            mac_str(MAC_S0),
        );
        sh(&[
            "ip", "-n", &g, "link", "add", "g0", "address", &mg0, "type", "veth", "peer", "name",
            "dc", "address", &mdc, "netns", &d,
        ])?;
        sh(&[
            "ip", "-n", &d, "link", "add", "ds", "address", &mds, "type", "veth", "peer", "name",
            "s0", "address", &ms0, "netns", &s,
        ])?;
        let mtu = CIPHER_MTU.to_string();
        sh(&["ip", "-n", &d, "link", "set", "ds", "mtu", &mtu])?;
        sh(&["ip", "-n", &s, "link", "set", "s0", "mtu", &mtu])?;
        for (ns, dev, addr) in [
            (&g, "g0", format!("{GEN_IP}/24")),
            (&d, "dc", format!("{DUT_CLEAR_IP}/24")),
            (&d, "ds", format!("{}/24", DUT_OUTER[0])),
            (&d, "ds", format!("{}/24", DUT_OUTER[1])),
            (&s, "s0", format!("{SINK_IP}/24")),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", &addr, "dev", dev])?;
        }
        for (ns, dev) in [(&g, "g0"), (&d, "dc"), (&d, "ds"), (&s, "s0")] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        // Permanent neighbours: no ARP ever, in either direction.
        for (ns, dev, ip, mac) in [
            (&g, "g0", DUT_CLEAR_IP, &mdc),
            (&d, "dc", GEN_IP, &mg0),
            (&d, "ds", SINK_IP, &ms0),
            (&s, "s0", DUT_OUTER[0], &mds),
            (&s, "s0", DUT_OUTER[1], &mds),
        ] {
            sh(&[
                "ip",
                "-n",
                ns,
                "neigh",
                "replace",
                &ip.to_string(),
                "lladdr",
                mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ])?;
        }
        Ok(t)
    }
}

/// Moves the calling thread into network namespace `ns` (named by `ip netns`).
fn enter_netns(ns: &str) -> io::Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}"))?;
    // SAFETY: setns on a valid namespace descriptor affects only the calling thread's
    // network namespace; the descriptor outlives the call.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a thread inside `ns` and returns its result (sockets it opens stay bound
/// to `ns`).
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, String> {
    let name = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&name).map_err(|e| format!("entering namespace {name}: {e}"))?;
        f().map_err(|e| format!("in namespace {name}: {e}"))
    })
    .join()
    .map_err(|_| format!("thread in namespace {ns} panicked"))?
}

fn open_port(ns: &str, dev: &str, ring: DutRing, blocks: usize) -> Result<AfPacketPort, String> {
    let cfg = AfPacketConfig {
        interface: dev.to_string(),
        block_size: ring.block_size,
        block_count: blocks,
        rx_ring: ring.rx,
        ..AfPacketConfig::default()
    };
    in_netns(ns, move || AfPacketPort::open(&cfg))
}

fn pin(core: Option<usize>) {
    if let Some(id) = core {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

/// Sets the calling thread's nice value (best effort; 0 leaves it).
fn renice(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid and setpriority have no memory preconditions; on Linux PRIO_PROCESS
    // with a thread id changes only that thread.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
    }
}

// ---------------------------------------------------------------------------------------
// Generator: frames built once by `TrafficGen`, replayed.

/// Inner packets as Ethernet frames for the clear side: one IMIX cycle times 32.
fn build_frames(size: FwdSize, dst_mac: [u8; 6]) -> Result<Vec<Vec<u8>>, String> {
    let n = 12 * 32;
    let mut cfg = GenConfig::new(
        SocketAddr::new(IpAddr::V4(GEN_IP), 40000),
        SocketAddr::new(IpAddr::V4(INNER_DST), 40001),
    );
    cfg.size = size.packet_size();
    cfg.count = Some(n as u64);
    let mut gen = TrafficGen::new(cfg);
    let mut bufs = PacketBuf::alloc(n);
    let made = gen.generate(&mut bufs, now_ns());
    if made != n {
        return Err(format!("generator built {made} of {n} packets"));
    }
    let l2 = L2 {
        src_mac: MAC_G0,
        dst_mac,
    };
    bufs.iter_mut()
        .map(|b| {
            ip::push_ethernet(b, &l2, ip::ETHERTYPE_IPV4)
                .map_err(|e| format!("ethernet header: {e:?}"))?;
            Ok(b.data().to_vec())
        })
        .collect()
}

#[derive(Default)]
struct GenShared {
    sent: AtomicU64,
}

fn run_generator(
    mut port: AfPacketPort,
    frames: Vec<Vec<u8>>,
    rate_pps: u64,
    stop: Arc<AtomicBool>,
    shared: Arc<GenShared>,
    core: Option<usize>,
    nice: i32,
) {
    pin(core);
    renice(nice);
    let mut bufs = PacketBuf::alloc(64);
    let mut next = 0usize;
    let mut sent = 0u64;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut want = bufs.len();
        if rate_pps > 0 {
            let due = (start.elapsed().as_nanos() * u128::from(rate_pps) / 1_000_000_000) as u64;
            want = want.min(due.saturating_sub(sent) as usize);
            if want == 0 {
                std::hint::spin_loop();
                continue;
            }
        }
        for (i, b) in bufs[..want].iter_mut().enumerate() {
            b.reset();
            b.fill(&frames[(next + i) % frames.len()]);
        }
        let w = port.tx_burst(&mut bufs[..want]).unwrap_or(0);
        next = (next + w) % frames.len();
        sent += w as u64;
        shared.sent.store(sent, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// Sink.

#[derive(Default)]
struct SinkShared {
    frames: AtomicU64,
    forwarded: AtomicU64,
    other: AtomicU64,
    verified: AtomicU64,
    verify_failed: AtomicU64,
    source_changes: AtomicU64,
}

/// What the sink hands back when it stops: (arrival ns, outer source) of each change.
type SourceChanges = Vec<(u64, Ipv4Addr)>;

struct SinkState {
    mode: ForwardMode,
    key: EspKey,
    window: ReplayWindow,
    scratch: PacketBuf,
    seen: u64,
    last_src: Option<Ipv4Addr>,
    changes: SourceChanges,
}

impl SinkState {
    /// Checks one sampled UDP-4500 payload: decrypts ESP with the SA's key, then expects
    /// an inner IPv4/UDP packet carrying a test header.
    fn verify(&mut self, payload: &[u8]) -> bool {
        let inner_ok = |pkt: &[u8]| -> bool {
            let Ok(o) = ip::parse_outer(pkt, Layer::Ip) else {
                return false;
            };
            o.encap == Encap::Udp
                && pkt
                    .get(o.payload)
                    .and_then(TestHeader::parse)
                    .is_some_and(|h| h.flow == 0)
        };
        match self.mode {
            ForwardMode::Plain => inner_ok(payload),
            ForwardMode::Esp => {
                if !self.scratch.fill(payload) {
                    return false;
                }
                match esp::decap(&self.key, false, &mut self.window, &mut self.scratch) {
                    Ok(esp::NH_IPV4) => inner_ok(self.scratch.data()),
                    _ => false,
                }
            }
        }
    }

    fn frame(&mut self, frame: &[u8], now: u64, sh: &SinkShared) -> bool {
        let Ok(o) = ip::parse_outer(frame, Layer::Ethernet) else {
            return false;
        };
        if o.encap != Encap::Udp || o.dst.port() != natt::NATT_PORT {
            return false;
        }
        let Some(payload) = frame.get(o.payload.clone()) else {
            return false;
        };
        let kind_ok = match self.mode {
            ForwardMode::Esp => natt::classify(payload) == Udp4500::Esp,
            ForwardMode::Plain => payload.first().is_some_and(|b| b >> 4 == 4),
        };
        if !kind_ok {
            return false;
        }
        self.seen += 1;
        if self.seen % VERIFY_EVERY == 1 {
            if self.verify(payload) {
                sh.verified.fetch_add(1, Ordering::Relaxed);
            } else {
                sh.verify_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let IpAddr::V4(src) = o.src.ip() {
            if self.last_src != Some(src) {
                if self.last_src.is_some() {
                    sh.source_changes.fetch_add(1, Ordering::Relaxed);
                    if self.changes.len() < self.changes.capacity() {
                        self.changes.push((now, src));
                    }
                }
                self.last_src = Some(src);
            }
        }
        true
    }
}

fn run_sink(
    mut port: AfPacketPort,
    mut st: SinkState,
    stop: Arc<AtomicBool>,
    sh: Arc<SinkShared>,
    core: Option<usize>,
    nice: i32,
) -> SourceChanges {
    pin(core);
    renice(nice);
    let mut bufs = PacketBuf::alloc(256);
    let (mut frames, mut fwd, mut other) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let n = port.rx_burst(&mut bufs).unwrap_or(0);
        let now = now_ns();
        for b in &bufs[..n] {
            if st.frame(b.data(), now, &sh) {
                fwd += 1;
            } else {
                other += 1;
            }
        }
        frames += n as u64;
        sh.frames.store(frames, Ordering::Relaxed);
        sh.forwarded.store(fwd, Ordering::Relaxed);
        sh.other.store(other, Ordering::Relaxed);
        if n < bufs.len() {
            // The ring holds milliseconds of traffic: leave the shared core to the
            // generator instead of spinning.
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    st.changes
}

// ---------------------------------------------------------------------------------------
// DUT probe.

/// Counts the worker's clear-port polls (the worker polls each port once per iteration).
/// Also measures the time of iterations that started with a non-empty clear poll.
struct Probe<P> {
    inner: P,
    polls: u64,
    empty: u64,
    busy_ns: u64,
    prev_ns: u64,
    prev_nonempty: bool,
    nice: i32,
    shared: Arc<ProbeShared>,
}

impl<P> Probe<P> {
    fn new(inner: P, shared: Arc<ProbeShared>, nice: i32) -> Probe<P> {
        Probe {
            inner,
            nice,
            polls: 0,
            empty: 0,
            busy_ns: 0,
            prev_ns: 0,
            prev_nonempty: false,
            shared,
        }
    }
}

#[derive(Default)]
struct ProbeShared {
    polls: AtomicU64,
    empty: AtomicU64,
    busy_ns: AtomicU64,
    /// The worker thread's id, for its schedstat.
    tid: AtomicU64,
    /// Set by the publisher just before a publication; the first non-empty clear poll
    /// that ends after it stores its end time in `first_rx_ns` and clears it: how long
    /// after a publication the worker had a packet in hand at all.
    pending_ns: AtomicU64,
    first_rx_ns: AtomicU64,
}

/// Nanoseconds thread `tid` of this process has run on a CPU.
fn thread_cpu_ns(tid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

impl<P: BurstIo> BurstIo for Probe<P> {
    fn layer(&self) -> Layer {
        self.inner.layer()
    }
    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        if self.polls == 0 {
            // SAFETY: gettid has no preconditions (once, on the first poll).
            let tid = unsafe { libc::gettid() };
            self.shared.tid.store(tid as u64, Ordering::Relaxed);
            renice(self.nice);
        }
        let t = now_ns();
        if self.prev_nonempty {
            self.busy_ns += t.saturating_sub(self.prev_ns);
        }
        self.prev_ns = t;
        let r = self.inner.rx_burst(bufs);
        let n = *r.as_ref().unwrap_or(&0);
        if n > 0 {
            let pending = self.shared.pending_ns.load(Ordering::Acquire);
            if pending != 0 {
                let end = now_ns();
                if end >= pending {
                    self.shared.first_rx_ns.store(end, Ordering::Relaxed);
                    self.shared.pending_ns.store(0, Ordering::Relaxed);
                }
            }
        }
        self.prev_nonempty = n > 0;
        self.polls += 1;
        self.empty += u64::from(n == 0);
        self.shared.polls.store(self.polls, Ordering::Relaxed);
        self.shared.empty.store(self.empty, Ordering::Relaxed);
        self.shared.busy_ns.store(self.busy_ns, Ordering::Relaxed);
        r
    }
    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        self.inner.tx_burst(bufs)
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
}

// ---------------------------------------------------------------------------------------
// One run.

struct Snap {
    t: Instant,
    gen_sent: u64,
    polls: u64,
    empty: u64,
    busy_ns: u64,
    cpu_ns: u64,
    dut_rx: u64,
    dut_tx: u64,
    sink_fwd: u64,
}

struct Rig {
    topo: Topology,
    keymat: Vec<u8>,
    dut_core: Option<usize>,
    load_core: Option<usize>,
    clear_dst_mac: [u8; 6],
    nice: i32,
}

/// A running forwarding setup: generator, worker, sink.
struct Running {
    writer: TableWriter,
    fabric: Arc<Fabric>,
    probe: Arc<ProbeShared>,
    gen: Arc<GenShared>,
    sink: Arc<SinkShared>,
    gen_stop: Arc<AtomicBool>,
    sink_stop: Arc<AtomicBool>,
    gen_h: JoinHandle<()>,
    sink_h: JoinHandle<SourceChanges>,
    worker_h: JoinHandle<(AfPacketPort, Probe<AfPacketPort>)>,
    _shield: KernelShield,
    mean_ip_len: f64,
}

fn path_spec(local: Ipv4Addr) -> PathSpec {
    PathSpec {
        local: SocketAddr::new(IpAddr::V4(local), natt::NATT_PORT),
        remote: SocketAddr::new(IpAddr::V4(SINK_IP), natt::NATT_PORT),
        encap: Encap::Udp,
        l2: Some(L2 {
            src_mac: MAC_DS,
            dst_mac: MAC_S0,
        }),
        keepalive_ms: 0,
    }
}

impl Rig {
    fn start(
        &self,
        mode: ForwardMode,
        size: FwdSize,
        burst: usize,
        rate: u64,
        ring: DutRing,
    ) -> Result<Running, String> {
        let frames = build_frames(size, self.clear_dst_mac)?;
        // Inner IP length = frame minus the Ethernet header.
        let mean_ip_len = frames
            .iter()
            .map(|f| (f.len() - ip::ETH_HEADER_LEN) as f64)
            .sum::<f64>()
            / frames.len() as f64;
        let tc = TableConfig {
            workers: 1,
            max_inbound: 16,
            max_outbound: 16,
            max_paths: 16,
            max_tunnels: 16,
        };
        let mut writer = TableWriter::new(tc);
        let key = |k: &[u8]| EspKey::new(EspCipher::AesGcm16_128, k).map_err(|e| e.to_string());
        let e = |e: shared::table::TableError| e.to_string();
        writer.set_path(0, path_spec(DUT_OUTER[0])).map_err(e)?;
        writer
            .set_tunnel(Tunnel {
                id: 0,
                local_ts: vec!["10.1.0.0/24".parse().map_err(|e| format!("{e:?}"))?],
                remote_ts: vec!["10.2.0.0/24".parse().map_err(|e| format!("{e:?}"))?],
            })
            .map_err(e)?;
        writer
            .set_outbound(OutboundSpec {
                spi: SPI,
                owner: 0,
                esn: false,
                key: key(&self.keymat)?,
                path: 0,
                tunnel: 0,
            })
            .map_err(e)?;
        writer.publish();

        let t = &self.topo;
        let dflt = AfPacketConfig::default();
        let blocks = (DUT_RING_BYTES / ring.block_size.max(1)).clamp(1, 1 << 16);
        let cipher = open_port(&t.dut, "ds", ring, blocks)?;
        let clear = open_port(&t.dut, "dc", ring, blocks)?;
        // The sink's ring holds ~10 ms at full rate so it can sleep when idle; it is of the
        // worker's kind so that publish->sink carries no block timeout the wire had not.
        let sink_ring = DutRing {
            rx: ring.rx,
            block_size: dflt.block_size,
        };
        let sink_port = open_port(&t.sink, "s0", sink_ring, 64)?;
        let gen_port = open_port(&t.gen, "g0", DutRing::blocks(), dflt.block_count)?;
        // The sink host's stack sees the forwarded UDP-4500 frames too: give them a
        // socket that discards them instead of ICMP port unreachable.
        let shield = in_netns(&t.sink, || {
            KernelShield::open(Some((IpAddr::V4(SINK_IP), natt::NATT_PORT)), false)
        })?;

        let fabric = Fabric::new(1);
        let mut wc = WorkerConfig::new(0, &tc);
        wc.core = self.dut_core;
        wc.burst = burst;
        wc.mode = mode;
        wc.idle = Idle::Busy;
        wc.clear_l2 = Some(L2 {
            src_mac: MAC_DC,
            dst_mac: MAC_G0,
        });
        let probe = Arc::new(ProbeShared::default());
        let clear = Probe::new(clear, probe.clone(), self.nice);
        let reader = writer.reader(0).ok_or("no table reader")?;
        let worker_h = Worker::new(wc, cipher, clear, reader, fabric.clone())
            .spawn("fwd-dut".into())
            .map_err(|e| format!("starting the worker: {e}"))?;

        let sink = Arc::new(SinkShared::default());
        let sink_stop = Arc::new(AtomicBool::new(false));
        let mut window = ReplayWindow::new(0);
        window.reset(0, false);
        let st = SinkState {
            mode,
            key: key(&self.keymat)?,
            window,
            scratch: PacketBuf::new(),
            seen: 0,
            last_src: None,
            changes: Vec::with_capacity(16 * 1024),
        };
        let (s2, ss2, lc, nice) = (sink.clone(), sink_stop.clone(), self.load_core, self.nice);
        let sink_h = std::thread::Builder::new()
            .name("fwd-sink".into())
            .spawn(move || run_sink(sink_port, st, ss2, s2, lc, nice))
            .map_err(|e| format!("starting the sink: {e}"))?;

        let gen = Arc::new(GenShared::default());
        let gen_stop = Arc::new(AtomicBool::new(false));
        let (g2, gs2) = (gen.clone(), gen_stop.clone());
        let gen_h = std::thread::Builder::new()
            .name("fwd-gen".into())
            .spawn(move || run_generator(gen_port, frames, rate, gs2, g2, lc, nice))
            .map_err(|e| format!("starting the generator: {e}"))?;
        Ok(Running {
            writer,
            fabric,
            probe,
            gen,
            sink,
            gen_stop,
            sink_stop,
            gen_h,
            sink_h,
            worker_h,
            _shield: shield,
            mean_ip_len,
        })
    }
}

impl Running {
    fn snap(&self) -> Snap {
        Snap {
            t: Instant::now(),
            gen_sent: self.gen.sent.load(Ordering::Relaxed),
            polls: self.probe.polls.load(Ordering::Relaxed),
            empty: self.probe.empty.load(Ordering::Relaxed),
            busy_ns: self.probe.busy_ns.load(Ordering::Relaxed),
            cpu_ns: thread_cpu_ns(self.probe.tid.load(Ordering::Relaxed)),
            dut_rx: self.fabric.counters.total(Counter::RxClear),
            dut_tx: self.fabric.counters.total(Counter::TxCipher),
            sink_fwd: self.sink.forwarded.load(Ordering::Relaxed),
        }
    }

    fn round(&self, a: &Snap, b: &Snap) -> RoundResult {
        let dt = b.t.duration_since(a.t).as_secs_f64().max(1e-9);
        let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
        let polls = b.polls.saturating_sub(a.polls);
        let empty = b.empty.saturating_sub(a.empty);
        let busy = polls.saturating_sub(empty).max(1);
        let sink_pps = rate(a.sink_fwd, b.sink_fwd);
        let cpu_share = (b.cpu_ns.saturating_sub(a.cpu_ns) as f64 / (dt * 1e9)).min(1.0);
        let busy_ns = b.busy_ns.saturating_sub(a.busy_ns) as f64;
        // Busy time while the worker actually held its core.
        let busy_cpu_ns = busy_ns * cpu_share;
        let tx = b.dut_tx.saturating_sub(a.dut_tx).max(1) as f64;
        RoundResult {
            seconds: dt,
            offered_pps: rate(a.gen_sent, b.gen_sent),
            dut_rx_pps: rate(a.dut_rx, b.dut_rx),
            dut_tx_pps: rate(a.dut_tx, b.dut_tx),
            sink_rx_pps: sink_pps,
            inner_gbps: sink_pps * self.mean_ip_len * 8.0 / 1e9,
            dut_idle_polls: if polls == 0 {
                0.0
            } else {
                empty as f64 / polls as f64
            },
            dut_mean_burst: b.dut_rx.saturating_sub(a.dut_rx) as f64 / busy as f64,
            dut_busy: busy_ns / (dt * 1e9),
            dut_ns_per_packet: busy_cpu_ns / tx,
            dut_capacity_pps: if busy_cpu_ns > 0.0 {
                tx * 1e9 / busy_cpu_ns
            } else {
                0.0
            },
            dut_cpu_share: cpu_share,
            ..RoundResult::default()
        }
    }

    /// Stops everything and fills in the totals only known at the end.
    fn finish(self, r: &mut RoundResult) -> Result<SourceChanges, String> {
        self.gen_stop.store(true, Ordering::Relaxed);
        let _ = self.gen_h.join();
        // Let what is in flight arrive.
        std::thread::sleep(Duration::from_millis(100));
        self.fabric.stop();
        let _ = self.worker_h.join();
        self.sink_stop.store(true, Ordering::Relaxed);
        let changes = self
            .sink_h
            .join()
            .map_err(|_| "the sink thread panicked".to_string())?;
        let c = &self.fabric.counters;
        r.lost_before_dut = self
            .gen
            .sent
            .load(Ordering::Relaxed)
            .saturating_sub(c.total(Counter::RxClear));
        r.dut_drops = c
            .nonzero()
            .into_iter()
            .filter(|(n, _)| n.starts_with("drop_"))
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        r.dut_dropped = r.dut_drops.iter().map(|(_, v)| v).sum();
        r.sink_verified = self.sink.verified.load(Ordering::Relaxed);
        r.sink_verify_failed = self.sink.verify_failed.load(Ordering::Relaxed);
        r.sink_other = self.sink.other.load(Ordering::Relaxed);
        Ok(changes)
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn measure(
    rig: &Rig,
    cfg: &FwdBenchConfig,
    mode: ForwardMode,
    size: FwdSize,
) -> Result<(RoundResult, f64), String> {
    let run = rig.start(mode, size, cfg.burst, cfg.rate_pps, cfg.dut_ring)?;
    std::thread::sleep(secs(cfg.warmup));
    let a = run.snap();
    std::thread::sleep(secs(cfg.seconds));
    let b = run.snap();
    let mut r = run.round(&a, &b);
    let mean = run.mean_ip_len;
    run.finish(&mut r)?;
    if r.sink_verify_failed > 0 {
        return Err(format!(
            "{mode:?} {}: the sink failed to verify {} sampled frames",
            size.label(),
            r.sink_verify_failed
        ));
    }
    Ok((r, mean))
}

fn median(rounds: &[RoundResult]) -> RoundResult {
    let mut v: Vec<&RoundResult> = rounds.iter().collect();
    v.sort_by(|a, b| a.dut_tx_pps.total_cmp(&b.dut_tx_pps));
    v.get(v.len() / 2).map(|r| (*r).clone()).unwrap_or_default()
}

/// A worker busy for less than this share of the time had spare capacity.
const BUSY_SATURATED: f64 = 0.9;

fn limiter(plain: &RoundResult, esp: &RoundResult) -> String {
    let side = |r: &RoundResult| {
        if r.dut_busy < BUSY_SATURATED {
            "generator"
        } else {
            "dut"
        }
    };
    match (side(plain), side(esp)) {
        ("dut", "dut") => "dut".into(),
        (p, e) => format!("plain: {p}, esp: {e}"),
    }
}

fn path_change(
    rig: &Rig,
    cfg: &FwdBenchConfig,
    load: u64,
    ring: DutRing,
    burst: usize,
) -> Result<PathChangeResult, String> {
    let size = FwdSize::Fixed(cfg.switch_size);
    let mut run = rig.start(ForwardMode::Esp, size, burst, load, ring)?;
    std::thread::sleep(secs(cfg.warmup));
    let a = run.snap();
    let every = Duration::from_millis(cfg.switch_every_ms.max(1));
    // The publisher gets its own thread on the load core at the benchmark's nice value:
    // left at nice 0 against nice -20 spinners it could be descheduled inside
    // `publish()`, between the timestamp and the swap, and charge that to the worker.
    let (writer, fabric, probe) = (&mut run.writer, &run.fabric, &run.probe);
    let (core, nice, switches) = (rig.load_core, rig.nice, cfg.switches);
    let publisher = std::thread::scope(|s| {
        s.spawn(move || -> Result<_, String> {
            pin(core);
            renice(nice);
            let mut published: Vec<(u64, u64, Ipv4Addr)> = Vec::with_capacity(switches);
            let mut publish_us = Vec::with_capacity(switches);
            // Publication time -> the worker's first packet in hand after it.
            let mut first_rx: Vec<(u64, u64)> = Vec::with_capacity(switches);
            let mut events = Vec::new();
            let mut next = Instant::now() + every;
            for i in 0..switches {
                while let Some(ev) = fabric.events.pop() {
                    events.push(ev);
                }
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                next += every;
                // The previous publication's first packet came (or not) 50 ms ago.
                if let Some(&(_, published_ns, _)) = published.last() {
                    let rx = probe.first_rx_ns.swap(0, Ordering::Relaxed);
                    if rx != 0 {
                        first_rx.push((published_ns, rx));
                    }
                }
                let local = DUT_OUTER[(i + 1) % 2];
                let generation = writer
                    .set_path(0, path_spec(local))
                    .map_err(|e| e.to_string())?;
                // Armed a moment before the publication's own timestamp.
                probe.pending_ns.store(now_ns(), Ordering::Release);
                let p = writer.publish();
                publish_us.push(now_ns().saturating_sub(p.published_ns) as f64 / 1e3);
                published.push((generation, p.published_ns, local));
                writer.reclaim();
            }
            std::thread::sleep(every);
            if let Some(&(_, published_ns, _)) = published.last() {
                let rx = probe.first_rx_ns.swap(0, Ordering::Relaxed);
                if rx != 0 {
                    first_rx.push((published_ns, rx));
                }
            }
            Ok((published, publish_us, first_rx, events))
        })
        .join()
    });
    let (published, publish_us, first_rx, mut events) =
        publisher.map_err(|_| "the publisher thread panicked".to_string())??;
    let b = run.snap();
    let mut r = run.round(&a, &b);
    while let Some(ev) = run.fabric.events.pop() {
        events.push(ev);
    }
    let sink_shared = run.sink.clone();
    let changes = run.finish(&mut r)?;
    let (mut wire, mut rx_to_wire) = (Vec::new(), Vec::new());
    for &(generation, published_ns, _) in &published {
        let hit = events.iter().find_map(|ev| match *ev {
            WorkerEvent::PathOnWire {
                path: 0,
                generation: g,
                wire_ns,
                ..
            } if g == generation => Some(wire_ns),
            _ => None,
        });
        if let Some(w) = hit {
            wire.push(w.saturating_sub(published_ns) as f64 / 1e3);
            if let Some(&(_, rx)) = first_rx.iter().find(|&&(p, _)| p == published_ns) {
                rx_to_wire.push(w.saturating_sub(rx) as f64 / 1e3);
            }
        }
    }
    let to_rx: Vec<f64> = first_rx
        .iter()
        .map(|&(p, rx)| rx.saturating_sub(p) as f64 / 1e3)
        .collect();
    // A change counts for publication i only if the sink saw it before publication i+1.
    let mut sink = Vec::new();
    for (i, &(_, published_ns, local)) in published.iter().enumerate() {
        let until = published.get(i + 1).map_or(u64::MAX, |p| p.1);
        if let Some(&(t, _)) = changes
            .iter()
            .find(|&&(t, src)| t >= published_ns && t < until && src == local)
        {
            sink.push(t.saturating_sub(published_ns) as f64 / 1e3);
        }
    }
    Ok(PathChangeResult {
        offered_target_pps: load,
        ring,
        offered_pps: r.offered_pps,
        dut_tx_pps: r.dut_tx_pps,
        dut_busy: r.dut_busy,
        dut_mean_burst: r.dut_mean_burst,
        dut_cpu_share: r.dut_cpu_share,
        publish_call_us: Percentiles::of(publish_us),
        size: cfg.switch_size,
        burst,
        published: published.len(),
        events: wire.len(),
        publish_to_wire_us: Percentiles::of(wire),
        publish_to_rx_us: Percentiles::of(to_rx),
        rx_to_wire_us: Percentiles::of(rx_to_wire),
        sink_matched: sink.len(),
        publish_to_sink_us: Percentiles::of(sink),
        sink_source_changes: sink_shared.source_changes.load(Ordering::Relaxed),
    })
}

/// Runs the benchmark (needs root).
pub fn run(cfg: &FwdBenchConfig) -> Result<FwdReport, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "the forwarding benchmark creates network namespaces and AF_PACKET \
                    sockets: run it as root"
                .into(),
        );
    }
    if cfg.rounds == 0 || cfg.seconds <= 0.0 {
        return Err("rounds and seconds must be positive".into());
    }
    let cores = core_affinity::get_core_ids().map_or(1, |c| c.len());
    let (dut_core, load_core) = if cores >= 2 {
        (Some(cores - 1), Some(0))
    } else {
        (None, None)
    };
    let mut keymat = vec![0u8; EspCipher::AesGcm16_128.keymat_len()];
    SystemRandom::new()
        .fill(&mut keymat)
        .map_err(|_| "no randomness for the ESP key".to_string())?;
    let rig = Rig {
        topo: Topology::create()?,
        keymat,
        dut_core,
        load_core,
        nice: cfg.nice,
        clear_dst_mac: if cfg.clear_otherhost {
            MAC_OTHER
        } else {
            MAC_DC
        },
    };
    let mut sizes = Vec::new();
    for &size in &cfg.sizes {
        let (mut plain, mut esp) = (Vec::new(), Vec::new());
        let mut mean = 0.0;
        // Interleaved so drifts of a shared machine hit both modes alike.
        for _ in 0..cfg.rounds {
            let (r, m) = measure(&rig, cfg, ForwardMode::Plain, size)?;
            plain.push(r);
            mean = m;
            esp.push(measure(&rig, cfg, ForwardMode::Esp, size)?.0);
        }
        let (pm, em) = (median(&plain), median(&esp));
        sizes.push(SizeResult {
            size: size.label(),
            mean_ip_len: mean,
            esp_over_plain: if pm.dut_tx_pps > 0.0 {
                em.dut_tx_pps / pm.dut_tx_pps
            } else {
                0.0
            },
            esp_over_plain_capacity: if pm.dut_capacity_pps > 0.0 {
                em.dut_capacity_pps / pm.dut_capacity_pps
            } else {
                0.0
            },
            limited_by: limiter(&pm, &em),
            plain: ModeResult {
                mode: "plain".into(),
                rounds: plain,
                median: pm,
            },
            esp: ModeResult {
                mode: "esp".into(),
                rounds: esp,
                median: em,
            },
        });
    }
    let mut path_changes = Vec::new();
    if cfg.switches > 0 {
        for &ring in &cfg.switch_rings {
            for &burst in &cfg.switch_bursts {
                for &load in &cfg.switch_loads_pps {
                    path_changes.push(path_change(&rig, cfg, load, ring, burst)?);
                }
            }
        }
    }
    Ok(FwdReport {
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        cores,
        dut_core,
        load_core,
        config: cfg.clone(),
        sizes,
        path_change: path_changes,
    })
}

/// The report as a plain-text table.
pub fn render_table(r: &FwdReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "afpacket forwarding gen -> [worker, core {}] -> sink over veth; kernel {}; \
         {} s x {} rounds, burst {}, rings {}; medians",
        r.dut_core.map_or("-".into(), |c| c.to_string()),
        r.kernel,
        r.config.seconds,
        r.config.rounds,
        r.config.burst,
        r.config.dut_ring.label()
    );
    let _ = writeln!(
        s,
        "{:>5} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>4} {:>6} {:>8} {:>6} {:>6}",
        "size",
        "mode",
        "offered",
        "dut rx",
        "dut tx",
        "sink rx",
        "Gbit/s",
        "busy%",
        "cpu%",
        "ns/pkt",
        "capacity",
        "esp/pl",
        "cap"
    );
    for z in &r.sizes {
        for (m, esp) in [(&z.plain, false), (&z.esp, true)] {
            let d = &m.median;
            let (ratio, cap) = if esp {
                (
                    format!("{:.2}", z.esp_over_plain),
                    format!("{:.2}", z.esp_over_plain_capacity),
                )
            } else {
                (String::new(), String::new())
            };
            let _ = writeln!(
                s,
                "{:>5} {:>5} {:>7.0}k {:>7.0}k {:>7.0}k {:>7.0}k {:>6.2} {:>5.1} {:>4.0} {:>6.0} {:>7.0}k {:>6} {:>6}",
                z.size,
                m.mode,
                d.offered_pps / 1e3,
                d.dut_rx_pps / 1e3,
                d.dut_tx_pps / 1e3,
                d.sink_rx_pps / 1e3,
                d.inner_gbps,
                d.dut_busy * 100.0,
                d.dut_cpu_share * 100.0,
                d.dut_ns_per_packet,
                d.dut_capacity_pps / 1e3,
                ratio,
                cap
            );
        }
        let _ = writeln!(s, "{:>5} limited by: {}", "", z.limited_by);
    }
    if !r.path_change.is_empty() {
        let _ = writeln!(
            s,
            "\npath changes (ESP {} B, outer source alternates every {} ms), microseconds",
            r.config.switch_size, r.config.switch_every_ms
        );
        let _ = writeln!(
            s,
            "{:>13} {:>5} {:>8} {:>8} {:>5} {:>4} {:>5} {:>7} {:>26} {:>24} {:>21} {:>26} {:>8} {:>11}",
            "ring",
            "burst",
            "offered",
            "dut tx",
            "busy%",
            "cpu%",
            "mean",
            "n",
            "publish->wire 50/90/99/max",
            "publish->rx 50/90/99/max",
            "rx->wire 50/90/99/max",
            "publish->sink 50/90/99/max",
            "sink chg",
            "pub 99/max"
        );
        for p in &r.path_change {
            let f =
                |q: &Percentiles| format!("{:.0}/{:.0}/{:.0}/{:.0}", q.p50, q.p90, q.p99, q.max);
            let _ = writeln!(
                s,
                "{:>13} {:>5} {:>7.0}k {:>7.0}k {:>5.1} {:>4.0} {:>5.1} {:>7} {:>26} {:>24} {:>21} {:>26} {:>8} {:>11}",
                p.ring.label(),
                p.burst,
                p.offered_pps / 1e3,
                p.dut_tx_pps / 1e3,
                p.dut_busy * 100.0,
                p.dut_cpu_share * 100.0,
                p.dut_mean_burst,
                format!("{}/{}", p.events, p.published),
                f(&p.publish_to_wire_us),
                f(&p.publish_to_rx_us),
                f(&p.rx_to_wire_us),
                f(&p.publish_to_sink_us),
                p.sink_source_changes,
                format!(
                    "{:.0}/{:.0}",
                    p.publish_call_us.p99, p.publish_call_us.max
                )
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(Vec::new()).samples, 0);
    }

    #[test]
    fn rings_parse() {
        assert_eq!(DutRing::parse("frames"), Ok(DutRing::frames()));
        assert_eq!(DutRing::parse("blocks"), Ok(DutRing::blocks()));
        let small = DutRing::parse("blocks:8192").unwrap();
        assert_eq!((small.rx, small.block_size), (RxRing::V3Blocks, 8192));
        for r in [DutRing::frames(), DutRing::blocks(), small] {
            assert_eq!(DutRing::parse(&r.label()), Ok(r));
        }
        assert!(DutRing::parse("blocks:1000").is_err());
        assert!(DutRing::parse("v2").is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(FwdSize::parse("IMIX"), Ok(FwdSize::Imix));
        assert_eq!(FwdSize::parse("1400"), Ok(FwdSize::Fixed(1400)));
        assert!(FwdSize::parse("20").is_err());
        assert!(FwdSize::parse("x").is_err());
    }

    #[test]
    fn frames_are_ethernet_ipv4_udp_with_test_header() {
        for size in [FwdSize::Fixed(64), FwdSize::Fixed(1400), FwdSize::Imix] {
            let frames = build_frames(size, MAC_DC).unwrap();
            for f in &frames {
                let o = ip::parse_outer(f, Layer::Ethernet).unwrap();
                assert_eq!(o.encap, Encap::Udp);
                assert!(TestHeader::parse(&f[o.payload]).is_some());
            }
            if let FwdSize::Fixed(n) = size {
                assert!(frames.iter().all(|f| f.len() == n + ip::ETH_HEADER_LEN));
            }
        }
    }
}
