//! `mobiked bench loopback`: two endpoints with static SAs in one process over loopback,
//! no root and no setup: endpoint A encrypts a generated stream and sends it over the `udp`
//! backend to endpoint B, which decrypts it into a sink that checks sequence numbers and
//! timestamps. Every few seconds both endpoints move their path to the other pair of
//! loopback addresses; the report gives loss, throughput, and the latency of each switch
//! from publication to the first packet on the wire and to the first packet the peer
//! authenticates from the new address.

use clap::Args;
use dataplane::io::traffic::{GenConfig, PacketSize, SinkConfig, TrafficGen, TrafficSink};
use dataplane::io::udp::{UdpConfig, UdpPort};
use dataplane::io::{BurstIo, Layer};
use dataplane::worker::{Fabric, Idle, Worker, WorkerConfig, WorkerEvent};
use dataplane::PacketBuf;
use hdrhistogram::Histogram;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use shared::counters::Counter;
use shared::path::{Encap, PathSpec};
use shared::policy::Tunnel;
use shared::sa::{EspCipher, EspKey, InboundSpec, OutboundSpec};
use shared::table::{TableConfig, TableWriter};
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct LabArgs {
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Offered load in packets per second (0 = as fast as the endpoints go).
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Inner IP packet size in bytes, or `imix` (64/576/1500 in 7:4:1).
    #[arg(long, default_value = "512")]
    size: String,
    /// Seconds between path switches.
    #[arg(long, default_value_t = 2.0)]
    switch_every: f64,
    /// UDP port of both endpoints (the NAT-T port).
    #[arg(long, default_value_t = 4500)]
    port: u16,
    /// Do not pin the two workers to cores.
    #[arg(long)]
    no_pin: bool,
}

/// Outer addresses: A and B each own two loopback addresses, one per path.
const A_ADDRS: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 77, 0, 1), Ipv4Addr::new(127, 77, 0, 2)];
const B_ADDRS: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 77, 1, 1), Ipv4Addr::new(127, 77, 1, 2)];
const SPI_AB: u32 = 0x6d6b_0001;
const SPI_BA: u32 = 0x6d6b_0002;
/// Time allowed for packets in flight to arrive after the generator stops.
const DRAIN: Duration = Duration::from_millis(500);

/// A port that produces packets only while its gate is open (lets the lab stop the
/// generator and drain without stopping the worker).
struct Gated<P> {
    inner: P,
    open: Arc<AtomicBool>,
}

impl<P: BurstIo> BurstIo for Gated<P> {
    fn layer(&self) -> Layer {
        self.inner.layer()
    }
    fn rx_burst(&mut self, bufs: &mut [PacketBuf]) -> std::io::Result<usize> {
        if !self.open.load(Ordering::Relaxed) {
            return Ok(0);
        }
        self.inner.rx_burst(bufs)
    }
    fn tx_burst(&mut self, bufs: &mut [PacketBuf]) -> std::io::Result<usize> {
        self.inner.tx_burst(bufs)
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
}

struct Endpoint<L: BurstIo + 'static> {
    writer: TableWriter,
    fabric: Arc<Fabric>,
    handle: JoinHandle<(UdpPort, L)>,
}

struct EndpointPlan {
    own: [SocketAddr; 2],
    peer: [SocketAddr; 2],
    out_spi: u32,
    in_spi: u32,
    out_key: Vec<u8>,
    in_key: Vec<u8>,
    local_ts: &'static str,
    remote_ts: &'static str,
    core: Option<usize>,
}

fn path_spec(local: SocketAddr, remote: SocketAddr) -> PathSpec {
    PathSpec {
        local,
        remote,
        encap: Encap::Udp,
        l2: None,
        keepalive_ms: 0,
    }
}

fn start_endpoint<L: BurstIo + 'static>(
    name: &str,
    plan: &EndpointPlan,
    clear: L,
) -> Result<Endpoint<L>, String> {
    let tc = TableConfig::sized(1, 16);
    let mut writer = TableWriter::new(tc);
    let cipher = EspCipher::AesGcm16_128;
    let key = |k: &[u8]| EspKey::new(cipher, k).map_err(|e| e.to_string());
    writer
        .set_path(0, path_spec(plan.own[0], plan.peer[0]))
        .map_err(|e| e.to_string())?;
    writer
        .set_tunnel(Tunnel {
            id: 0,
            local_ts: vec![plan.local_ts.parse().map_err(|e| format!("{e}"))?],
            remote_ts: vec![plan.remote_ts.parse().map_err(|e| format!("{e}"))?],
        })
        .map_err(|e| e.to_string())?;
    writer
        .set_outbound(OutboundSpec {
            spi: plan.out_spi,
            owner: 0,
            esn: false,
            key: key(&plan.out_key)?,
            path: 0,
            tunnel: 0,
        })
        .map_err(|e| e.to_string())?;
    writer
        .add_inbound(InboundSpec {
            spi: plan.in_spi,
            owner: 0,
            esn: false,
            replay_window: dataplane::replay::DEFAULT_WINDOW,
            key: key(&plan.in_key)?,
            tunnel: 0,
        })
        .map_err(|e| e.to_string())?;
    writer.publish();

    let udp = UdpPort::open(&UdpConfig {
        bind: plan.own.to_vec(),
        ..UdpConfig::default()
    })
    .map_err(|e| {
        format!(
            "endpoint {name}: cannot bind {:?}: {e} (another program may hold the port; try --port)",
            plan.own
        )
    })?;
    let fabric = Fabric::new(1);
    let mut wc = WorkerConfig::new(0, &tc);
    wc.core = plan.core;
    wc.idle = Idle::Adaptive;
    let reader = writer.reader(0).ok_or("no reader slot")?;
    let handle = Worker::new(wc, udp, clear, reader, fabric.clone())
        .spawn(format!("lab-{name}"))
        .map_err(|e| format!("endpoint {name}: starting its worker: {e}"))?;
    Ok(Endpoint {
        writer,
        fabric,
        handle,
    })
}

/// Figures of one path switch.
#[derive(Debug, Default, Clone, Serialize)]
struct Switch {
    /// Seconds since traffic started.
    at_s: f64,
    generation: u64,
    /// Publication on A to A's first packet on the new path, microseconds.
    publish_to_wire_us: Option<f64>,
    /// Publication on A to B's first authenticated packet from A's new address.
    publish_to_peer_rx_us: Option<f64>,
    #[serde(skip)]
    published_ns: u64,
    #[serde(skip)]
    new_source: Option<SocketAddr>,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    samples: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    /// Microsecond percentiles of nanosecond samples.
    fn of(samples: impl Iterator<Item = f64>) -> Percentiles {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
        for us in samples {
            let _ = h.record(((us * 1e3) as u64).max(1));
        }
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1e3;
        Percentiles {
            samples: h.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: h.max() as f64 / 1e3,
        }
    }
}

#[derive(Debug, Serialize)]
struct LabReport {
    duration_s: f64,
    offered_pps: u64,
    packet_size: String,
    sent: u64,
    received: u64,
    lost: u64,
    loss_ratio: f64,
    duplicates: u64,
    reordered: u64,
    bad: u64,
    throughput_pps: f64,
    throughput_mbps: f64,
    one_way_latency_us: Percentiles,
    max_gap_us: f64,
    switches: Vec<Switch>,
    publish_to_wire_us: Percentiles,
    publish_to_peer_rx_us: Percentiles,
    counters_a: Vec<(&'static str, u64)>,
    counters_b: Vec<(&'static str, u64)>,
}

fn random_key(rng: &SystemRandom, len: usize) -> Result<Vec<u8>, String> {
    let mut k = vec![0u8; len];
    rng.fill(&mut k)
        .map_err(|_| "no system randomness".to_string())?;
    Ok(k)
}

pub fn main(args: LabArgs) -> Result<(), String> {
    if !(0.0..=86_400.0).contains(&args.duration) || args.duration == 0.0 {
        return Err("--duration: give seconds between 0 and 86400".into());
    }
    if args.switch_every.is_nan() || args.switch_every < 0.01 {
        return Err("--switch-every: give at least 0.01 seconds".into());
    }
    let size = match args.size.as_str() {
        "imix" => PacketSize::Imix,
        s => PacketSize::Fixed(
            s.parse()
                .map_err(|_| format!("--size: `{s}` is neither a byte count nor `imix`"))?,
        ),
    };
    let rng = SystemRandom::new();
    let keymat = EspCipher::AesGcm16_128.keymat_len();
    let key_ab = random_key(&rng, keymat)?;
    let key_ba = random_key(&rng, keymat)?;
    let sock = |a: Ipv4Addr| SocketAddr::new(IpAddr::V4(a), args.port);
    let a_own = [sock(A_ADDRS[0]), sock(A_ADDRS[1])];
    let b_own = [sock(B_ADDRS[0]), sock(B_ADDRS[1])];
    let cores = core_ids(args.no_pin);

    let mut gen_cfg = GenConfig::new(
        "10.1.0.1:40000".parse().unwrap(),
        "10.2.0.1:40001".parse().unwrap(),
    );
    gen_cfg.size = size;
    gen_cfg.rate_pps = args.rate;
    let gen = TrafficGen::new(gen_cfg);
    let gen_stats = gen.stats();
    let gate = Arc::new(AtomicBool::new(true));
    let sink = TrafficSink::new(SinkConfig::default());
    let sink_stats = sink.stats();

    let mut a = start_endpoint(
        "a",
        &EndpointPlan {
            own: a_own,
            peer: b_own,
            out_spi: SPI_AB,
            in_spi: SPI_BA,
            out_key: key_ab.clone(),
            in_key: key_ba.clone(),
            local_ts: "10.1.0.0/24",
            remote_ts: "10.2.0.0/24",
            core: cores.0,
        },
        Gated {
            inner: gen,
            open: gate.clone(),
        },
    )?;
    let mut b = match start_endpoint(
        "b",
        &EndpointPlan {
            own: b_own,
            peer: a_own,
            out_spi: SPI_BA,
            in_spi: SPI_AB,
            out_key: key_ba,
            in_key: key_ab,
            local_ts: "10.2.0.0/24",
            remote_ts: "10.1.0.0/24",
            core: cores.1,
        },
        sink,
    ) {
        Ok(b) => b,
        Err(e) => {
            a.fabric.stop();
            let _ = a.handle.join();
            return Err(e);
        }
    };

    eprintln!(
        "mobiked lab: A {} <-> B {} (paths via {} / {}), AES-GCM-128 ESP in UDP {}, {} pps offered, {} packets, switch every {} s",
        A_ADDRS[0], B_ADDRS[0], A_ADDRS[1], B_ADDRS[1], args.port,
        if args.rate == 0 { "max".to_string() } else { args.rate.to_string() },
        args.size, args.switch_every
    );
    let tty = std::io::stderr().is_terminal();
    let bar = crate::streams::progress_bar(
        (args.duration * 1000.0) as u64,
        "{spinner} {elapsed_precise} [{bar:30}] {msg}",
    );

    let start = Instant::now();
    let total = Duration::from_secs_f64(args.duration);
    let every = Duration::from_secs_f64(args.switch_every);
    let mut next_switch = every;
    let mut current = 0usize;
    let mut switches: Vec<Switch> = Vec::new();
    let mut last_print = Duration::ZERO;
    loop {
        let t = start.elapsed();
        if t >= total {
            break;
        }
        if t >= next_switch {
            current ^= 1;
            let (ga, pa) = move_path(&mut a.writer, a_own[current], b_own[current])?;
            move_path(&mut b.writer, b_own[current], a_own[current])?;
            switches.push(Switch {
                at_s: t.as_secs_f64(),
                generation: ga,
                published_ns: pa,
                new_source: Some(a_own[current]),
                ..Switch::default()
            });
            next_switch += every;
        }
        drain_events(&a.fabric, &b.fabric, &mut switches);
        a.writer.reclaim();
        b.writer.reclaim();
        let sent = gen_stats.packets.load(Ordering::Relaxed);
        let rx = sink_stats.received.load(Ordering::Relaxed);
        let lost = sink_stats.lost.load(Ordering::Relaxed);
        let msg = format!(
            "sent {sent} received {rx} lost {lost} switches {}",
            switches.len()
        );
        bar.set_position(t.as_millis() as u64);
        bar.set_message(msg.clone());
        if !tty && t >= last_print + Duration::from_secs(1) {
            last_print = t;
            eprintln!("[{:5.1} s] {msg}", t.as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let traffic_s = start.elapsed().as_secs_f64();
    gate.store(false, Ordering::Relaxed);
    // Let what is in flight arrive: wait until B has seen everything or DRAIN passes.
    let drain_start = Instant::now();
    while drain_start.elapsed() < DRAIN {
        drain_events(&a.fabric, &b.fabric, &mut switches);
        let sent = gen_stats.packets.load(Ordering::Relaxed);
        if sink_stats.received.load(Ordering::Relaxed) >= sent {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bar.finish_and_clear();
    a.fabric.stop();
    b.fabric.stop();
    let _ = a
        .handle
        .join()
        .map_err(|_| "endpoint a's worker panicked")?;
    let (_, sink) = b
        .handle
        .join()
        .map_err(|_| "endpoint b's worker panicked")?;
    drain_events(&a.fabric, &b.fabric, &mut switches);

    let sent = gen_stats.packets.load(Ordering::Relaxed);
    let r = sink.report();
    let report = LabReport {
        duration_s: traffic_s,
        offered_pps: args.rate,
        packet_size: args.size.clone(),
        sent,
        received: r.received,
        lost: sent.saturating_sub(r.received),
        loss_ratio: if sent == 0 {
            0.0
        } else {
            sent.saturating_sub(r.received) as f64 / sent as f64
        },
        duplicates: r.duplicates,
        reordered: r.reordered,
        bad: r.bad,
        throughput_pps: r.received as f64 / traffic_s,
        throughput_mbps: r.bytes as f64 * 8.0 / traffic_s / 1e6,
        one_way_latency_us: Percentiles {
            samples: r.latency.samples,
            p50: r.latency.p50 as f64 / 1e3,
            p90: r.latency.p90 as f64 / 1e3,
            p99: r.latency.p99 as f64 / 1e3,
            max: r.latency.max as f64 / 1e3,
        },
        max_gap_us: r.max_gap_ns as f64 / 1e3,
        publish_to_wire_us: Percentiles::of(switches.iter().filter_map(|s| s.publish_to_wire_us)),
        publish_to_peer_rx_us: Percentiles::of(
            switches.iter().filter_map(|s| s.publish_to_peer_rx_us),
        ),
        switches,
        counters_a: a.fabric.counters.nonzero(),
        counters_b: b.fabric.counters.nonzero(),
    };
    print_report(&report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("--json {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Moves path 0 of an endpoint and publishes; returns (generation, published_ns).
fn move_path(
    w: &mut TableWriter,
    local: SocketAddr,
    remote: SocketAddr,
) -> Result<(u64, u64), String> {
    let g = w
        .set_path(0, path_spec(local, remote))
        .map_err(|e| e.to_string())?;
    let p = w.publish();
    Ok((g, p.published_ns))
}

fn drain_events(a: &Fabric, b: &Fabric, switches: &mut [Switch]) {
    while let Some(ev) = a.events.pop() {
        if let WorkerEvent::PathOnWire {
            generation,
            wire_ns,
            ..
        } = ev
        {
            if let Some(s) = switches.iter_mut().find(|s| s.generation == generation) {
                s.publish_to_wire_us
                    .get_or_insert(wire_ns.saturating_sub(s.published_ns) as f64 / 1e3);
            }
        }
    }
    while let Some(ev) = b.events.pop() {
        if let WorkerEvent::PeerMoved { spi, to, rx_ns, .. } = ev {
            if spi != SPI_AB {
                continue;
            }
            // The earliest switch to this source that has no receive time yet.
            if let Some(s) = switches
                .iter_mut()
                .find(|s| s.new_source == Some(to) && s.publish_to_peer_rx_us.is_none())
            {
                s.publish_to_peer_rx_us = Some(rx_ns.saturating_sub(s.published_ns) as f64 / 1e3);
            }
        }
    }
}

/// Cores for A's and B's workers: the last two cores, so the first stays for the rest.
fn core_ids(no_pin: bool) -> (Option<usize>, Option<usize>) {
    if no_pin {
        return (None, None);
    }
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    match ids.len() {
        0 => (None, None),
        1 => (Some(ids[0].id), Some(ids[0].id)),
        n => (Some(ids[n - 2].id), Some(ids[n - 1].id)),
    }
}

fn print_report(r: &LabReport) {
    println!("mobiked lab report");
    println!(
        "  traffic      {:.1} s, offered {} pps, {} packets",
        r.duration_s,
        if r.offered_pps == 0 {
            "max".to_string()
        } else {
            r.offered_pps.to_string()
        },
        r.packet_size
    );
    println!(
        "  packets      sent {}  received {}  lost {} ({:.4}%)  duplicates {}  reordered {}  bad {}",
        r.sent,
        r.received,
        r.lost,
        r.loss_ratio * 100.0,
        r.duplicates,
        r.reordered,
        r.bad
    );
    println!(
        "  throughput   {:.0} pps, {:.1} Mbit/s of inner IP",
        r.throughput_pps, r.throughput_mbps
    );
    let p = |name: &str, x: &Percentiles| {
        println!(
            "  {name:<24} n={:<4} p50 {:>9.1} us  p90 {:>9.1} us  p99 {:>9.1} us  max {:>9.1} us",
            x.samples, x.p50, x.p90, x.p99, x.max
        )
    };
    p("one-way latency", &r.one_way_latency_us);
    p("publish -> wire", &r.publish_to_wire_us);
    p("publish -> peer receive", &r.publish_to_peer_rx_us);
    println!(
        "  largest gap  {:.1} us between two received packets",
        r.max_gap_us
    );
    let drops = |c: &[(&str, u64)]| {
        c.iter()
            .filter(|(n, _)| n.starts_with("drop_") || *n == Counter::RxError.name())
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (da, db) = (drops(&r.counters_a), drops(&r.counters_b));
    println!(
        "  drops        A: {}  B: {}",
        if da.is_empty() { "none" } else { &da },
        if db.is_empty() { "none" } else { &db }
    );
}
